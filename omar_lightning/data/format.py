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
normalized score ``100 * (S - S_random) / (S_expert - S_random)``, :func:`normalized_score`), ``env_kwargs``, ``seed``,
``episode_returns`` (mean, std, min, max, count of the behaviour episodes) and ``checksum``:
the SHA-256 of every array's key, dtype, shape and bytes in sorted key order, which loading
verifies. ``tier`` is one of :data:`TIERS`. Files are written under a temporary name and renamed
when complete (:func:`omar_lightning.atomic.atomic_write`).

Arrays are float32. Loading also accepts float64 arrays (the checksum then covers the float64
bytes as stored) and converts them to float32; a value beyond the float32 range is refused.
Any other dtype (integers, booleans, float16, complex, objects) is refused. Loading refuses,
with a :class:`DatasetError` naming the file and the field: unreadable, truncated or damaged
files (zip CRC, array headers against their sizes, the checksum), missing or unexpected
arrays, metadata that is not a JSON object or lacks or mistypes a field, arrays whose shapes or
agent counts disagree with each other or with ``obs_dims``, ``act_dims`` and
``num_transitions``, NaN or inf, actions outside [-1, 1] and ``dones`` other than 0 or 1.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omar_lightning.atomic import atomic_write

FORMAT_VERSION = 1
FIELDS = ("obs", "actions", "rewards", "next_obs", "dones")
#: The dataset tiers (``meta["tier"]``), from the least to the most skilled behaviour.
TIERS = ("random", "medium_replay", "medium", "expert")
#: How minibatches are drawn from a dataset (``data.minibatches`` of the data module): ``fresh``
#: draws at every update, ``official_reuse`` repeats the first period's draws (README,
#: "Algorithm details").
MINIBATCHES = ("fresh", "official_reuse")
REQUIRED_META = ("format_version", "task", "tier", "agent_names", "s_random", "s_expert", "checksum")
FLOAT32_MAX = float(np.finfo(np.float32).max)


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


def normalized_score(returns: Any, s_random: float, s_expert: float) -> Any:
    """D4RL's normalized score of a return (a float, array or tensor) against a dataset's reference
    returns: ``100 * (S - S_random) / (S_expert - S_random)``."""
    return 100.0 * (returns - s_random) / (s_expert - s_random)


def dataset_path(path: str | os.PathLike | None, task: str, tier: str, env_kwargs: dict[str, Any] | None = None) -> Path:
    """``data.path`` when given, else :func:`default_path`."""
    return Path(path) if path else default_path(task, tier, env_kwargs)


def default_path(task: str, tier: str, env_kwargs: dict[str, Any] | None = None) -> Path:
    """Where a dataset is looked for when ``data.path`` is not given: ``data/<task>/<tier>.npz``,
    or ``data/<task>_<variant>/<tier>.npz`` when ``env_kwargs`` names an environment ``variant``
    (``data/cooperative_navigation_official/expert.npz``). The one rule for every caller."""
    variant = (env_kwargs or {}).get("variant")
    return Path("data") / (f"{task}_{variant}" if variant else task) / f"{tier}.npz"


REGENERATION_TOLERANCE = 1e-4
"""Largest relative difference (of the larger magnitude, at least 1) of the behaviour return,
``S_random`` and ``S_expert`` between a dataset a run recorded and the file now at its path for
the two to count as one dataset regenerated (:func:`same_dataset`). Rolling out the same
snapshots with the same seeds on another CPU changes float bits in the policy's forward pass:
measured on the official cooperative-navigation medium tier, the behaviour return moved from
274.83153 to 274.83108 (1.6e-6) and S_expert from 532.329818 to 532.329797 (4e-8), while a
medium-replay tier cut from a behaviour run retrained on another CPU moved by 2.2%."""


def dataset_identity(meta: dict[str, Any]) -> dict[str, Any]:
    """What a run records of the dataset it trained on, from the file's metadata: ``checksum``,
    ``s_random``, ``s_expert``, ``num_transitions`` and ``behaviour_return`` (the mean episode
    return of the behaviour, None when the file has none)."""
    return {"checksum": meta["checksum"], "s_random": meta["s_random"], "s_expert": meta["s_expert"],
            "num_transitions": meta.get("num_transitions"), "behaviour_return": (meta.get("episode_returns") or {}).get("mean")}


def same_dataset(recorded: dict[str, Any], current: dict[str, Any]) -> str | None:
    """How the dataset a run recorded relates to the file now at the same path (both as
    :func:`dataset_identity`): ``"identical"`` (the same checksum), ``"regenerated"`` (another
    checksum, the same number of transitions, and behaviour return, ``S_random`` and ``S_expert``
    each within :data:`REGENERATION_TOLERANCE`: the same recipe written again on another machine)
    or None (another dataset: its runs are stale)."""
    if recorded.get("checksum") == current.get("checksum"):
        return "identical"
    if recorded.get("num_transitions") is None or recorded.get("num_transitions") != current.get("num_transitions"):
        return None
    for key in ("behaviour_return", "s_random", "s_expert"):
        a, b = recorded.get(key), current.get(key)
        if a is None or b is None or abs(a - b) > REGENERATION_TOLERANCE * max(abs(a), abs(b), 1.0):
            return None
    return "regenerated"


def checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


def save_dataset(path: str | os.PathLike, ds: OfflineDataset) -> Path:
    """Validate ``ds``, fill in derived metadata and write it atomically to ``path``.

    Arrays must be float32 or float64 (converted to float32); every problem raises DatasetError.
    """
    path = Path(path)
    where = str(path)
    meta = dict(ds.meta)
    meta.setdefault("format_version", FORMAT_VERSION)
    _check_meta({**meta, "checksum": "computed below"}, where)
    names = meta["agent_names"]
    for f in FIELDS:
        if len(getattr(ds, f)) != len(names):
            raise DatasetError(f"{where}: '{f}' has {len(getattr(ds, f))} agents but metadata 'agent_names' lists {len(names)}")
    converted = {f: [_to_float32(np.asarray(x), f"{a}/{f}", where) for a, x in zip(names, getattr(ds, f))] for f in FIELDS}
    meta["obs_dims"] = [int(o.shape[1]) if o.ndim == 2 else -1 for o in converted["obs"]]
    meta["act_dims"] = [int(a.shape[1]) if a.ndim == 2 else -1 for a in converted["actions"]]
    meta["num_transitions"] = int(converted["obs"][0].shape[0]) if converted["obs"][0].ndim else -1
    out = OfflineDataset(**converted, meta=meta)
    arrays = {k: np.ascontiguousarray(v) for k, v in out.arrays().items()}
    meta["checksum"] = checksum(arrays)
    validate(out, where)

    def write(f) -> None:
        np.savez(f, metadata=np.array(json.dumps(meta)), **arrays)

    return atomic_write(path, write)


def load_dataset(path: str | os.PathLike, verify: bool = True) -> OfflineDataset:
    """Load and validate a dataset file; every problem raises :class:`DatasetError` naming the file and field."""
    path = Path(path)
    where = str(path)
    if path.is_dir():
        raise DatasetError(f"{where}: is a directory, not a dataset file")
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    try:
        meta, stored = _read_archive(path)
    except DatasetError:
        raise
    except Exception as e:  # any failure to parse the archive is a damaged file
        raise DatasetError(f"{where}: not a readable dataset file (truncated or corrupt?): {_reason(e)}") from None
    names = meta["agent_names"]
    ds = OfflineDataset(**{f: [_to_float32(stored[f"{a}/{f}"], f"{a}/{f}", where) for a in names] for f in FIELDS}, meta=meta)
    validate(ds, where)
    if verify and checksum(stored) != meta["checksum"]:
        raise DatasetError(f"{where}: checksum mismatch: the arrays do not match metadata 'checksum' (file altered or damaged)")
    return ds


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _read_meta(zf: zipfile.ZipFile, where: str) -> tuple[dict[str, Any], dict[str, zipfile.ZipInfo]]:
    members: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            raise DatasetError(f"{where}: unexpected entry {info.filename!r}; not an omar-lightning dataset")
        key = info.filename[: -len(".npy")]
        if key in members:
            raise DatasetError(f"{where}: entry {key!r} appears twice (file damaged?)")
        members[key] = info
    if "metadata" not in members:
        raise DatasetError(f"{where}: no 'metadata' entry; not an omar-lightning dataset")
    raw = _read_member(zf, members["metadata"], "metadata", where)
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise DatasetError(f"{where}: 'metadata' must be a 0-d string holding JSON, got {raw.dtype} of shape {raw.shape}")
    try:
        meta = json.loads(str(raw[()]))
    except ValueError as e:
        raise DatasetError(f"{where}: 'metadata' is not valid JSON: {e}") from None
    _check_meta(meta, where)
    return meta, members


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a dataset file (checksum, S_random, S_expert, sizes) without reading its arrays."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            return _read_meta(zf, str(path))[0]
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(f"{path}: not a readable dataset file (truncated or corrupt?): {_reason(e)}") from None


def _read_archive(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    where = str(path)
    with zipfile.ZipFile(path) as zf:
        meta, members = _read_meta(zf, where)
        names = meta["agent_names"]
        expected = [f"{a}/{f}" for a in names for f in FIELDS]
        absent = [k for k in expected if k not in members]
        if absent:
            raise DatasetError(f"{where}: missing arrays {absent[:5]} for agents listed in metadata 'agent_names'")
        extra = sorted(set(members) - set(expected) - {"metadata"})
        if extra:
            raise DatasetError(f"{where}: unexpected arrays {extra[:5]} not belonging to the agents in metadata 'agent_names'")
        stored = {k: _read_member(zf, members[k], k, where) for k in expected}
    return meta, stored


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, where: str) -> np.ndarray:
    """One ``.npy`` member; its header must account for exactly its size (no huge allocations)."""
    fmt = np.lib.format
    try:
        with zf.open(info) as f:
            version = fmt.read_magic(f)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(f)
            header = f.tell()
        if dtype.hasobject:
            raise DatasetError(f"{where}: '{key}' holds Python objects (dtype {dtype}); expected float32")
        need = math.prod(shape) * dtype.itemsize
        have = info.file_size - header
        if need != have:
            raise DatasetError(f"{where}: '{key}' is truncated or corrupt: its header announces shape {shape} of {dtype} ({need} bytes) but it holds {have}")
        with zf.open(info) as f:
            array = fmt.read_array(f, allow_pickle=False)
            if f.read(1):  # reading to the end also checks the zip CRC
                raise DatasetError(f"{where}: '{key}' has trailing bytes")
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(f"{where}: '{key}' cannot be read (truncated or corrupt?): {_reason(e)}") from None
    return array


def _to_float32(x: np.ndarray, key: str, where: str) -> np.ndarray:
    """float32 as is; float64 converted (NaN, inf and values beyond float32 refused); anything else refused."""
    if x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8):
        raise DatasetError(f"{where}: '{key}' has dtype {x.dtype}, expected float32 (float64 is converted)")
    if x.dtype.itemsize == 8:
        _check_finite(x, key, where)
        big = np.abs(x) > FLOAT32_MAX
        if big.any():
            row = int(np.flatnonzero(big.reshape(big.shape[0], -1).any(1))[0]) if big.ndim else 0
            raise DatasetError(f"{where}: '{key}' holds values beyond the float32 range (first at row {row})")
    return x.astype(np.float32, copy=False) if x.dtype == np.float32 else x.astype(np.float32)


def _check_finite(x: np.ndarray, key: str, where: str) -> None:
    ok = np.isfinite(x)
    if not ok.all():
        bad = int(np.flatnonzero(~ok.reshape(ok.shape[0], -1).all(1))[0]) if ok.ndim else 0
        raise DatasetError(f"{where}: '{key}' contains NaN or inf (first at row {bad})")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_meta(meta: Any, where: str) -> None:
    """Types of the metadata fields; raise DatasetError naming the field."""
    if not isinstance(meta, dict):
        raise DatasetError(f"{where}: 'metadata' is not a JSON object")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise DatasetError(f"{where}: metadata lacks {missing}")
    if not _is_int(meta["format_version"]) or meta["format_version"] != FORMAT_VERSION:
        raise DatasetError(f"{where}: metadata 'format_version' is {meta['format_version']!r}, expected {FORMAT_VERSION}")
    for k in ("task", "tier", "checksum"):
        if not isinstance(meta[k], str) or not meta[k]:
            raise DatasetError(f"{where}: metadata '{k}' must be a non-empty string, got {meta[k]!r}")
    names = meta["agent_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n and "/" not in n for n in names):
        raise DatasetError(f"{where}: metadata 'agent_names' must be a non-empty list of names, got {names!r}")
    if len(set(names)) != len(names):
        raise DatasetError(f"{where}: metadata 'agent_names' lists a name twice: {names}")
    for k in ("s_random", "s_expert"):
        if not _is_number(meta[k]):
            raise DatasetError(f"{where}: metadata '{k}' must be a finite number, got {meta[k]!r}")
    if meta["s_expert"] == meta["s_random"]:
        raise DatasetError(f"{where}: metadata 's_expert' equals 's_random'; the normalized score is undefined")
    for k in ("obs_dims", "act_dims"):
        if k in meta and not (isinstance(meta[k], list) and len(meta[k]) == len(names) and all(_is_int(d) for d in meta[k])):
            raise DatasetError(f"{where}: metadata '{k}' must list one integer per agent in 'agent_names', got {meta[k]!r}")
    if "num_transitions" in meta and not _is_int(meta["num_transitions"]):
        raise DatasetError(f"{where}: metadata 'num_transitions' must be an integer, got {meta['num_transitions']!r}")
    if "env_kwargs" in meta and not isinstance(meta["env_kwargs"], dict):
        raise DatasetError(f"{where}: metadata 'env_kwargs' must be a JSON object, got {meta['env_kwargs']!r}")


def validate(ds: OfflineDataset, where: str) -> None:
    """Check metadata, shapes, dtypes, finiteness and ranges of ``ds``; raise DatasetError naming the field."""
    meta = ds.meta
    _check_meta(meta, where)
    names = ds.agent_names
    for f in FIELDS:
        if len(getattr(ds, f)) != len(names):
            raise DatasetError(f"{where}: '{f}' has {len(getattr(ds, f))} agents but metadata 'agent_names' lists {len(names)}")
    first = ds.obs[0]
    n = first.shape[0] if first.ndim else -1
    if n <= 0:
        raise DatasetError(f"{where}: '{names[0]}/obs' holds no transitions (shape {first.shape})")
    for i, a in enumerate(names):
        for f in FIELDS:
            x = getattr(ds, f)[i]
            key = f"{a}/{f}"
            ndim = 2 if f in ("obs", "actions", "next_obs") else 1
            if x.dtype != np.float32:
                raise DatasetError(f"{where}: '{key}' has dtype {x.dtype}, expected float32")
            if x.ndim != ndim:
                raise DatasetError(f"{where}: '{key}' must have {ndim} dimensions, has shape {x.shape}")
            if x.shape[0] != n:
                raise DatasetError(f"{where}: '{key}' has {x.shape[0]} rows but '{names[0]}/obs' has {n}: arrays disagree in length")
            if ndim == 2 and x.shape[1] < 1:
                raise DatasetError(f"{where}: '{key}' has no features (shape {x.shape})")
            _check_finite(x, key, where)
        if ds.next_obs[i].shape[1] != ds.obs[i].shape[1]:
            raise DatasetError(f"{where}: '{a}/next_obs' has {ds.next_obs[i].shape[1]} features but '{a}/obs' has {ds.obs[i].shape[1]}")
        outside = (np.abs(ds.actions[i]) > 1.0 + 1e-5).any(1)
        if outside.any():
            raise DatasetError(f"{where}: '{a}/actions' leaves the action box [-1, 1] (first at row {int(np.flatnonzero(outside)[0])})")
        not_binary = (ds.dones[i] != 0) & (ds.dones[i] != 1)
        if not_binary.any():
            raise DatasetError(f"{where}: '{a}/dones' must be 0 or 1 (first other value at row {int(np.flatnonzero(not_binary)[0])})")
    derived = {
        "obs_dims": [int(o.shape[1]) for o in ds.obs],
        "act_dims": [int(x.shape[1]) for x in ds.actions],
        "num_transitions": int(n),
    }
    for k, value in derived.items():
        if k in meta and meta[k] != value:
            raise DatasetError(f"{where}: metadata '{k}' is {meta[k]!r} but the arrays give {value!r}")
