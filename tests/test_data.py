"""Dataset file format, validation errors, and the minibatch stream."""

import json
import zipfile

import numpy as np
import pytest
import torch

from omar_lightning.data import DatasetError, load_dataset, save_dataset
from omar_lightning.datamodules import MinibatchStream, OfflineDataModule
from omar_lightning.datamodules.offline import stack_padded

from conftest import synthetic_dataset


def test_round_trip_with_plain_numpy(tmp_path):
    ds = synthetic_dataset(n=100)
    path = save_dataset(tmp_path / "d.npz", ds)
    back = load_dataset(path)
    for f in ("obs", "actions", "rewards", "next_obs", "dones"):
        for a, b in zip(getattr(ds, f), getattr(back, f)):
            np.testing.assert_array_equal(a, b)
    # readable without this package
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["metadata"][()]))
        assert z["agent_1/obs"].shape == (100, 18)
    assert meta["num_transitions"] == 100 and meta["obs_dims"] == [18, 18, 18] and meta["act_dims"] == [2, 2, 2]
    assert meta["s_random"] == -10.0 and meta["task"] == "cooperative_navigation"
    assert not list(tmp_path.glob(".*.tmp"))


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DatasetError, match="dataset file not found: .*nope.npz"):
        load_dataset(tmp_path / "nope.npz")


def test_arrays_that_disagree_in_length_are_refused(tmp_path):
    ds = synthetic_dataset(n=50)
    ds.rewards[2] = ds.rewards[2][:-1]
    with pytest.raises(DatasetError, match="'agent_2/rewards' has 49 rows but 'agent_0/obs' has 50"):
        save_dataset(tmp_path / "d.npz", ds)


def test_agent_count_mismatch_is_refused(tmp_path):
    ds = synthetic_dataset(n=50)
    ds.meta["agent_names"] = ["agent_0", "agent_1"]
    with pytest.raises(DatasetError, match="3 agents but metadata 'agent_names' lists 2"):
        save_dataset(tmp_path / "d.npz", ds)


def test_nan_is_refused_with_its_row(tmp_path):
    ds = synthetic_dataset(n=50)
    ds.next_obs[1][17, 3] = np.nan
    with pytest.raises(DatasetError, match=r"'agent_1/next_obs' contains NaN or inf \(first at row 17\)"):
        save_dataset(tmp_path / "d.npz", ds)


def _rewrite(path, out, **changes):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    with open(out, "wb") as f:
        np.savez(f, **arrays)
    return out


def test_altered_file_fails_the_checksum(dataset_file, tmp_path):
    with np.load(dataset_file) as z:
        r = z["agent_0/rewards"].copy()
    r[3] += 1.0
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_dataset(_rewrite(dataset_file, tmp_path / "x.npz", **{"agent_0/rewards": r}))


def test_nan_written_by_another_tool_is_refused_on_load(dataset_file, tmp_path):
    with np.load(dataset_file) as z:
        o = z["agent_2/obs"].copy()
    o[5, 0] = np.inf
    with pytest.raises(DatasetError, match="'agent_2/obs' contains NaN or inf"):
        load_dataset(_rewrite(dataset_file, tmp_path / "x.npz", **{"agent_2/obs": o}))


def test_truncated_file_is_refused(dataset_file, tmp_path):
    data = dataset_file.read_bytes()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="cut.npz: not a readable dataset file"):
        load_dataset(bad)


def test_missing_agent_array_is_named(dataset_file, tmp_path):
    out = tmp_path / "x.npz"
    with zipfile.ZipFile(dataset_file) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            if item.filename != "agent_1/dones.npy":
                dst.writestr(item, src.read(item.filename))
    with pytest.raises(DatasetError, match="missing arrays \\['agent_1/dones'\\]"):
        load_dataset(out)


def test_stack_padded_pads_heterogeneous_agents():
    x = stack_padded([np.ones((4, 3), np.float32), 2 * np.ones((4, 1), np.float32)])
    assert x.shape == (2, 4, 3)
    assert (x[1, :, 0] == 2).all() and (x[1, :, 1:] == 0).all()


def _store(n=1000, a=3):
    return {"obs": torch.arange(n, dtype=torch.float32).repeat(a, 1).unsqueeze(-1), "rewards": torch.arange(n, dtype=torch.float32).repeat(a, 1)}


def test_stream_draws_independent_indices_per_agent_and_keeps_rows_aligned():
    s = MinibatchStream(_store(), batch_size=64, seed=0)
    b = s.batch(0)
    assert b["obs"].shape == (3, 64, 1) and b["rewards"].shape == (3, 64)
    torch.testing.assert_close(b["obs"].squeeze(-1), b["rewards"])  # same row for every field
    assert not torch.equal(b["rewards"][0], b["rewards"][1])


def test_stream_is_a_function_of_seed_rank_and_update():
    it = iter(MinibatchStream(_store(), 32, seed=5, start=0))
    batches = [next(it) for _ in range(4)]
    resumed = next(iter(MinibatchStream(_store(), 32, seed=5, start=3)))
    torch.testing.assert_close(resumed["obs"], batches[3]["obs"])
    other_rank = MinibatchStream(_store(), 32, seed=5, rank=1).batch(3)
    other_seed = MinibatchStream(_store(), 32, seed=6).batch(3)
    assert not torch.equal(other_rank["obs"], batches[3]["obs"]) and not torch.equal(other_seed["obs"], batches[3]["obs"])


def test_datamodule_validates_the_dataset_against_the_task(tmp_path):
    path = save_dataset(tmp_path / "tag.npz", synthetic_dataset(task="predator_prey"))
    dm = OfflineDataModule(path=str(path), generate=False)
    with pytest.raises(DatasetError, match="dataset is for task 'predator_prey' but data.task is 'cooperative_navigation'"):
        dm.setup("fit")
    path = save_dataset(tmp_path / "two.npz", synthetic_dataset(obs_dims=(18, 18), act_dims=(2, 2)))
    with pytest.raises(DatasetError, match="agents"):
        OfflineDataModule(path=str(path), generate=False).setup("fit")


def test_datamodule_missing_dataset_without_generation(tmp_path):
    dm = OfflineDataModule(path=str(tmp_path / "absent.npz"), generate=False)
    with pytest.raises(DatasetError, match="absent.npz \\(data.path\\)"):
        dm.prepare_data()
    # medium and expert are written from the shipped snapshots (tests/test_first_run.py); medium-replay cannot be
    dm = OfflineDataModule(tier="medium_replay", path=str(tmp_path / "absent.npz"))
    with pytest.raises(DatasetError, match="tier 'medium_replay'"):
        dm.prepare_data()


@pytest.mark.parametrize("kwargs, name", [({"tier": "great"}, "data.tier"), ({"batch_size": 0}, "data.batch_size"), ({"task": "chess"}, "chess")])
def test_datamodule_bad_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        OfflineDataModule(**kwargs)
