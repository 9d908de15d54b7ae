"""``omar datasets``: list, describe and verify dataset files.

::

    omar datasets list [DIR ...]        # every *.npz under DIR (default data/): task, tier, size, returns
    omar datasets info PATH ...         # metadata and return statistics (--json for JSON)
    omar datasets verify PATH ...       # full validation and checksum; exit status 1 if any file is bad

A file that cannot be used prints one line ``PATH: reason`` and the command goes on with the
others; the exit status is 1 when any file was bad (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from omar_lightning.data.format import FIELDS, DatasetError, load_dataset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omar datasets", description="List, describe and verify offline dataset files.")
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list dataset files under folders (default data/)")
    ls.add_argument("dirs", nargs="*", type=Path, default=[Path("data")])
    info = sub.add_parser("info", help="print metadata and return statistics")
    info.add_argument("paths", nargs="+", type=Path)
    info.add_argument("--json", action="store_true", help="one JSON object per file")
    ver = sub.add_parser("verify", help="validate and check checksums")
    ver.add_argument("paths", nargs="+", type=Path)
    return parser


def _load(path: Path, verify: bool):
    try:
        return load_dataset(path, verify=verify), None
    except DatasetError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line, not a traceback
        return None, f"{path}: unreadable: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"


def _summary(path: Path, ds) -> dict[str, Any]:
    meta = ds.meta
    per_agent = {}
    for i, name in enumerate(ds.agent_names):
        r = ds.rewards[i]
        per_agent[name] = {
            "obs_dim": int(ds.obs[i].shape[1]), "act_dim": int(ds.actions[i].shape[1]),
            "reward_mean": float(r.mean()), "reward_std": float(r.std()), "terminations": int(ds.dones[i].sum()),
        }
    out = {
        "path": str(path), "bytes": path.stat().st_size, "task": meta["task"], "tier": meta["tier"],
        "num_transitions": ds.num_transitions, "env_kwargs": meta.get("env_kwargs", {}),
        "s_random": meta["s_random"], "s_expert": meta["s_expert"], "episode_returns": meta.get("episode_returns"),
        "agents": per_agent, "seed": meta.get("seed"), "generation_seconds": meta.get("generation_seconds"),
        "reference": meta.get("reference"), "behaviour": meta.get("behaviour"), "checksum": meta["checksum"],
    }
    er = meta.get("episode_returns") or {}
    if er.get("mean") is not None:
        out["episode_returns_normalized"] = 100 * (er["mean"] - meta["s_random"]) / (meta["s_expert"] - meta["s_random"])
    if "simulator" in meta:
        out["simulator"] = meta["simulator"]
    return out


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def cmd_list(dirs: list[Path]) -> int:
    bad = 0
    rows = []
    for d in dirs:
        if not d.exists():
            print(f"{d}: no such folder", file=sys.stderr)
            bad += 1
            continue
        files = [d] if d.is_file() else sorted(p for p in d.rglob("*.npz") if not p.name.startswith("."))
        for p in files:
            ds, err = _load(p, verify=False)
            if err:
                print(err, file=sys.stderr)
                bad += 1
                continue
            er = ds.meta.get("episode_returns") or {}
            rows.append((str(p), ds.meta["task"], ds.meta["tier"], f"{ds.num_transitions:,}", _fmt(er.get("mean")), _fmt(er.get("std")),
                         _fmt(ds.meta["s_random"]), _fmt(ds.meta["s_expert"])))
    if rows:
        head = ("path", "task", "tier", "transitions", "return", "std", "S_random", "S_expert")
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
        for r in [head] + rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    elif not bad:
        print("no dataset files found under " + ", ".join(map(str, dirs)))
    return 1 if bad else 0


def cmd_info(paths: list[Path], as_json: bool) -> int:
    bad = 0
    for p in paths:
        ds, err = _load(p, verify=False)
        if err:
            print(err, file=sys.stderr)
            bad += 1
            continue
        s = _summary(p, ds)
        if as_json:
            print(json.dumps(s))
            continue
        er = s["episode_returns"] or {}
        print(f"{p}: {s['task']} / {s['tier']}, {s['num_transitions']:,} transitions, {s['bytes'] / 1e6:.1f} MB")
        print(f"  env_kwargs {s['env_kwargs']}, seed {s['seed']}, generated in {s['generation_seconds']} s")
        print(f"  behaviour episodes: {er.get('count', 0)}, return mean {_fmt(er.get('mean'))} std {_fmt(er.get('std'))} "
              f"min {_fmt(er.get('min'))} max {_fmt(er.get('max'))}"
              + (f" (normalized {s['episode_returns_normalized']:.1f})" if "episode_returns_normalized" in s else ""))
        print(f"  S_random {s['s_random']:.2f}, S_expert {s['s_expert']:.2f}" + (f" ({s['reference']})" if s["reference"] else ""))
        if s["behaviour"]:
            print(f"  behaviour: {s['behaviour']}")
        if "simulator" in s:
            print(f"  simulator: {s['simulator']}")
        for name, a in s["agents"].items():
            print(f"  {name}: obs {a['obs_dim']}, act {a['act_dim']}, reward mean {a['reward_mean']:.3f} std {a['reward_std']:.3f}, "
                  f"terminations {a['terminations']}")
    return 1 if bad else 0


def cmd_verify(paths: list[Path]) -> int:
    bad = 0
    for p in paths:
        ds, err = _load(p, verify=True)
        if err:
            print(f"FAIL {err}")
            bad += 1
            continue
        rows = [np.abs(ds.actions[i]).max() for i in range(len(ds.agent_names))]
        print(f"OK   {p}: {ds.meta['task']} / {ds.meta['tier']}, {ds.num_transitions:,} transitions, "
              f"{len(FIELDS) * len(ds.agent_names)} arrays, checksum {ds.meta['checksum'][:12]}, max |action| {max(rows):.3f}")
    return 1 if bad else 0


def main(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        code = cmd_list(args.dirs)
    elif args.command == "info":
        code = cmd_info(args.paths, args.json)
    else:
        code = cmd_verify(args.paths)
    if code:
        raise SystemExit(code)
