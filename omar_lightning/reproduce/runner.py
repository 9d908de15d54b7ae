"""Running cells: each an ordinary ``omar fit`` in a subprocess, resumable, summarised as JSON.

Layout (``results`` and ``runs`` are directories given on the command line):

- ``runs/<cell key>/``: the cell's config, log, checkpoints and CSV logs (large, not committed);
- ``results/<cell key>.json``: the run's summary (small, committed).

A cell is finished when its summary exists and was made from the same resolved configuration
(its config files composed, with its overrides and seed: ``configs.digest``), dataset, and by this
version of the training update (``omar_lightning/update_version.py``). An interrupted cell is
rerun with ``--ckpt_path last`` from its own checkpoints, which continues it exactly; checkpoints
of another configuration, dataset or update version are moved aside instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import yaml

from omar_lightning.data import DatasetError, dataset_identity, dataset_path, read_metadata, same_dataset
from omar_lightning.reproduce.configs import digest, resolved
from omar_lightning.reproduce.studies import Cell, missing_config
from omar_lightning.reproduce.summary import LAST_EVALUATIONS, SCHEMA, curve_score, is_current, read_curve, read_summary, write_summary
from omar_lightning.update_version import UPDATE_VERSION

PACKAGES = ("omar-lightning", "torch", "pytorch-lightning", "torchmetrics", "numpy", "pettingzoo", "mpe2", "mujoco", "gymnasium-robotics")


def cell_config(cell: Cell, root: Path, run_dir: Path) -> dict[str, Any]:
    """The cell's resolved configuration (``configs.resolved``) with its output paths: the one file
    ``omar fit`` runs the cell from."""
    config = resolved(cell, root)
    trainer = config.setdefault("trainer", {})
    trainer["default_root_dir"] = str(run_dir)
    trainer["enable_progress_bar"] = False
    trainer["logger"] = {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(run_dir), "name": "logs"}}
    callbacks = trainer.get("callbacks") or []
    for cb in callbacks:
        if cb.get("class_path", "").endswith("UpdateCheckpoint"):
            cb.setdefault("init_args", {})["dirpath"] = str(run_dir / "checkpoints")
    if not any(cb.get("class_path", "").endswith("UpdateCheckpoint") for cb in callbacks):
        callbacks.append({"class_path": "omar_lightning.callbacks.UpdateCheckpoint", "init_args": {"every_n_updates": 200, "dirpath": str(run_dir / "checkpoints")}})
    trainer["callbacks"] = callbacks
    return config


def config_dataset(config: dict[str, Any]) -> Path:
    """The config's dataset file, as ``OfflineDataModule`` resolves it (relative to the working directory)."""
    data = config.get("data") or {}
    return dataset_path(data.get("path"), data.get("task", "cooperative_navigation"), data.get("tier", "random"), data.get("env_kwargs"))


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["python"] = sys.version.split()[0]
    try:
        out["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = "unknown"
    return out


def dataset_now(path: Path) -> dict[str, Any] | None:
    """:func:`~omar_lightning.data.format.dataset_identity` of the dataset file at ``path``; None
    when it is absent or unreadable."""
    try:
        return dataset_identity(read_metadata(path))
    except DatasetError:
        return None


def status(cell: Cell, results: Path, root: Path) -> str:
    """``finished``, ``pending``, ``stale`` (finished from another resolved configuration, by
    another version of the training update, or from another dataset than the file now at the
    config's path), ``no-config`` or ``no-dataset``. Without the dataset file a finished cell
    stays finished: its summary records the dataset it ran on. A file regenerated from the same
    recipe on another machine (:func:`~omar_lightning.data.format.same_dataset`) keeps it
    finished too; :func:`dataset_note` says so."""
    if missing_config(cell, root):
        return "no-config"
    path = root / config_dataset(resolved(cell, root))  # an absolute path stays itself
    summary = read_summary(results / f"{cell.key}.json")
    if summary is not None:
        if summary.get("digest") != digest(cell, root) or not is_current(summary):
            return "stale"
        current = dataset_now(path)  # None without a readable file
        return "stale" if current is not None and not same_dataset(summary.get("dataset") or {}, current) else "finished"
    return "pending" if path.is_file() else "no-dataset"


def dataset_note(cell: Cell, results: Path, root: Path) -> str:
    """For a finished cell whose dataset file was regenerated since it ran (another checksum, the
    same recipe within :data:`~omar_lightning.data.format.REGENERATION_TOLERANCE`): the two
    behaviour returns and checksums; otherwise ``""``."""
    summary = read_summary(results / f"{cell.key}.json")
    if summary is None or missing_config(cell, root):
        return ""
    current = dataset_now(root / config_dataset(resolved(cell, root)))
    ran_on = summary.get("dataset") or {}
    if current is None or same_dataset(ran_on, current) != "regenerated":
        return ""
    return (f"ran on a regeneration of the file now there: behaviour return {ran_on['behaviour_return']:.5f} "
            f"(checksum {ran_on['checksum'][:12]}), now {current['behaviour_return']:.5f} ({current['checksum'][:12]})")


def command(cell: Cell) -> str:
    """The ``omar fit`` command line of a cell, as a user would type it."""
    settings = {**cell.overrides, "seed_everything": cell.seed, "data.seed": cell.seed}
    return "omar fit " + " ".join(f"--config {f}" for f in cell.configs) + " " + " ".join(f"--{k} {v}" for k, v in settings.items())


def _yaml_or_none(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


class CellBusy(Exception):
    """Another live process is running this cell."""


@contextlib.contextmanager
def cell_lock(run_dir: Path):
    """Hold ``<run_dir>.lock`` while a cell runs, so that two ``omar reproduce`` (overlapping studies,
    or the same study started twice) never run one cell at once. A lock left by a process of this
    host that no longer runs is taken over; one from another host must be removed by hand."""
    from omar_lightning.atomic import _HOST, _alive

    lock = run_dir.with_name(run_dir.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid, host = lock.read_text().split("@", 1)
            except (OSError, ValueError):
                pid, host = "0", _HOST
            if host.strip() == _HOST and not _alive(int(pid)):
                lock.unlink(missing_ok=True)
                continue
            raise CellBusy(f"held by process {pid}@{host.strip()} ({lock})") from None
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}@{_HOST}")
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
        return
    raise CellBusy(f"could not take {lock}")


def run_cell(cell: Cell, results: Path, runs: Path, root: Path, threads: int = 0, log: Callable[[str], None] = print) -> str:
    """Run (or continue) one cell and write its summary: ``ran``, ``failed``, ``finished`` (by
    another process meanwhile) or ``busy`` (another process is running it)."""
    run_dir = (runs / cell.key).resolve()
    try:
        with cell_lock(run_dir):
            if status(cell, results, root) == "finished":
                log(f"[skip] {cell.describe()}: finished meanwhile")
                return "finished"
            return "ran" if _run_cell(cell, run_dir, results, root, threads, log) else "failed"
    except CellBusy as busy:
        log(f"[busy] {cell.describe()}: another omar reproduce runs it, {busy}")
        return "busy"


def _run_cell(cell: Cell, run_dir: Path, results: Path, root: Path, threads: int, log: Callable[[str], None]) -> bool:
    config = cell_config(cell, root, run_dir)
    text = yaml.safe_dump(config, sort_keys=False)
    data_file = config_dataset(config)
    try:
        meta = read_metadata(root / data_file)
    except DatasetError as e:
        log(f"[skip] {cell.describe()}: {e}")
        return False
    # Checkpoints of another config, dataset or update version must not be resumed: keep them aside, start afresh.
    ran_on = run_dir / "dataset_checksum.txt"
    made_by = run_dir / "update_version.txt"  # absent in run directories made before version 2
    changed = []
    if (run_dir / "config.yaml").is_file() and _yaml_or_none((run_dir / "config.yaml").read_text()) != config:  # its settings, not its text
        changed.append("config")
    if ran_on.is_file() and ran_on.read_text() != meta["checksum"]:
        changed.append("dataset")
    old_version = made_by.read_text().strip() if made_by.is_file() else "1"
    if (run_dir / "config.yaml").is_file() and old_version != str(UPDATE_VERSION):
        changed.append(f"training update (version {old_version}, now {UPDATE_VERSION})")
    if changed:
        aside = run_dir.with_name(f"{run_dir.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        run_dir.rename(aside)
        log(f"[note] {cell.describe()}: the {' and '.join(changed)} changed since {run_dir} was made; moved it to {aside.name}")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(text)
    ran_on.write_text(meta["checksum"])
    made_by.write_text(str(UPDATE_VERSION))
    cmd = [sys.executable, "-m", "omar_lightning", "fit", "--config", str(run_dir / "config.yaml")]
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        cmd += ["--ckpt_path", "last"]
    env = dict(os.environ)
    if threads > 0:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    wall_file = run_dir / "wall_seconds.json"
    spent = json.loads(wall_file.read_text())["seconds"] if wall_file.is_file() else 0.0
    log(f"[run]  {cell.describe()}{' (resuming)' if '--ckpt_path' in cmd else ''}")
    start = time.perf_counter()
    with (run_dir / "log.txt").open("a") as out:
        rc = subprocess.run(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    spent += time.perf_counter() - start
    wall_file.write_text(json.dumps({"seconds": spent}))
    curve = read_curve(run_dir / "logs")
    max_updates = int(config["model"]["init_args"].get("max_updates", 2000))
    if rc != 0 or not curve["updates"] or curve["updates"][-1] < max_updates:
        tail = (run_dir / "log.txt").read_text().strip().splitlines()[-1:] or ["(no output)"]
        log(f"[fail] {cell.describe()}: exit status {rc}; {tail[0]} (log: {run_dir / 'log.txt'})")
        return False
    summary: dict[str, Any] = {
        "schema": SCHEMA,
        "key": cell.key,
        "cell": {"algorithm": cell.algorithm, "task": cell.task, "tier": cell.tier, "centralized": cell.centralized, "variant": dict(cell.variant), "seed": cell.seed, "post": cell.analysis},
        "config": cell.config,
        "overrides": cell.overrides,
        "digest": digest(cell, root),
        "command": command(cell),
        "dataset": {"path": str(data_file), **dataset_identity(meta)},
        "curve": curve,
        "score": {"normalized_score": curve_score(curve), "return": curve_score(curve, "return"), "last_evaluations": LAST_EVALUATIONS},
        "update_version": UPDATE_VERSION,
        "max_updates": max_updates,
        "wall_seconds": round(spent, 1),
        "threads": threads,
        "versions": versions(),
    }
    if cell.analysis:
        from dataclasses import replace

        from omar_lightning.reproduce.landscape import ANALYSES

        try:
            omar_config = Path(replace(cell, algorithm="omar", variant=(), analysis=None).config)
            summary[cell.analysis] = ANALYSES[cell.analysis](run_dir, config, root, omar_config, dataset=root / config_dataset(config))
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            log(f"[fail] {cell.describe()}: {cell.analysis}: {type(e).__name__}: {e}")
            return False
    write_summary(results / f"{cell.key}.json", summary)
    log(f"[done] {cell.describe()}: normalized score {summary['score']['normalized_score']:.1f} ({spent:.0f} s)")
    return True


def run_cells(cells: list[Cell], results: Path, runs: Path, root: Path, workers: int = 1, threads: int | None = None, log: Callable[[str], None] = print) -> dict[str, int]:
    """Run every unfinished cell, ``workers`` at a time, each with ``threads`` torch threads
    (default: the cores shared out over the workers, or all of them for one worker); returns
    counts per outcome."""
    counts = {"finished": 0, "ran": 0, "failed": 0, "skipped": 0, "busy": 0}
    todo = []
    for cell in cells:
        state = status(cell, results, root)
        if state == "finished":
            counts["finished"] += 1
        elif state in ("no-config", "no-dataset"):
            counts["skipped"] += 1
            log(f"[skip] {cell.describe()}: {'no config ' + str(missing_config(cell, root)) if state == 'no-config' else 'dataset missing (see docs/datasets.md)'}")
        else:
            todo.append(cell)
    if counts["finished"]:
        log(f"{counts['finished']} cell(s) already finished")
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // max(1, workers)) if workers > 1 else 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for outcome in pool.map(lambda c: run_cell(c, results, runs, root, threads, log), todo):
            counts[outcome] += 1
    return counts
