"""Every way a dataset file can be wrong ends in one DatasetError naming the file and the field."""

import json
import struct
import zipfile

import numpy as np
import pytest

from omar_lightning.data import DatasetError, load_dataset, save_dataset
from omar_lightning.data.format import checksum
from omar_lightning.datamodules import OfflineDataModule

from conftest import synthetic_dataset


def read_npz(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("metadata")[()]))
    return arrays, meta


def write_npz(path, arrays, meta, fix_checksum=True, meta_text=None):
    """Write a dataset file the way another tool might: consistent checksum unless asked otherwise."""
    meta = dict(meta)
    if fix_checksum:
        meta["checksum"] = checksum(arrays)
    with open(path, "wb") as f:
        np.savez(f, metadata=np.array(meta_text if meta_text is not None else json.dumps(meta)), **arrays)
    return path


def altered(dataset_file, tmp_path, arrays=None, meta=None, drop=(), fix_checksum=True, meta_text=None):
    a, m = read_npz(dataset_file)
    a.update(arrays or {})
    m.update(meta or {})
    for k in drop:
        a.pop(k, None)
        m.pop(k, None)
    return write_npz(tmp_path / "bad.npz", a, m, fix_checksum, meta_text)


def original(dataset_file, key):
    return read_npz(dataset_file)[0][key]


def test_float64_arrays_are_converted_to_float32(dataset_file, tmp_path):
    obs = original(dataset_file, "agent_1/obs")
    ds = load_dataset(altered(dataset_file, tmp_path, arrays={"agent_1/obs": obs.astype(np.float64)}))
    assert ds.obs[1].dtype == np.float32
    np.testing.assert_array_equal(ds.obs[1], obs)


def test_float64_beyond_float32_is_refused(dataset_file, tmp_path):
    r = original(dataset_file, "agent_0/rewards").astype(np.float64)
    r[7] = 1e300
    with pytest.raises(DatasetError, match=r"bad.npz: 'agent_0/rewards' holds values beyond the float32 range \(first at row 7\)"):
        load_dataset(altered(dataset_file, tmp_path, arrays={"agent_0/rewards": r}))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_, np.float16, np.complex64])
def test_other_dtypes_are_refused(dataset_file, tmp_path, dtype):
    d = original(dataset_file, "agent_2/dones").astype(dtype)
    with pytest.raises(DatasetError, match=rf"'agent_2/dones' has dtype {np.dtype(dtype)}, expected float32"):
        load_dataset(altered(dataset_file, tmp_path, arrays={"agent_2/dones": d}))


def test_save_refuses_integers_and_overflow(tmp_path):
    ds = synthetic_dataset(n=20)
    ds.dones[0] = ds.dones[0].astype(np.int64)
    with pytest.raises(DatasetError, match="'agent_0/dones' has dtype int64"):
        save_dataset(tmp_path / "d.npz", ds)
    ds = synthetic_dataset(n=20)
    ds.rewards[1] = ds.rewards[1].astype(np.float64)
    ds.rewards[1][3] = -1e40
    with pytest.raises(DatasetError, match="'agent_1/rewards' holds values beyond the float32 range"):
        save_dataset(tmp_path / "d.npz", ds)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda o: o[:, :, None], r"'agent_0/obs' must have 2 dimensions, has shape \(256, 18, 1\)"),
        (lambda o: o[:, :0], r"'agent_0/obs' has no features"),
        (lambda o: o[:, :17], r"'agent_0/next_obs' has 18 features but 'agent_0/obs' has 17"),
        (lambda o: o.T.copy(), r"'agent_0/actions' has 256 rows but 'agent_0/obs' has 18: arrays disagree in length"),
    ],
)
def test_wrong_shapes_are_named(dataset_file, tmp_path, change, message):
    obs = original(dataset_file, "agent_0/obs")
    with pytest.raises(DatasetError, match=message):
        load_dataset(altered(dataset_file, tmp_path, arrays={"agent_0/obs": change(obs)}))


def test_metadata_sizes_must_match_the_arrays(dataset_file, tmp_path):
    with pytest.raises(DatasetError, match=r"metadata 'obs_dims' is \[18, 18, 17\] but the arrays give \[18, 18, 18\]"):
        load_dataset(altered(dataset_file, tmp_path, meta={"obs_dims": [18, 18, 17]}))
    with pytest.raises(DatasetError, match="metadata 'num_transitions' is 300 but the arrays give 256"):
        load_dataset(altered(dataset_file, tmp_path, meta={"num_transitions": 300}))
    # every array cut to the same length: consistent with each other, not with the metadata
    a, _ = read_npz(dataset_file)
    with pytest.raises(DatasetError, match="metadata 'num_transitions' is 256 but the arrays give 100"):
        load_dataset(altered(dataset_file, tmp_path, arrays={k: v[:100] for k, v in a.items()}))


def test_an_agent_too_many_is_refused(dataset_file, tmp_path):
    extra = {f"agent_3/{f}": original(dataset_file, f"agent_0/{f}") for f in ("obs", "actions", "rewards", "next_obs", "dones")}
    with pytest.raises(DatasetError, match=r"unexpected arrays \['agent_3/actions', 'agent_3/dones'"):
        load_dataset(altered(dataset_file, tmp_path, arrays=extra))


def test_an_agent_too_few_is_refused(dataset_file, tmp_path):
    drop = [f"agent_2/{f}" for f in ("obs", "actions", "rewards", "next_obs", "dones")]
    with pytest.raises(DatasetError, match=r"unexpected arrays|missing arrays|3 agents"):
        load_dataset(altered(dataset_file, tmp_path, drop=drop))
    with pytest.raises(DatasetError, match=r"metadata 'obs_dims' must list one integer per agent"):
        load_dataset(altered(dataset_file, tmp_path, drop=drop, meta={"agent_names": ["agent_0", "agent_1"]}))


@pytest.mark.parametrize(
    "meta, message",
    [
        ({"agent_names": ["agent_0", "agent_0", "agent_2"]}, "lists a name twice"),
        ({"agent_names": "agent_0"}, "'agent_names' must be a non-empty list of names"),
        ({"s_random": "low"}, "metadata 's_random' must be a finite number, got 'low'"),
        ({"s_expert": float("nan")}, "metadata 's_expert' must be a finite number"),
        ({"s_expert": -10.0}, "'s_expert' equals 's_random'"),
        ({"format_version": 2}, "'format_version' is 2, expected 1"),
        ({"task": 7}, "metadata 'task' must be a non-empty string, got 7"),
        ({"env_kwargs": [1, 2]}, "metadata 'env_kwargs' must be a JSON object"),
        ({"num_transitions": "many"}, "metadata 'num_transitions' must be an integer"),
    ],
)
def test_bad_metadata_fields_are_named(dataset_file, tmp_path, meta, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(altered(dataset_file, tmp_path, meta=meta))


def test_missing_metadata_field_is_named(dataset_file, tmp_path):
    with pytest.raises(DatasetError, match=r"metadata lacks \['s_expert'\]"):
        load_dataset(altered(dataset_file, tmp_path, drop=["s_expert"]))


@pytest.mark.parametrize(
    "text, message", [("{not json", "'metadata' is not valid JSON"), ("[1, 2]", "'metadata' is not a JSON object")]
)
def test_unparsable_metadata_is_named(dataset_file, tmp_path, text, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(altered(dataset_file, tmp_path, meta_text=text))


def test_actions_outside_the_box_and_non_binary_dones_are_refused(dataset_file, tmp_path):
    act = original(dataset_file, "agent_1/actions").copy()
    act[9, 1] = 1.5
    with pytest.raises(DatasetError, match=r"'agent_1/actions' leaves the action box \[-1, 1\] \(first at row 9\)"):
        load_dataset(altered(dataset_file, tmp_path, arrays={"agent_1/actions": act}))
    dones = original(dataset_file, "agent_0/dones").copy()
    dones[4] = 0.5
    with pytest.raises(DatasetError, match=r"'agent_0/dones' must be 0 or 1 \(first other value at row 4\)"):
        load_dataset(altered(dataset_file, tmp_path, arrays={"agent_0/dones": dones}))


def _copy_zip(src, dst, replace=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item, replace(item.filename, data) if replace else data)
    return dst


def test_member_shorter_than_its_header_is_named(dataset_file, tmp_path):
    out = _copy_zip(dataset_file, tmp_path / "x.npz", lambda name, data: data[:-40] if name == "agent_1/rewards.npy" else data)
    with pytest.raises(DatasetError, match=r"x.npz: 'agent_1/rewards' is truncated or corrupt: its header announces shape \(256,\)"):
        load_dataset(out)


def test_flipped_byte_inside_an_array_fails_the_zip_crc(dataset_file, tmp_path):
    data = bytearray(dataset_file.read_bytes())
    with zipfile.ZipFile(dataset_file) as z:
        info = z.getinfo("agent_2/next_obs.npy")
    # the local header: 30 fixed bytes, then the name and extra field, then the member's bytes
    name_len, extra_len = struct.unpack("<HH", bytes(data[info.header_offset + 26 : info.header_offset + 30]))
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size - 5] ^= 0x40
    bad = tmp_path / "flip.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"flip.npz: 'agent_2/next_obs' cannot be read \(truncated or corrupt\?\): BadZipFile: Bad CRC-32"):
        load_dataset(bad)


def test_object_arrays_are_refused_without_unpickling(dataset_file, tmp_path):
    a, m = read_npz(dataset_file)
    a["agent_0/rewards"] = np.array([object()] * 256, dtype=object)
    out = tmp_path / "obj.npz"
    with open(out, "wb") as f:
        np.savez(f, metadata=np.array(json.dumps(m)), **a)
    with pytest.raises(DatasetError, match=r"'agent_0/rewards' holds Python objects"):
        load_dataset(out)


def test_compressed_archives_load(dataset_file, tmp_path):
    a, m = read_npz(dataset_file)
    out = tmp_path / "z.npz"
    with open(out, "wb") as f:
        np.savez_compressed(f, metadata=np.array(json.dumps(m)), **a)
    np.testing.assert_array_equal(load_dataset(out).obs[0], a["agent_0/obs"])


def test_directory_and_foreign_archives_are_named(tmp_path):
    with pytest.raises(DatasetError, match="is a directory, not a dataset file"):
        load_dataset(tmp_path)
    out = tmp_path / "other.zip"
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(DatasetError, match="unexpected entry 'readme.txt'; not an omar-lightning dataset"):
        load_dataset(out)


# ------------------------------------------------------------------ the data module's settings


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seed": -1}, "data.seed must be >= 0, got -1"),
        ({"eval_seed": -5}, "data.eval_seed must be >= 0, got -5"),
        ({"reference_episodes": 0}, "data.reference_episodes must be >= 1, got 0"),
        ({"eval_episodes": 0}, "data.eval_episodes must be >= 1, got 0"),
        ({"task": "chess"}, "data.task: unknown task 'chess'; known tasks: cooperative_navigation"),
        ({"env_kwargs": {"num_agents": 9}}, r"data.env_kwargs: num_agents must be in \[1, 5\], got 9"),
        ({"env_kwargs": {"colour": "red"}}, r"data.env_kwargs: unknown argument\(s\) \['colour'\]"),
    ],
)
def test_datamodule_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OfflineDataModule(generate=False, **kwargs)


def test_datamodule_refuses_sizes_of_another_task_variant(tmp_path):
    path = save_dataset(tmp_path / "d.npz", synthetic_dataset(n=30, obs_dims=(17, 17, 17)))
    with pytest.raises(DatasetError, match=r"observation/action sizes .*17.* differ from the task's .*18"):
        OfflineDataModule(path=str(path), generate=False).setup("fit")


def test_datamodule_names_an_unwritable_generation_target(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    dm = OfflineDataModule(path=str(blocker / "d.npz"), num_transitions=10, reference_episodes=1)
    with pytest.raises(DatasetError, match=r"cannot write the generated dataset to .*d.npz \(data.path\)"):
        dm.prepare_data()


def test_a_generated_dataset_shorter_than_one_episode_is_written(tmp_path):
    dm = OfflineDataModule(path=str(tmp_path / "d.npz"), num_transitions=10, reference_episodes=1, batch_size=4)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.dataset.num_transitions == 10 and dm.meta["episode_returns"]["count"] == 0
