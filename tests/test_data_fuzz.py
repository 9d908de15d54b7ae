"""Randomly damaged dataset files: the loader raises DatasetError or returns exactly the original data.

Damage is drawn by hypothesis: truncations, flipped and deleted bytes of a valid file, and
rebuilt archives with missing or extra entries, wrong shapes or dtypes, NaN or inf, and bad
metadata (invalid JSON, other JSON types, missing or mistyped fields), with the checksum left
stale or recomputed as another tool would. Any other exception, or a successful load whose
arrays or metadata differ from the original, fails the test. A load that succeeds must be
of undamaged content (a flipped bit in a zip timestamp changes nothing that is read).
"""

import io
import json
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omar_lightning.data import DatasetError, load_dataset, save_dataset
from omar_lightning.data.format import FIELDS, checksum

from conftest import synthetic_dataset

N = 12
AGENTS = ["agent_0", "agent_1", "agent_2"]
KEYS = [f"{a}/{f}" for a in AGENTS for f in FIELDS]
# OMAR_FUZZ_EXAMPLES=5000 searches longer than the suite's default
FUZZ = settings(max_examples=int(os.environ.get("OMAR_FUZZ_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


class Valid(tuple):
    """(bytes, arrays, metadata) of a valid file, shown briefly in failure reports."""

    def __repr__(self) -> str:
        return f"<valid dataset file of {len(self[0])} bytes>"


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    path = save_dataset(tmp_path_factory.mktemp("fuzz") / "valid.npz", synthetic_dataset(n=N))
    ds = load_dataset(path)
    return Valid((path.read_bytes(), ds.arrays(), ds.meta))


def check(data: bytes, arrays: dict, meta: dict) -> None:
    """The property: DatasetError, or the original content exactly."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "damaged.npz")
        with open(path, "wb") as f:
            f.write(data)
        try:
            ds = load_dataset(path)
        except DatasetError as e:
            assert "damaged.npz" in str(e) and "\n" not in str(e)
            return
    loaded = ds.arrays()
    assert loaded.keys() == arrays.keys(), "a damaged file loaded with other arrays"
    for k, v in arrays.items():
        assert loaded[k].dtype == np.float32
        np.testing.assert_array_equal(loaded[k], v, err_msg=f"a damaged file loaded with other values in {k}")
    # the checksum field describes the arrays as stored (a float64 copy has its own)
    drop = lambda m: {k: v for k, v in m.items() if k != "checksum"}  # noqa: E731
    assert drop(ds.meta) == drop(meta), "a damaged file loaded with other metadata"


# ------------------------------------------------------------------ bytes of a valid file


@st.composite
def byte_damage(draw, size):
    kind = draw(st.sampled_from(["truncate", "flip", "delete"]))
    if kind == "truncate":
        return ("truncate", draw(st.integers(0, size - 1)))
    if kind == "flip":
        return ("flip", draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 255)), min_size=1, max_size=4)))
    start = draw(st.integers(0, size - 1))
    return ("delete", start, draw(st.integers(1, 64)))


def apply_bytes(data: bytes, damage) -> bytes:
    if damage[0] == "truncate":
        return data[: damage[1]]
    if damage[0] == "delete":
        return data[: damage[1]] + data[damage[1] + damage[2] :]
    out = bytearray(data)
    for pos, mask in damage[1]:
        out[pos] ^= mask
    return bytes(out)


@FUZZ
@given(st.data())
def test_damaged_bytes_never_load_silently(valid, data):
    raw, arrays, meta = valid
    check(apply_bytes(raw, data.draw(byte_damage(len(raw)))), arrays, meta)


# ------------------------------------------------------------------ archives rebuilt with bad content

BAD_META_VALUES = {
    "format_version": [0, 2, "1", None, True, 1.5],
    "task": ["", 3, None, ["cooperative_navigation"]],
    "tier": ["", 0, None, {}],
    "agent_names": [[], "agent_0", ["agent_0", "agent_1"], ["agent_0", "agent_0", "agent_2"], [0, 1, 2], None, ["a/b", "agent_1", "agent_2"]],
    "s_random": [None, "x", float("nan"), float("inf"), True, 30.0],
    "s_expert": [None, "x", float("-inf"), -10.0, [1]],
    "checksum": ["", 0, None, "0" * 64],
    "obs_dims": [[18, 18], [18, 18, 17], "18", [18.0, 18, 18]],
    "act_dims": [[2, 2, 3], None, [2, 2]],
    "num_transitions": [N + 1, N - 1, "12", 12.5],
    "env_kwargs": [[], "reward", 3],
}


@st.composite
def content_damage(draw):
    kind = draw(st.sampled_from(["drop", "extra", "shape", "dtype", "nonfinite", "meta_value", "meta_drop", "meta_text"]))
    fix = draw(st.booleans())
    if kind == "drop":
        return (kind, fix, draw(st.sampled_from(KEYS)))
    if kind == "extra":
        name = draw(st.sampled_from(["agent_3/obs", "agent_0/extra", "junk", "agent_1/obs_"]))
        return (kind, fix, name, draw(st.sampled_from(KEYS)))
    if kind == "shape":
        return (kind, fix, draw(st.sampled_from(KEYS)), draw(st.sampled_from(["cut_row", "add_row", "add_dim", "drop_col", "add_col", "transpose", "scalar", "empty"])))
    if kind == "dtype":
        dtype = draw(st.sampled_from(["int8", "int32", "int64", "uint8", "bool", "float16", "float64", "complex64", ">f4", "<U3"]))
        return (kind, fix, draw(st.sampled_from(KEYS)), dtype)
    if kind == "nonfinite":
        return (kind, fix, draw(st.sampled_from(KEYS)), draw(st.integers(0, 10_000)), draw(st.sampled_from([np.nan, np.inf, -np.inf])))
    if kind == "meta_value":
        key = draw(st.sampled_from(sorted(BAD_META_VALUES)))
        return (kind, fix, key, draw(st.sampled_from(BAD_META_VALUES[key])))
    if kind == "meta_drop":
        return (kind, fix, draw(st.sampled_from(["format_version", "task", "tier", "agent_names", "s_random", "s_expert", "checksum"])))
    text = draw(st.one_of(st.text(max_size=40), st.sampled_from(["[]", "null", "3", '"meta"', "{", '{"task": 1'])))
    return (kind, fix, text)


def reshape(x: np.ndarray, how: str) -> np.ndarray:
    return {
        "cut_row": lambda: x[:-1],
        "add_row": lambda: np.concatenate([x, x[:1]]),
        "add_dim": lambda: x[..., None],
        "drop_col": lambda: x[:, :-1] if x.ndim == 2 else x[None],
        "add_col": lambda: np.concatenate([x, x[:, :1]], 1) if x.ndim == 2 else np.stack([x, x], 1),
        "transpose": lambda: x.T.copy() if x.ndim == 2 else x[:, None].T.copy(),
        "scalar": lambda: np.float32(x.flat[0]),
        "empty": lambda: x[:0],
    }[how]()


def rebuild(arrays: dict, meta: dict, damage) -> bytes:
    kind, fix = damage[0], damage[1]
    arrays = {k: v.copy() for k, v in arrays.items()}
    meta = json.loads(json.dumps(meta))
    text = None
    if kind == "drop":
        del arrays[damage[2]]
    elif kind == "extra":
        arrays[damage[2]] = arrays[damage[3]].copy()
    elif kind == "shape":
        arrays[damage[2]] = np.asarray(reshape(arrays[damage[2]], damage[3]))
    elif kind == "dtype":
        arrays[damage[2]] = arrays[damage[2]].astype(damage[3])
    elif kind == "nonfinite":
        x = arrays[damage[2]]
        x.flat[damage[3] % x.size] = damage[4]
    if fix:  # what another tool writing a consistent but wrong file would do
        try:
            meta["checksum"] = checksum(arrays)
        except Exception:  # e.g. a dtype the checksum cannot hash: leave it stale
            pass
    if kind == "meta_value":
        meta[damage[2]] = damage[3]
    elif kind == "meta_drop":
        del meta[damage[2]]
    elif kind == "meta_text":
        text = damage[2]
    buf = io.BytesIO()
    np.savez(buf, metadata=np.array(text if text is not None else json.dumps(meta)), **arrays)
    return buf.getvalue()


@FUZZ
@given(damage=content_damage())
def test_bad_content_never_loads_silently(valid, damage):
    _, arrays, meta = valid
    check(rebuild(arrays, meta, damage), arrays, meta)


def test_the_property_accepts_an_undamaged_file(valid):
    raw, arrays, meta = valid
    check(raw, arrays, meta)
    buf = io.BytesIO()  # a float64 copy written by another tool loads as the same float32 data
    wide = {k: v.astype(np.float64) for k, v in arrays.items()}
    np.savez(buf, metadata=np.array(json.dumps({**meta, "checksum": checksum(wide)})), **wide)
    check(buf.getvalue(), arrays, meta)
