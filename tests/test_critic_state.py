"""MATD3 critics on the environment's global state (``critic_input="state"``), and the default
critics on the observations left as they were."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from omar_lightning.cli import main
from omar_lightning.data import load_dataset
from omar_lightning.data.collect.matd3 import TRAIN_SEED_BASE, MATD3Config, MATD3Trainer
from omar_lightning.data.collect.snapshots import load_snapshot
from omar_lightning.envs import make_env, task_spec

from matd3_state_digest import FLOAT_RTOL, RUN_RTOL, RUNS, default_runs, fingerprint, flat_digests, same_fingerprint

RECORDED = Path(__file__).resolve().parent / "data" / "matd3_default_state.json"
CHEETAH = {"variant": "official", "max_episode_steps": 50}
TINY = dict(hidden_dim=16, batch_size=32, buffer_size=400, start_steps=100, update_every=10, updates_per_step=0.5,
            num_envs=2, eval_every=100, eval_episodes=1)


def _state_trainer(seed=0, **over):
    return MATD3Trainer("halfcheetah_2x3", seed, CHEETAH, MATD3Config(**{**TINY, "critic_input": "state", **over}))


def _params(net):
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def test_default_runs_are_those_of_the_code_before_critic_input():
    """state.pt and expert.pt of short default runs (three tasks) against the fingerprints recorded
    from the code (matd3_state_digest: integers, RNG states and counters exactly, floating-point
    values within FLOAT_RTOL or the run's RUN_RTOL); the config is the one recorded, critic_input="observations"."""
    recorded = json.loads(RECORDED.read_text())
    now = default_runs()
    assert set(now) == set(recorded) == set(RUNS)
    for name in RUNS:
        assert now[name]["config"] == recorded[name]["config"] and now[name]["config"]["critic_input"] == "observations", name
        for file in ("state.pt", "expert.pt"):
            assert set(now[name][file]) == set(recorded[name][file]), f"{name} {file}"
            rtol = RUN_RTOL.get(name, FLOAT_RTOL)
            differ = sorted(k for k in now[name][file] if not same_fingerprint(now[name][file][k], recorded[name][file][k], rtol))
            assert not differ, f"{name} {file}: {differ}"


def test_fingerprints_tell_a_changed_value_from_rounding():
    a = torch.linspace(-1, 1, 64)
    assert same_fingerprint(fingerprint(a), fingerprint(a * (1 + 1e-6)))  # rounding-sized
    assert not same_fingerprint(fingerprint(a), fingerprint(a * 1.01))
    assert not same_fingerprint(fingerprint(a), fingerprint(a.reshape(8, 8)))
    b = a.clone()
    b[3] += 0.1  # one entry moved
    assert not same_fingerprint(fingerprint(a), fingerprint(b))
    assert not same_fingerprint(fingerprint(torch.arange(4)), fingerprint(torch.tensor([0, 1, 2, 4])))  # integers exactly
    f = flat_digests({"x": 0.5, "n": 3})
    assert same_fingerprint(f["x"], flat_digests({"x": 0.5 + 1e-9})["x"]) and not same_fingerprint(f["x"], flat_digests({"x": 0.6})["x"])
    assert not same_fingerprint(f["n"], flat_digests({"n": 4})["n"])


def test_state_critics_take_the_state_and_all_actions():
    t = _state_trainer()
    spec = task_spec("halfcheetah_2x3", **CHEETAH)
    assert spec.state_dim == 17 and t.obs_dims == [6, 6]
    w = t.critic.net.fc1.weight  # [2 twins x A, input, hidden]
    assert w.shape[:2] == (4, spec.state_dim + sum(spec.act_dims))
    assert t.critic_target.net.fc1.weight.shape == w.shape
    assert t.actor.net.fc1.weight.shape[1] == 6  # actors keep their own observations
    # agent i's critic input is [s, a_other, a_i]
    state, act = torch.randn(5, 17), torch.rand(2, 5, 3) * 2 - 1
    ctx = t._critic_input(state, act)
    for i in range(2):
        torch.testing.assert_close(torch.cat([ctx[i], act[i]], -1), torch.cat([state, act[1 - i], act[i]], -1))
    # on the observations the same critics see the 12 observations instead of the 17 state numbers
    default = MATD3Trainer("halfcheetah_2x3", 0, CHEETAH, MATD3Config(**TINY))
    assert default.critic.net.fc1.weight.shape[1] == 12 + 6 and not default.replay.has_state


def test_tiny_state_run_updates_its_critics_and_stores_the_states_of_the_stepped_envs():
    t = _state_trainer(seed=4)
    critic0, actor0 = {k: v.clone() for k, v in t.critic.state_dict().items()}, _params(t.actor).clone()
    t.train(200, progress=False)  # 2 copies x 50 steps per round, updates from step 100 on
    assert t.updates >= 50
    assert all(not torch.equal(v, critic0[k]) for k, v in t.critic.state_dict().items())
    assert not torch.equal(_params(t.actor), actor0)
    moved = (t.critic.state_dict()["net.fc1.weight"] - critic0["net.fc1.weight"]).abs().sum((0, 2))  # per input feature
    assert (moved > 0).all()  # every state and action column of the first layer learns
    buf = {k: v[: t.size] for k, v in t.replay.arrays.items()}
    assert buf["state"].shape == (200, 17) and buf["next_state"].shape == (200, 17)
    # An independent rollout of every training episode with the buffer's actions: round r, step s of
    # copy e is row r * 100 + s * 2 + e, and the episode is seeded TRAIN_SEED_BASE + seed * 10**6 + 2r + e.
    env = make_env("halfcheetah_2x3", **CHEETAH)
    for r in range(2):
        for e in range(2):
            obs, _ = env.reset(seed=TRAIN_SEED_BASE + 4 * 1_000_000 + 2 * r + e)
            for s in range(50):
                row = r * 100 + s * 2 + e
                assert np.array_equal(buf["state"][row], env.state())
                assert np.array_equal(buf["obs"][row], np.stack([obs["agent_0"], obs["agent_1"]]))
                obs, *_ = env.step({"agent_0": buf["actions"][row, 0], "agent_1": buf["actions"][row, 1]})
                assert np.array_equal(buf["next_state"][row], env.state())
    env.close()
    # the state holds the 12 observed joint numbers and 5 more: the torso's height, angle and
    # velocities, its forward velocity (the reward) at index 8 among them
    assert all(np.isin(buf["obs"][row], buf["state"][row]).all() for row in range(200))
    assert not np.isin(buf["state"][:, 8], buf["obs"]).any()


def test_state_run_resumes_exactly(tmp_path):
    full = _state_trainer(seed=1)
    full.train(300, progress=False)
    part = _state_trainer(seed=1)
    part.train(100, progress=False, save_path=tmp_path / "state.pt")
    saved = torch.load(tmp_path / "state.pt", weights_only=False)
    assert saved["config"]["critic_input"] == "state"
    for k in ("state", "next_state"):  # the states round-trip through state.pt
        assert np.array_equal(saved["buffer"][k].numpy(), part.replay.arrays[k][:100])
    resumed = MATD3Trainer.load(tmp_path / "state.pt")
    assert resumed.replay.has_state
    resumed.train(300, progress=False)
    assert (resumed.steps, resumed.updates, resumed.size) == (full.steps, full.updates, full.size)
    for net in ("actor", "critic", "actor_target", "critic_target"):
        assert torch.equal(_params(getattr(resumed, net)), _params(getattr(full, net))), net
    for k, v in full.replay.arrays.items():
        assert np.array_equal(resumed.replay.arrays[k], v), k


def test_a_state_pt_written_before_critic_input_resumes_as_before(tmp_path):
    """Files of earlier runs have no critic_input in their config and no states in their buffer."""
    cfg = MATD3Config(**TINY)
    full = MATD3Trainer("halfcheetah_2x3", 2, CHEETAH, cfg)
    full.train(200, progress=False)
    part = MATD3Trainer("halfcheetah_2x3", 2, CHEETAH, MATD3Config(**TINY))
    part.train(100, progress=False, save_path=tmp_path / "state.pt")
    st = torch.load(tmp_path / "state.pt", weights_only=False)
    assert set(st["buffer"]) == {"obs", "actions", "rewards", "next_obs", "dones"}
    del st["config"]["critic_input"]
    torch.save(st, tmp_path / "state.pt")
    resumed = MATD3Trainer.load(tmp_path / "state.pt")
    assert resumed.cfg.critic_input == "observations" and not resumed.replay.has_state
    resumed.train(200, progress=False)
    assert torch.equal(_params(resumed.critic), _params(full.critic)) and torch.equal(_params(resumed.actor), _params(full.actor))
    # a file whose buffer lacks the states its settings need is named
    st["config"]["critic_input"] = "state"
    torch.save(st, tmp_path / "state.pt")
    with pytest.raises(ValueError, match=r"state\.pt: replay buffer holds .*not the .*next_state"):
        MATD3Trainer.load(tmp_path / "state.pt")


def test_bad_critic_input_and_tasks_without_a_state_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="critic_input must be one of observations, state, got 'global'"):
        MATD3Config(critic_input="global").validate()
    with pytest.raises(ValueError, match=r"critic_input=state needs centralized critics \(centralized=true\)"):
        MATD3Config(critic_input="state", centralized=False).validate()
    for task in ("cooperative_navigation", "predator_prey", "world"):
        with pytest.raises(ValueError, match=f"critic_input=state: task '{task}' has no global state beyond the agents' observations"):
            MATD3Trainer(task, 0, config=MATD3Config(**{**TINY, "critic_input": "state"}))
    args = ["collect", "train", "--steps", "100", "--no-progress"]
    for task, setting, says in (("cooperative_navigation", "critic_input=state", "critic_input=state: task 'cooperative_navigation'"),
                                ("halfcheetah_2x3", "critic_input=states", "critic_input must be one of observations, state")):
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "--task", task, "--out", str(tmp_path / task), "--set", setting])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and says in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / task / "state.pt").exists()


def test_state_run_writes_the_usual_snapshots_and_tiers(tmp_path, capsys):
    """omar collect train --set critic_input=state: snapshots and the medium-replay tier are the
    same kind of file as a default run's; a default run refuses to continue with the state."""
    files = {}
    for name, extra in (("state", ["--set", "critic_input=state"]), ("default", [])):
        out = tmp_path / name
        argv = ["collect", "train", "--task", "halfcheetah_2x3", "--steps", "200", "--out", str(out), "--no-progress",
                "--env-kwarg", "variant=official", "--env-kwarg", "max_episode_steps=50", "--set", "start_steps=100",
                "--set", "batch_size=32", "--set", "hidden_dim=16", "--set", "num_envs=2", "--eval-every", "100", *extra]
        main(argv)
        tier = tmp_path / f"{name}.npz"
        main(["collect", "dataset", "--task", "halfcheetah_2x3", "--tier", "medium_replay", "--policy", str(out / "expert.pt"),
              "--out", str(tier), "--env-kwarg", "variant=official", "--env-kwarg", "max_episode_steps=50",
              "--reference-episodes", "1", "--no-progress"])
        files[name] = (load_snapshot(out / "expert.pt"), np.load(tier), load_dataset(tier), argv)
    assert MATD3Trainer.load(tmp_path / "state" / "state.pt").cfg.critic_input == "state"
    (snap_s, npz_s, ds_s, _), (snap_d, npz_d, ds_d, argv_d) = files["state"], files["default"]
    recorded = json.loads(RECORDED.read_text())["halfcheetah_official"]["expert.pt"]
    assert set(snap_s) == set(snap_d) == {*(k.split("/")[0] for k in recorded), "module"}
    assert snap_s["obs_dims"] == [6, 6] and snap_s["actor"]["net.fc1.weight"].shape == snap_d["actor"]["net.fc1.weight"].shape
    assert sorted(npz_s.files) == sorted(npz_d.files) and not any("state" in f for f in npz_s.files)
    assert set(ds_s.meta) == set(ds_d.meta) and ds_s.num_transitions == ds_d.num_transitions
    # the tier's rows are the state run's replay rows (its actions, not the default run's)
    buf = MATD3Trainer.load(tmp_path / "state" / "state.pt").replay.arrays
    assert np.isin(ds_s.actions[0][:, 0], buf["actions"][:, 0, 0]).all()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*argv_d[:5], "400", *argv_d[6:], "--set", "critic_input=state"])
    assert "critic_input=state: " in capsys.readouterr().err
