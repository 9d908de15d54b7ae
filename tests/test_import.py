"""``omar datasets import``: the official OMAR files, OG-MARL Vaults and a user's arrays, written
by these tests in each layout, into dataset files; one line naming the file for every problem."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_datasets

from omar_lightning.data import load_dataset
from omar_lightning.data.format import DatasetError
from omar_lightning.envs import task_spec

LENGTH = 25  # MPE episode length


run = run_datasets


# ---------------------------------------------------------------------------- the official layout
def episodes_rows(rng, episodes, length, dim):
    """obs and next_obs of ``episodes`` consecutive episodes (next_obs[t] = obs[t + 1] inside one)."""
    traj = rng.standard_normal((episodes, length + 1, dim))
    return traj[:, :-1].reshape(-1, dim), traj[:, 1:].reshape(-1, dim)


def write_official(root, env_id, tier, seed, obs_dims, act_dims, episodes, length=LENGTH, state_dim=None, rng_seed=0, dtype=np.float64):
    """Files of one seed folder as the official loader reads them (``{obs,acs,rews,next_obs,dones}_<i>.npy``)."""
    rng = np.random.default_rng(rng_seed)
    folder = root / env_id / tier / f"seed_{seed}_data"
    folder.mkdir(parents=True)
    n = episodes * length
    for i, (od, ad) in enumerate(zip(obs_dims, act_dims)):
        o, no = episodes_rows(rng, episodes, length, od)
        np.save(folder / f"obs_{i}.npy", o.astype(dtype))
        np.save(folder / f"next_obs_{i}.npy", no.astype(dtype))
        np.save(folder / f"acs_{i}.npy", rng.uniform(-1, 1, (n, ad)).astype(dtype))
        np.save(folder / f"rews_{i}.npy", rng.standard_normal(n).astype(dtype))
        np.save(folder / f"dones_{i}.npy", np.zeros(n, dtype))
        if state_dim:
            np.save(folder / f"states_{i}.npy", rng.standard_normal((n, state_dim)))
            np.save(folder / f"next_states_{i}.npy", rng.standard_normal((n, state_dim)))
    return folder


def official_loader(folder, num_agents, obs_dims, ac_dims, max_steps, is_mamujoco=False, state_dim=None):
    """What the official ReplayBuffer.load_batch_data leaves in its float64 buffers (the filled part)."""
    buf = {k: [] for k in ("obs", "acs", "rews", "next_obs", "dones")}
    for i in range(num_agents):
        o = np.zeros((max_steps, obs_dims[i]))
        a = np.zeros((max_steps, ac_dims[i]))
        r, d = np.zeros(max_steps), np.zeros(max_steps)
        no = np.zeros((max_steps, obs_dims[i]))
        cur = np.load(folder / f"obs_{i}.npy")
        n = cur.shape[0]
        o[:n] = cur
        a[:n] = np.load(folder / f"acs_{i}.npy")
        r[:n] = np.load(folder / f"rews_{i}.npy")
        no[:n] = np.load(folder / f"next_obs_{i}.npy")
        d[:n] = np.load(folder / f"dones_{i}.npy")
        if is_mamujoco:
            s = np.zeros((max_steps, state_dim))
            s[:n] = np.load(folder / f"states_{i}.npy")
            s[:n] = np.load(folder / f"next_states_{i}.npy")
        for k, v in zip(buf, (o, a, r, no, d)):
            buf[k].append(v[:n])
    return buf


@pytest.fixture(scope="module")
def specs():
    return {t: task_spec(t) for t in ("cooperative_navigation", "predator_prey")}


def test_official_files_import_as_the_official_loader_reads_them(tmp_path, capsys, specs):
    spec = specs["cooperative_navigation"]
    folder = write_official(tmp_path / "datasets", "simple_spread", "medium-replay", 3, spec.obs_dims, spec.act_dims, episodes=6)
    out = tmp_path / "cn.npz"
    code, stdout, err = run(["import", "official", str(folder), "--out", str(out), "--s-random", "-1.5", "--s-expert", "9",
                             "--env-kwarg", "reward=paper"], capsys)
    assert code == 0, err
    ds = load_dataset(out)
    ref = official_loader(folder, 3, spec.obs_dims, spec.act_dims, max_steps=1000)
    for i in range(3):
        np.testing.assert_array_equal(ds.obs[i], ref["obs"][i].astype(np.float32))
        np.testing.assert_array_equal(ds.actions[i], ref["acs"][i].astype(np.float32))
        np.testing.assert_array_equal(ds.rewards[i], ref["rews"][i].astype(np.float32))
        np.testing.assert_array_equal(ds.next_obs[i], ref["next_obs"][i].astype(np.float32))
        np.testing.assert_array_equal(ds.dones[i], ref["dones"][i].astype(np.float32))
    m = ds.meta
    # task, tier and seed from the folder names; the variant as given
    assert (m["task"], m["tier"], m["seed"], m["env_kwargs"]) == ("cooperative_navigation", "medium_replay", 3, {"reward": "paper"})
    assert (m["s_random"], m["s_expert"]) == (-1.5, 9.0)
    assert m["source"]["format"] == "official" and "agents_left_out" not in m["source"]
    # behaviour score: the mean over agents of each 25-step episode's return (the task's score)
    r = np.stack([ref["rews"][i].astype(np.float32).astype(np.float64) for i in range(3)], 1)
    per_episode = r.reshape(6, LENGTH, 3).sum(1).mean(1)
    assert m["episode_returns"]["count"] == 6
    assert m["episode_returns"]["mean"] == pytest.approx(per_episode.mean())
    assert "Wrote" in stdout and "official medium_replay 203.74" in stdout


def test_dataset_root_with_task_tier_and_seed(tmp_path, capsys, specs):
    spec = specs["cooperative_navigation"]
    write_official(tmp_path / "datasets", "simple_spread", "expert", 0, spec.obs_dims, spec.act_dims, episodes=2, rng_seed=1)
    wanted = write_official(tmp_path / "datasets", "simple_spread", "expert", 2, spec.obs_dims, spec.act_dims, episodes=3, rng_seed=2)
    out = tmp_path / "e.npz"
    code, _, err = run(["import", "official", str(tmp_path / "datasets"), "--task", "cooperative_navigation", "--tier", "expert",
                        "--seed", "2", "--out", str(out), "--s-random", "0", "--s-expert", "1"], capsys)
    assert code == 0, err
    ds = load_dataset(out)
    assert ds.num_transitions == 3 * LENGTH and ds.meta["seed"] == 2
    np.testing.assert_array_equal(ds.obs[1], np.load(wanted / "obs_1.npy").astype(np.float32))


def test_predator_prey_keeps_the_predators_and_scores_the_first(tmp_path, capsys, specs):
    spec = specs["predator_prey"]
    # official simple_tag: 3 adversaries, then the prey (agent 3), whose files the loader also reads
    folder = write_official(tmp_path, "simple_tag", "random", 0, [*spec.obs_dims, 14], [*spec.act_dims, 2], episodes=4, dtype=np.float32)
    out = tmp_path / "pp.npz"
    code, _, err = run(["import", "official", str(folder), "--out", str(out), "--s-random", "0", "--s-expert", "10"], capsys)
    assert code == 0, err
    ds = load_dataset(out)
    assert ds.agent_names == spec.agent_names and ds.meta["source"]["agents_left_out"] == 1
    first = np.load(folder / "rews_0.npy").astype(np.float64).reshape(4, LENGTH).sum(1)
    assert ds.meta["episode_returns"]["mean"] == pytest.approx(first.mean(), rel=1e-6)


def test_halfcheetah_needs_the_state_files_the_loader_reads(tmp_path, capsys):
    spec = task_spec("halfcheetah_2x3")
    folder = write_official(tmp_path, "HalfCheetah-v2", "medium", 0, spec.obs_dims, spec.act_dims, episodes=2,
                            length=spec.episode_length, state_dim=17)
    out = tmp_path / "hc.npz"
    code, _, err = run(["import", "official", str(folder), "--out", str(out), "--s-random", "-280", "--s-expert", "3000"], capsys)
    assert code == 0, err
    ds = load_dataset(out)
    assert ds.num_transitions == 2 * spec.episode_length and ds.meta["episode_returns"]["count"] == 2
    (folder / "next_states_1.npy").unlink()
    code, _, err = run(["import", "official", str(folder), "--out", str(out), "--overwrite", "--s-random", "0", "--s-expert", "1"], capsys)
    assert code == 2 and err.count("\n") == 1 and f"{folder / 'next_states_1.npy'}: missing" in err
    np.save(folder / "next_states_1.npy", np.zeros((5, 17)))
    code, _, err = run(["import", "official", str(folder), "--out", str(out), "--overwrite", "--s-random", "0", "--s-expert", "1"], capsys)
    assert code == 2 and "next_states_1.npy: shape (5, 17)" in err
    np.save(folder / "next_states_1.npy", np.zeros((2 * spec.episode_length, 17)))
    # no scripted expert for HalfCheetah: S_expert must be given or measured from a snapshot
    code, _, err = run(["import", "official", str(folder), "--out", str(tmp_path / "x.npz"), "--s-random", "0"], capsys)
    assert code == 2 and "--s-expert" in err and "--expert" in err


def test_measured_reference_returns_are_the_reference_code_s(tmp_path, capsys, specs):
    from omar_lightning.data.collect.references import reference_returns

    spec = specs["cooperative_navigation"]
    folder = write_official(tmp_path, "simple_spread", "random", 0, spec.obs_dims, spec.act_dims, episodes=1)
    out = tmp_path / "r.npz"
    code, _, err = run(["import", "official", str(folder), "--out", str(out), "--reference-episodes", "2"], capsys)
    assert code == 0, err
    m = load_dataset(out).meta
    assert (m["s_random"], m["s_expert"]) == pytest.approx(reference_returns("cooperative_navigation", episodes=2))
    assert "uniform random actions (2 episodes)" in m["reference"] and "scripted" in m["reference"]
    code, _, err = run(["import", "official", str(folder), "--out", str(tmp_path / "y.npz"), "--s-random", "0", "--s-expert", "2"], capsys)
    assert code == 0 and load_dataset(tmp_path / "y.npz").meta["reference"] == "S_random: given; S_expert: given"


def test_s_expert_from_a_snapshot(tmp_path, capsys, specs):
    from pathlib import Path

    from omar_lightning.envs import make_env
    from omar_lightning.envs.rollout import run_episodes, task_returns
    from omar_lightning.data.collect.snapshots import load_snapshot, snapshot_policy

    spec = specs["cooperative_navigation"]
    folder = write_official(tmp_path, "simple_spread", "expert", 0, spec.obs_dims, spec.act_dims, episodes=1)
    snapshot = Path(__file__).resolve().parents[1] / "omar_lightning" / "policies" / "cooperative_navigation" / "expert.pt"
    out = tmp_path / "s.npz"
    code, _, err = run(["import", "official", str(folder), "--out", str(out), "--expert", str(snapshot), "--reference-episodes", "2"], capsys)
    assert code == 0, err
    m = load_dataset(out).meta
    # the snapshot played without noise on the reference episodes (seeded 10,000 and 10,001)
    policy = snapshot_policy(load_snapshot(snapshot), 0.0, np.random.default_rng(0))
    played = run_episodes(lambda: make_env("cooperative_navigation"), policy, 2, 10_000)
    assert m["s_expert"] == pytest.approx(float(task_returns(played).mean()))
    assert f"S_expert: {snapshot} without noise (2 episodes)" in m["reference"]
    code, _, err = run(["import", "official", str(folder), "--out", str(tmp_path / "t.npz"), "--expert", str(snapshot), "--s-expert", "3"], capsys)
    assert code == 2 and "not both" in err


@pytest.mark.parametrize("damage, expect", [
    (lambda f: np.save(f / "obs_1.npy", np.zeros((50, 7))), "obs_1.npy: shape (50, 7); task 'cooperative_navigation' needs [N, 18]"),
    (lambda f: np.save(f / "rews_0.npy", np.zeros((50, 1))), "rews_0.npy: shape (50, 1), expected [N]"),
    (lambda f: np.save(f / "dones_2.npy", np.zeros(49)), "dones_2.npy: 49 rows"),
    (lambda f: np.save(f / "dones_2.npy", np.full(50, 0.5)), "dones_2.npy: dones must be 0 or 1"),
    (lambda f: np.save(f / "acs_0.npy", np.full((50, 2), 1.5)), "acs_0.npy: actions leave the box [-1, 1]"),
    (lambda f: np.save(f / "obs_0.npy", np.full((50, 18), np.nan)), "obs_0.npy: NaN or inf"),
    (lambda f: (f / "acs_2.npy").unlink(), "acs_2.npy: missing"),
    (lambda f: (f / "next_obs_1.npy").write_bytes(b"not a numpy file"), "next_obs_1.npy: not a readable .npy file"),
    (lambda f: [(f / f"{k}_2.npy").unlink() for k in ("obs", "acs", "rews", "next_obs", "dones")],
     "holds 2 agents; task 'cooperative_navigation' needs 3"),
])
def test_bad_official_files_are_one_line_naming_the_file(tmp_path, capsys, specs, damage, expect):
    spec = specs["cooperative_navigation"]
    folder = write_official(tmp_path, "simple_spread", "medium", 0, spec.obs_dims, spec.act_dims, episodes=2)
    damage(folder)
    out = tmp_path / "bad.npz"
    code, _, err = run(["import", "official", str(folder), "--out", str(out), "--s-random", "0", "--s-expert", "1"], capsys)
    assert code == 2 and err.startswith("omar datasets: error: ") and err.count("\n") == 1
    assert expect in err and str(folder) in err
    assert not out.exists()


def test_wrong_task_tier_seed_or_layout_is_refused(tmp_path, capsys, specs):
    spec = specs["predator_prey"]
    folder = write_official(tmp_path, "simple_tag", "medium", 1, [*spec.obs_dims, 14], [*spec.act_dims, 2], episodes=1)
    base = ["import", "official", str(folder), "--out", str(tmp_path / "o.npz"), "--s-random", "0", "--s-expert", "1"]
    cases = [
        (["--task", "cooperative_navigation"], "holds simple_tag data (task 'predator_prey'), not task 'cooperative_navigation'"),
        (["--tier", "expert"], "the folder holds tier 'medium', not 'expert'"),
        (["--seed", "4"], "the folder holds seed 1, not 4"),
        (["--env-kwarg", "num_adversaries=2"], "the official predator_prey data have 3 learning agents"),
    ]
    for extra, expect in cases:
        code, _, err = run(base + extra, capsys)
        assert code == 2 and expect in err and err.count("\n") == 1, (extra, err)
    code, _, err = run(["import", "official", str(tmp_path), "--out", str(tmp_path / "o.npz")], capsys)
    assert code == 2 and "no obs_0.npy" in err and "seed_<s>_data" in err


def test_existing_output_is_kept_unless_overwrite(tmp_path, capsys, specs):
    spec = specs["cooperative_navigation"]
    folder = write_official(tmp_path, "simple_spread", "medium", 0, spec.obs_dims, spec.act_dims, episodes=1)
    out = tmp_path / "keep.npz"
    out.write_bytes(b"precious")
    argv = ["import", "official", str(folder), "--out", str(out), "--s-random", "0", "--s-expert", "1"]
    code, _, err = run(argv, capsys)
    assert code == 2 and "exists; give --overwrite" in err and out.read_bytes() == b"precious"
    code, _, err = run(argv + ["--overwrite"], capsys)
    assert code == 0 and load_dataset(out).num_transitions == LENGTH


# ---------------------------------------------------------------------------- vaults
def vault_experience(rng, rows, episodes, length, agents, obs_dim, act_dim, bool_terminals=True):
    steps = episodes * length
    terminals = np.zeros((rows, steps, agents), bool)
    terminals[:, length - 1 :: length] = True  # OG-MARL's OMAR vaults: set at the end of every episode
    return {
        "observations": rng.standard_normal((rows, steps, agents, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (rows, steps, agents, act_dim)).astype(np.float32),
        "rewards": rng.standard_normal((rows, steps, agents)).astype(np.float32),
        "terminals": terminals if bool_terminals else terminals.astype(np.float32),
        "truncations": np.zeros((rows, steps, agents), bool),
        "infos": {"state": rng.standard_normal((rows, steps, agents * obs_dim)).astype(np.float32)},
    }


def og_marl_returns(experience, row):
    """OG-MARL's calculate_returns (analyse_vault.py) on one batch row: agent 0's rewards summed
    up to each step whose terminals are set for all agents."""
    rewards = experience["rewards"][row, :, 0].astype(np.float64)
    terminal = experience["terminals"][row].all(axis=-1)
    out, acc = [], 0.0
    for r, t in zip(rewards, terminal):
        acc += r
        if t:
            out.append(acc)
            acc = 0.0
    return np.array(out)


@pytest.fixture
def tensorstore():
    return pytest.importorskip("tensorstore", reason="reading flashbax Vaults needs tensorstore (the 'vault' extra)")


def test_vault_imports_with_next_observations_from_the_next_rows(tmp_path, capsys, specs, tensorstore):
    from vault_layout import write_vault

    rng = np.random.default_rng(3)
    spec = specs["cooperative_navigation"]
    exp = vault_experience(rng, rows=2, episodes=3, length=LENGTH, agents=3, obs_dim=spec.obs_dims[0], act_dim=spec.act_dims[0])
    folder = write_vault(tmp_path / "omar" / "mpe" / "simple_spread.vlt" / "Medium", exp, buffer_time=100)
    out = tmp_path / "v.npz"
    code, stdout, err = run(["import", "vault", str(folder.parent), "--tier", "medium", "--row", "1", "--out", str(out),
                             "--s-random", "0", "--s-expert", "1"], capsys)
    assert code == 0, err
    ds = load_dataset(out)
    assert (ds.meta["task"], ds.meta["tier"], ds.num_transitions) == ("cooperative_navigation", "medium", 75)
    ends = np.zeros(75, bool)
    ends[LENGTH - 1 :: LENGTH] = True
    for i in range(3):
        o = exp["observations"][1, :, i]
        np.testing.assert_array_equal(ds.obs[i], o)
        np.testing.assert_array_equal(ds.actions[i], exp["actions"][1, :, i])
        np.testing.assert_array_equal(ds.rewards[i], exp["rewards"][1, :, i])
        np.testing.assert_array_equal(ds.next_obs[i][~ends], o[1:][~ends[:-1]])  # the next row inside an episode
        np.testing.assert_array_equal(ds.next_obs[i][ends], o[ends])  # none stored at an episode end
        np.testing.assert_array_equal(ds.dones[i], ends.astype(np.float32))
    assert ds.meta["source"]["row"] == 1 and ds.meta["source"]["episode_ends"] == 3
    per_episode = exp["rewards"][1].astype(np.float64).reshape(3, LENGTH, 3).sum(1).mean(1)
    assert ds.meta["episode_returns"]["mean"] == pytest.approx(per_episode.mean(), rel=1e-6)
    # compare measures agent 0's return as OG-MARL's dataset card does
    code, stdout, err = run(["compare", str(out), "--json"], capsys)
    got = json.loads(stdout)
    assert got["mean"] == pytest.approx(og_marl_returns(exp, 1).mean(), rel=1e-6) and got["episodes"] == 3


def test_vault_of_predator_prey_leaves_the_prey_out(tmp_path, capsys, specs, tensorstore):
    from vault_layout import write_vault

    rng = np.random.default_rng(4)
    spec = specs["predator_prey"]
    exp = vault_experience(rng, rows=1, episodes=2, length=LENGTH, agents=4, obs_dim=spec.obs_dims[0], act_dim=2, bool_terminals=False)
    folder = write_vault(tmp_path / "simple_tag.vlt" / "Expert", exp)
    out = tmp_path / "pp.npz"
    code, _, err = run(["import", "vault", str(folder), "--out", str(out), "--s-random", "0", "--s-expert", "1"], capsys)
    assert code == 0, err
    ds = load_dataset(out)
    assert (ds.meta["task"], ds.meta["tier"], len(ds.agent_names), ds.meta["source"]["agents_left_out"]) == ("predator_prey", "expert", 3, 1)
    assert ds.meta["episode_returns"]["mean"] == pytest.approx(og_marl_returns(exp, 0).mean(), rel=1e-6)


def test_bad_vaults_are_one_line_naming_the_vault(tmp_path, capsys, specs, tensorstore):
    from vault_layout import write_vault

    rng = np.random.default_rng(5)
    spec = specs["cooperative_navigation"]
    good = vault_experience(rng, rows=2, episodes=1, length=LENGTH, agents=3, obs_dim=spec.obs_dims[0], act_dim=spec.act_dims[0])
    root = tmp_path / "simple_spread.vlt"
    write_vault(root / "Random", good)
    write_vault(root / "Expert", {**good, "observations": good["observations"][..., :5]})
    write_vault(root / "Medium", good, version=2.0)
    no_actions = {k: v for k, v in good.items() if k != "actions"}
    write_vault(root / "Medium-Replay", no_actions)
    base = ["--out", str(tmp_path / "o.npz"), "--s-random", "0", "--s-expert", "1"]
    cases = [
        ([str(root)], "holds the vaults ['Expert', 'Medium', 'Medium-Replay', 'Random']; give --tier"),
        ([str(root / "Expert")], "leaf 'observations' (row 0, agent 0): shape (25, 5); task 'cooperative_navigation' needs [N, 18]"),
        ([str(root / "Medium")], "vault version 2.0, this reader reads version 1.x"),
        ([str(root / "Medium-Replay")], "the vault has no leaf 'actions'"),
        ([str(root / "Random"), "--row", "2"], "batch row 2 does not exist; the vault has 2"),
        ([str(root / "Random"), "--task", "predator_prey"], "the vault simple_spread.vlt holds task 'cooperative_navigation', not 'predator_prey'"),
        ([str(root / "Random"), "--tier", "expert"], "the vault uid holds tier 'random', not 'expert'"),
        ([str(tmp_path / "nothing")], "no such folder"),
    ]
    for extra, expect in cases:
        code, _, err = run(["import", "vault", *extra, *base], capsys)
        assert code == 2 and expect in err and err.count("\n") == 1, (extra, err)


def test_version_1_0_vault_metadata_is_read(tmp_path, tensorstore, specs):
    """flashbax 1.0 vaults call the shape tree 'structure' (and hold no dtypes)."""
    from vault_layout import write_vault

    from omar_lightning.data.vault import read_vault

    rng = np.random.default_rng(6)
    exp = vault_experience(rng, rows=1, episodes=1, length=4, agents=2, obs_dim=3, act_dim=2)
    folder = write_vault(tmp_path / "x.vlt" / "u", exp, version=1.0, structure_key="structure")
    got = read_vault(folder, keys=["observations", "infos.state"])
    np.testing.assert_array_equal(got["observations"], exp["observations"])
    np.testing.assert_array_equal(got["infos.state"], exp["infos"]["state"])


def test_vault_without_tensorstore_names_the_extra(tmp_path, monkeypatch):
    import builtins

    from omar_lightning.data.vault import read_vault

    folder = tmp_path / "simple_spread.vlt" / "Random"
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"version": 1.2, "structure_shape": {"observations": "(1, 5, 3, 18)"}}))
    real = builtins.__import__

    def no_tensorstore(name, *a, **k):
        if name == "tensorstore":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tensorstore)
    with pytest.raises(DatasetError, match=r"needs tensorstore: pip install 'omar-lightning\[vault\]'"):
        read_vault(folder)


# ---------------------------------------------------------------------------- a user's arrays
def user_arrays(rng, spec, n):
    out = {}
    for i, (od, ad) in enumerate(zip(spec.obs_dims, spec.act_dims)):
        o, no = episodes_rows(rng, n // LENGTH, LENGTH, od)
        out |= {f"obs_{i}": o, f"actions_{i}": rng.uniform(-1, 1, (n, ad)), f"rewards_{i}": rng.standard_normal((n, 1)).astype(np.float32),
                f"next_obs_{i}": no, f"dones_{i}": np.zeros(n, bool)}
    return out


def test_user_arrays_become_a_dataset(tmp_path, capsys, specs):
    spec = specs["cooperative_navigation"]
    arrays = user_arrays(np.random.default_rng(7), spec, 2 * LENGTH)
    arrays["dones_0"][10] = True  # an early termination ends an episode
    np.savez(tmp_path / "mine.npz", **arrays)
    out = tmp_path / "mine_dataset.npz"
    code, _, err = run(["import", "arrays", str(tmp_path / "mine.npz"), "--task", "cooperative_navigation", "--tier", "own",
                        "--out", str(out), "--s-random", "1", "--s-expert", "5"], capsys)
    assert code == 0, err
    ds = load_dataset(out)
    for i in range(3):
        np.testing.assert_array_equal(ds.obs[i], arrays[f"obs_{i}"].astype(np.float32))
        np.testing.assert_array_equal(ds.rewards[i], arrays[f"rewards_{i}"][:, 0])
        np.testing.assert_array_equal(ds.dones[i], arrays[f"dones_{i}"].astype(np.float32))
    assert (ds.meta["tier"], ds.meta["source"]["format"]) == ("own", "arrays")
    # whole episodes: rows 0..10 (terminated) and the second 25-row episode; rows 11..24 are the rest of a cut one
    r = np.stack([arrays[f"rewards_{i}"][:, 0].astype(np.float64) for i in range(3)], 1).mean(1)
    assert ds.meta["episode_returns"]["count"] == 2
    assert ds.meta["episode_returns"]["mean"] == pytest.approx((r[:11].sum() + r[25:].sum()) / 2, rel=1e-6)


@pytest.mark.parametrize("change, expect", [
    (lambda a: a.update(acs_0=a.pop("actions_0")), "unexpected arrays ['acs_0']"),
    (lambda a: a.pop("dones_1"), "missing ['dones_1']"),
    (lambda a: a.update(obs_5=a["obs_0"]), "arrays ['obs_5'] belong to no agent"),
    (lambda a: a.update(actions_2=a["actions_2"] * 3), "'actions_2': actions leave the box [-1, 1]"),
    (lambda a: a.update(rewards_1=np.zeros((50, 2))), "'rewards_1': shape (50, 2), expected [N] or [N, 1]"),
    (lambda a: a.update(obs_1=a["obs_1"].astype(np.complex64)), "'obs_1': dtype complex64, expected numbers"),
    (lambda a: [a.pop(f"{f}_2") for f in ("obs", "actions", "rewards", "next_obs", "dones")], "holds 2 agents; task 'cooperative_navigation' needs 3"),
])
def test_bad_user_arrays_are_one_line_naming_the_key(tmp_path, capsys, specs, change, expect):
    arrays = user_arrays(np.random.default_rng(8), specs["cooperative_navigation"], 2 * LENGTH)
    change(arrays)
    np.savez(tmp_path / "mine.npz", **arrays)
    code, _, err = run(["import", "arrays", str(tmp_path / "mine.npz"), "--task", "cooperative_navigation", "--tier", "own",
                        "--out", str(tmp_path / "o.npz"), "--s-random", "0", "--s-expert", "1"], capsys)
    assert code == 2 and expect in err and str(tmp_path / "mine.npz") in err and err.count("\n") == 1, err


def test_arrays_need_task_and_tier(tmp_path, capsys, specs):
    np.savez(tmp_path / "mine.npz", **user_arrays(np.random.default_rng(9), specs["cooperative_navigation"], LENGTH))
    code, _, err = run(["import", "arrays", str(tmp_path / "mine.npz"), "--tier", "own", "--out", str(tmp_path / "o.npz")], capsys)
    assert code == 2 and "give --task" in err
    code, _, err = run(["import", "arrays", str(tmp_path / "mine.npz"), "--task", "nowhere", "--tier", "own", "--out", str(tmp_path / "o.npz")], capsys)
    assert code == 2 and "unknown task 'nowhere'" in err
