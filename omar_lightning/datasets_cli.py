"""``omar datasets``: list, describe and verify dataset files.

::

    omar datasets list [DIR ...]        # every *.npz under DIR (default data/): task, tier, size, returns
    omar datasets info PATH ...         # metadata and return statistics (--json for JSON)
    omar datasets verify PATH ...       # full validation and checksum; exit status 1 if any file is bad
    omar datasets compare PATH ...      # agent 0's episode return and the size against the official tier
    omar datasets import {official,vault,arrays} SOURCE --out FILE [--task T] [--tier T] \
        [--env-kwarg KEY=VALUE ...] [--s-random X] [--s-expert Y | --expert SNAPSHOT]

A file that cannot be used prints one line ``PATH: reason`` and the command goes on with the
others; the exit status is 1 when any file was bad (2 for bad arguments). ``import`` reads the
official OMAR files, an OG-MARL Vault or a user's arrays (:mod:`omar_lightning.data.importers`)
and writes one dataset file; a problem with the source is one line ``omar datasets: error:
...`` naming the file, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from omar_lightning.data.format import FIELDS, DatasetError, load_dataset, normalized_score
from omar_lightning.data.importers import FORMATS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omar datasets", description="List, describe, verify, compare and import offline dataset files.")
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list dataset files under folders (default data/)")
    ls.add_argument("dirs", nargs="*", type=Path, default=[Path("data")])
    info = sub.add_parser("info", help="print metadata and return statistics")
    info.add_argument("paths", nargs="+", type=Path)
    info.add_argument("--json", action="store_true", help="one JSON object per file")
    ver = sub.add_parser("verify", help="validate and check checksums")
    ver.add_argument("paths", nargs="+", type=Path)
    cmp = sub.add_parser("compare", help="agent 0's episode return and the size against the official tier's")
    cmp.add_argument("paths", nargs="+", type=Path)
    cmp.add_argument("--tier", default=None, help="official tier to compare with (default: the dataset's tier)")
    cmp.add_argument("--json", action="store_true", help="one JSON object per file")
    imp = sub.add_parser("import", help="write a dataset from the official OMAR files, an OG-MARL Vault or a user's arrays",
                         description="Write a dataset file from another layout (see omar_lightning/data/importers.py).")
    imp.add_argument("format", choices=FORMATS, help="official: <env_id>/<tier>/seed_<s>_data/*.npy; vault: <name>.vlt[/<uid>]; "
                     "arrays: an .npz of obs_<i>, actions_<i>, rewards_<i>, next_obs_<i>, dones_<i>")
    imp.add_argument("source", type=Path, help="the seed_<s>_data folder (or the dataset root with --task and --tier), "
                     "the vault folder, or the .npz file")
    imp.add_argument("--out", required=True, type=Path, help="dataset file to write")
    imp.add_argument("--task", default=None, help="task (default: the one the source's names say)")
    imp.add_argument("--tier", default=None, help="tier (default: the one the source's names say)")
    imp.add_argument("--seed", type=int, default=None, help="official files: the seed folder under the dataset root (default 0)")
    imp.add_argument("--row", type=int, default=0, help="vault: the batch row to import (default 0; the OMAR vaults hold 5)")
    imp.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE",
                     help="environment setting of the task the data come from (recorded in the file; shapes are checked against it)")
    imp.add_argument("--s-random", type=float, default=None, help="S_random (default: measured, uniform random actions)")
    imp.add_argument("--s-expert", type=float, default=None, help="S_expert (default: measured, the scripted expert or --expert)")
    imp.add_argument("--expert", type=Path, default=None, help="policy snapshot whose noiseless score is S_expert")
    imp.add_argument("--reference-episodes", type=int, default=200, help="episodes measuring S_random and S_expert (default 200)")
    imp.add_argument("--workers", type=int, default=1, help="processes playing the reference episodes (default 1)")
    imp.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
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
        out["episode_returns_normalized"] = normalized_score(er["mean"], meta["s_random"], meta["s_expert"])
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


def _comparison_lines(c) -> list[str]:
    o = c.official
    if c.mean is None:
        level = f"agent 0 return n/a (no whole episode); official {c.tier} {o.mean:,.2f} +- {o.std:,.2f}"
    else:
        rel = f", {100 * c.difference / abs(o.mean):+.1f}%" if o.mean else ""
        level = (f"agent 0 return {c.mean:,.2f} +- {c.std:,.2f} over {c.episodes:,} episodes; official {c.tier} {o.mean:,.2f} +- {o.std:,.2f}: "
                 f"{c.difference:+,.2f}{rel}, within +-{c.tolerance:,.2f}: {'yes' if c.within else 'no'}")
    size = f"transitions {c.transitions:,}; official {o.transitions:,}: " + (
        "same size" if c.same_size else f"{c.transitions - o.transitions:+,} ({100 * (c.transitions / o.transitions - 1):+.1f}%)")
    return [level, size]


def cmd_compare(paths: list[Path], tier: str | None, as_json: bool) -> int:
    from omar_lightning.data.compare import compare_to_official

    bad = 0
    for p in paths:
        ds, err = _load(p, verify=False)
        if err is None:
            try:
                c = compare_to_official(ds, tier)
            except ValueError as e:
                err = f"{p}: {e}"
        if err:
            print(err, file=sys.stderr)
            bad += 1
            continue
        if as_json:
            print(json.dumps({"path": str(p), "env_kwargs": ds.meta.get("env_kwargs", {}), **c.as_dict()}))
            continue
        print(f"{p}: {c.task} / {ds.meta['tier']}, env_kwargs {ds.meta.get('env_kwargs', {})}")
        for line in _comparison_lines(c):
            print("  " + line)
    return 1 if bad else 0


def cmd_import(args: argparse.Namespace) -> None:
    from omar_lightning.arguments import key_values
    from omar_lightning.data.compare import compare_to_official
    from omar_lightning.data.format import save_dataset
    from omar_lightning.data.importers import build_dataset, read_source

    if args.out.exists() and not args.overwrite:
        raise ValueError(f"{args.out}: exists; give --overwrite to replace it")
    if args.reference_episodes < 1 or args.workers < 1:
        raise ValueError("--reference-episodes and --workers must be >= 1")
    env_kwargs = key_values(args.env_kwarg)
    source = read_source(args.format, args.source, args.task, args.tier, args.seed, args.row)
    ds = build_dataset(source, args.task, args.tier, env_kwargs, args.s_random, args.s_expert, args.expert,
                       args.reference_episodes, args.workers)
    out = save_dataset(args.out, ds)
    er = ds.meta["episode_returns"]
    level = "n/a (no whole episode)" if er["mean"] is None else f"{er['mean']:,.2f} +- {er['std']:,.2f} over {er['count']:,} episodes"
    print(f"Wrote {out}: {ds.meta['task']} / {ds.meta['tier']}, {ds.num_transitions:,} transitions from {source.where}, "
          f"behaviour score {level}, S_random {ds.meta['s_random']:.2f}, S_expert {ds.meta['s_expert']:.2f}")
    try:
        c = compare_to_official(ds)
    except ValueError:
        return
    for line in _comparison_lines(c):
        print("  " + line)


def main(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "import":
        try:
            cmd_import(args)
        except (DatasetError, ValueError, FileNotFoundError, argparse.ArgumentTypeError) as error:
            print(f"omar datasets: error: {str(error).strip().splitlines()[0]}", file=sys.stderr)
            raise SystemExit(2) from None
        return
    if args.command == "list":
        code = cmd_list(args.dirs)
    elif args.command == "info":
        code = cmd_info(args.paths, args.json)
    elif args.command == "compare":
        code = cmd_compare(args.paths, args.tier, args.json)
    else:
        code = cmd_verify(args.paths)
    if code:
        raise SystemExit(code)
