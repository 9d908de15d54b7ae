"""Dataset file format, validation errors, and the minibatch stream."""

import json
import math
import re
import zipfile
from pathlib import Path

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


def test_each_agents_minibatch_holds_distinct_transitions():
    """Drawn without replacement, as the official replay buffer: no index twice inside one
    agent's batch, for independent and for joint draws, also when the batch is most of the data."""
    for n, b in ((1000, 64), (1000, 400), (100, 90)):
        for joint in (False, True):
            s = MinibatchStream(_store(n), batch_size=b, seed=3, joint=joint)
            for u in range(20):
                rows = s.batch(u)["rewards"]  # the store's row index per agent
                for agent in rows:
                    assert agent.unique().numel() == b, (n, b, joint, u)
                if joint:
                    assert torch.equal(rows[0], rows[1])


@pytest.mark.parametrize("n", [6, 5])  # the sorted-stream path (2k <= n) and the permutation path
def test_draws_without_replacement_are_uniform_over_ordered_samples(n):
    """Every ordered sample of 3 distinct indices of n is equally likely (chi-square over all
    n (n-1) (n-2) of them), and every index is in a sample with probability 3 / n."""
    import itertools

    from omar_lightning.datamodules.offline import sample_without_replacement

    k, draws = 3, 24_000
    x = sample_without_replacement(n, draws, k, torch.Generator().manual_seed(11))
    assert x.shape == (draws, k) and all(len(set(r)) == k for r in x.tolist())
    counts = {}
    for r in x.tolist():
        counts[tuple(r)] = counts.get(tuple(r), 0) + 1
    cells = list(itertools.permutations(range(n), k))
    assert set(counts) == set(cells)
    expected = draws / len(cells)
    chi2 = sum((counts[c] - expected) ** 2 / expected for c in cells)
    dof = len(cells) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof), chi2  # mean dof, std sqrt(2 dof)
    inclusion = torch.bincount(x.flatten(), minlength=n).double() / draws
    torch.testing.assert_close(inclusion, torch.full((n,), k / n, dtype=torch.float64), rtol=0, atol=0.01)
    with pytest.raises(ValueError, match="cannot draw 7 distinct indices from 6"):
        sample_without_replacement(6, 1, 7, torch.Generator())


def test_official_reuse_repeats_one_evaluation_periods_batches_per_agent(dataset_file):
    """data.minibatches: official_reuse with a period of 10: batch u is batch u mod 10 of the
    fresh stream, every agent its own; 30 updates see only the first period's transitions."""
    n, b, period = 1000, 16, 10
    fresh = MinibatchStream(_store(n), b, seed=4)
    reuse = MinibatchStream(_store(n), b, seed=4, reuse_period=period)
    rows = torch.stack([reuse.batch(u)["rewards"] for u in range(30)], 1).long()  # [A, 30, B]
    first = torch.stack([fresh.batch(u)["rewards"] for u in range(period)], 1).long()
    for u in range(30):
        assert torch.equal(rows[:, u], first[:, u % period])
    assert not torch.equal(rows[:, 0], rows[:, 1]) and not torch.equal(rows[0, 0], rows[1, 0])
    for agent in range(3):
        distinct = rows[agent].unique().numel()
        assert distinct == first[agent].unique().numel() and distinct <= period * b
        all_fresh = torch.stack([fresh.batch(u)["rewards"][agent] for u in range(30)]).long().unique().numel()
        assert all_fresh > distinct  # fresh draws reach further into the data
    # the data module passes its setting on; resuming at update 23 continues with batch 3
    dm = OfflineDataModule(path=str(dataset_file), batch_size=8, generate=False, minibatches="official_reuse", reuse_period=period, seed=2)
    dm.setup("fit")
    loader = iter(dm.train_dataloader())
    batches = [next(loader) for _ in range(period + 2)]
    torch.testing.assert_close(batches[period]["obs"], batches[0]["obs"], rtol=0, atol=0)
    torch.testing.assert_close(batches[period + 1]["obs"], batches[1]["obs"], rtol=0, atol=0)
    dm.load_state_dict({"updates": 23})
    torch.testing.assert_close(next(iter(dm.train_dataloader()))["obs"], batches[3]["obs"], rtol=0, atol=0)
    dm = OfflineDataModule(path=str(dataset_file), batch_size=8, generate=False, seed=2)
    dm.setup("fit")
    loader = iter(dm.train_dataloader())
    fresh_batches = [next(loader) for _ in range(period + 1)]
    torch.testing.assert_close(fresh_batches[0]["obs"], batches[0]["obs"], rtol=0, atol=0)
    assert not torch.equal(fresh_batches[period]["obs"], batches[period]["obs"])


@pytest.mark.parametrize(
    "kwargs, message",
    [({"minibatches": "reuse"}, "data.minibatches must be one of ['fresh', 'official_reuse'], got 'reuse'"),
     ({"reuse_period": 0}, "data.reuse_period must be >= 1, got 0")],
)
def test_minibatch_settings_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        OfflineDataModule(**kwargs)


def test_batch_larger_than_the_dataset_is_refused(dataset_file):
    dm = OfflineDataModule(path=str(dataset_file), batch_size=257, generate=False)
    with pytest.raises(ValueError, match=r"data.batch_size \(257\) is larger than the dataset .*coop.npz \(256 transitions\): each agent's minibatch is drawn without replacement; give a smaller data.batch_size or a larger dataset"):
        dm.setup("fit")


def test_default_path_names_the_variant_folder():
    from omar_lightning.data import default_path

    assert default_path("world", "expert") == Path("data/world/expert.npz")
    assert default_path("world", "expert", {}) == Path("data/world/expert.npz")
    assert default_path("cooperative_navigation", "medium", {"num_agents": 3}) == Path("data/cooperative_navigation/medium.npz")
    assert default_path("cooperative_navigation", "medium", {"variant": "official"}) == Path("data/cooperative_navigation_official/medium.npz")
