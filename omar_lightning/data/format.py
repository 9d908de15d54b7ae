"""The offline dataset file format (version 1).

A dataset is one uncompressed NumPy ``.npz`` archive, readable with ``numpy.load(path)``
alone (no pickle). For every agent name ``<agent>`` it holds, with ``N`` joint transitions:

=====================  ==================  ==========================================
key                    shape, dtype        meaning
=====================  ==================  ==========================================
``<agent>/obs``        [N, obs_dim] f4     observation o_i
``<agent>/actions``    [N, act_dim] f4     action a_i in [-1, 1]
``<agent>/rewards``    [N] f4              reward r_i
``<agent>/next_obs``   [N, obs_dim] f4     next observation o'_i
``<agent>/dones``      [N] f4              1.0 at a true termination (0.0 at a time limit)
``metadata``           0-d str             JSON object, see below
=====================  ==================  ==========================================

Row ``t`` of every array belongs to the same joint environment step. ``metadata`` holds
``format_version`` (1), ``task``, ``tier``, ``agent_names`` (array key order), ``obs_dims``,
``act_dims``, ``num_transitions``, ``s_random`` and ``s_expert`` (the reference returns of the
normalized score ``100 * (S - S_random) / (S_expert - S_random)``), ``env_kwargs``, ``seed``,
``episode_returns`` (mean, std, min, max, count of the behaviour episodes) and ``checksum``:
the SHA-256 of every array's key, dtype, shape and bytes in sorted key order, which loading
verifies. Files are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
FIELDS = ("obs", "actions", "rewards", "next_obs", "dones")
REQUIRED_META = ("format_version", "task", "tier", "agent_names", "s_random", "s_expert", "checksum")


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file and the field."""


@dataclass
class OfflineDataset:
    """Per-agent arrays (lists indexed like ``meta['agent_names']``) and metadata."""

    obs: list[np.ndarray]
    actions: list[np.ndarray]
    rewards: list[np.ndarray]
    next_obs: list[np.ndarray]
    dones: list[np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def agent_names(self) -> list[str]:
        return list(self.meta["agent_names"])

    @property
    def num_transitions(self) -> int:
        return int(self.obs[0].shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"{a}/{f}": getattr(self, f)[i] for i, a in enumerate(self.agent_names) for f in FIELDS}


def checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def save_dataset(path: str | os.PathLike, ds: OfflineDataset) -> Path:
    """Validate ``ds``, fill in derived metadata and write it atomically to ``path``."""
    path = Path(path)
    meta = dict(ds.meta)
    meta.setdefault("format_version", FORMAT_VERSION)
    meta["obs_dims"] = [int(o.shape[1]) for o in ds.obs]
    meta["act_dims"] = [int(a.shape[1]) for a in ds.actions]
    meta["num_transitions"] = ds.num_transitions
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in ds.arrays().items()}
    meta["checksum"] = checksum(arrays)
    validate(OfflineDataset(**{f: getattr(ds, f) for f in FIELDS}, meta=meta), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, metadata=np.array(json.dumps(meta)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_dataset(path: str | os.PathLike, verify: bool = True) -> OfflineDataset:
    """Load and validate a dataset file; every problem raises :class:`DatasetError`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            if "metadata" not in files:
                raise DatasetError(f"{path}: no 'metadata' entry; not an omar-lightning dataset")
            meta = json.loads(str(z["metadata"][()]))
            if not isinstance(meta, dict):
                raise DatasetError(f"{path}: 'metadata' is not a JSON object")
            missing = [k for k in REQUIRED_META if k not in meta]
            if missing:
                raise DatasetError(f"{path}: metadata lacks {missing}")
            names = meta["agent_names"]
            if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                raise DatasetError(f"{path}: metadata 'agent_names' must be a non-empty list of names")
            absent = [f"{a}/{f}" for a in names for f in FIELDS if f"{a}/{f}" not in files]
            if absent:
                raise DatasetError(f"{path}: missing arrays {absent[:5]} for agents listed in metadata 'agent_names'")
            arrays = {f"{a}/{f}": z[f"{a}/{f}"] for a in names for f in FIELDS}
    except DatasetError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise DatasetError(f"{path}: not a readable dataset file (truncated or corrupt?): {e}") from None
    ds = OfflineDataset(**{f: [arrays[f"{a}/{f}"] for a in names] for f in FIELDS}, meta=meta)
    validate(ds, str(path))
    if verify and checksum(arrays) != meta["checksum"]:
        raise DatasetError(f"{path}: checksum mismatch: the arrays do not match metadata 'checksum' (file altered or damaged)")
    return ds


def validate(ds: OfflineDataset, where: str) -> None:
    """Check shapes, dtypes, finiteness and metadata of ``ds``; raise DatasetError naming the field."""
    meta, names = ds.meta, ds.agent_names
    if meta.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{where}: metadata 'format_version' is {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    for f in FIELDS:
        if len(getattr(ds, f)) != len(names):
            raise DatasetError(f"{where}: '{f}' has {len(getattr(ds, f))} agents but metadata 'agent_names' lists {len(names)}")
    n = ds.obs[0].shape[0] if ds.obs[0].ndim else -1
    if n <= 0:
        raise DatasetError(f"{where}: '{names[0]}/obs' holds no transitions")
    for i, a in enumerate(names):
        for f in FIELDS:
            x = getattr(ds, f)[i]
            key = f"{a}/{f}"
            ndim = 2 if f in ("obs", "actions", "next_obs") else 1
            if x.ndim != ndim:
                raise DatasetError(f"{where}: '{key}' must have {ndim} dimensions, has shape {x.shape}")
            if x.shape[0] != n:
                raise DatasetError(f"{where}: '{key}' has {x.shape[0]} rows but '{names[0]}/obs' has {n}: arrays disagree in length")
            if not np.issubdtype(x.dtype, np.floating):
                raise DatasetError(f"{where}: '{key}' has dtype {x.dtype}, expected float32")
            if not np.isfinite(x).all():
                bad = int(np.flatnonzero(~np.isfinite(x).reshape(n, -1).all(1))[0])
                raise DatasetError(f"{where}: '{key}' contains NaN or inf (first at row {bad})")
        if ds.next_obs[i].shape[1] != ds.obs[i].shape[1]:
            raise DatasetError(f"{where}: '{a}/next_obs' has {ds.next_obs[i].shape[1]} features but '{a}/obs' has {ds.obs[i].shape[1]}")
        if np.abs(ds.actions[i]).max() > 1.0 + 1e-5:
            raise DatasetError(f"{where}: '{a}/actions' leaves the action box [-1, 1]")
    for k in ("s_random", "s_expert"):
        if not isinstance(meta.get(k), (int, float)) or not np.isfinite(meta[k]):
            raise DatasetError(f"{where}: metadata '{k}' must be a finite number, got {meta.get(k)!r}")
    if meta["s_expert"] == meta["s_random"]:
        raise DatasetError(f"{where}: metadata 's_expert' equals 's_random'; the normalized score is undefined")
