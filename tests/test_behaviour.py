"""MATD3 behaviour policies and ``omar collect``: determinism, exact resume, tiers, interrupted writes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from omar_lightning.cli import main
from omar_lightning.data import DatasetError, load_dataset
from omar_lightning.data.collect.matd3 import MATD3Config, MATD3Trainer
from omar_lightning.data.collect.snapshots import load_snapshot

TINY = dict(hidden_dim=16, batch_size=32, buffer_size=2000, start_steps=100, update_every=10, updates_per_step=0.5,
            num_envs=2, eval_every=100, eval_episodes=2)


def _params(t):
    return torch.cat([p.detach().flatten() for p in list(t.actor.parameters()) + list(t.critic.parameters())])


def test_matd3_is_deterministic_for_a_seed_and_learns_something():
    runs = []
    for seed in (0, 0, 1):
        t = MATD3Trainer("cooperative_navigation", seed, config=MATD3Config(**TINY))
        t.train(300, progress=False)
        runs.append(t)
    assert runs[0].steps == 300 and runs[0].updates > 50 and runs[0].size == 300
    assert torch.equal(_params(runs[0]), _params(runs[1]))
    assert runs[0].evaluations == runs[1].evaluations and len(runs[0].evaluations) == 3
    assert not torch.equal(_params(runs[0]), _params(runs[2]))
    # transitions in the buffer: actions in the box, padded slots zero, obs continue next_obs within an episode
    buf = runs[0].replay.arrays
    assert np.abs(buf["actions"][:300]).max() <= 1
    assert np.array_equal(buf["obs"][2, :, :], buf["next_obs"][0, :, :])  # env copy 0 at step 0 then step 1


@pytest.mark.parametrize("input_norm", [False, True])
def test_matd3_resume_equals_uninterrupted(tmp_path, input_norm):
    full = MATD3Trainer("cooperative_navigation", 3, config=MATD3Config(**TINY, input_norm=input_norm))
    full.train(300, progress=False)
    part = MATD3Trainer("cooperative_navigation", 3, config=MATD3Config(**TINY, input_norm=input_norm))
    part.train(150, progress=False, save_path=tmp_path / "state.pt")
    resumed = MATD3Trainer.load(tmp_path / "state.pt")
    resumed.train(300, progress=False)
    assert (resumed.steps, resumed.updates, resumed.size) == (full.steps, full.updates, full.size)
    assert torch.equal(_params(resumed), _params(full))
    # the piece that stopped at 150 evaluated its final policy too; otherwise the same history
    assert [e for e in resumed.evaluations if e["steps"] != 150] == full.evaluations


def test_matd3_input_norm_hides_a_common_action_shift_from_the_actor_loss():
    """Why behaviour critics have no input BatchNorm by default: with batch statistics, Q1(o, pi)
    in the actor loss does not change when every action of the batch moves by the same amount,
    so the actor gets no gradient towards larger forces; without it, Q1 does change."""
    g = torch.Generator().manual_seed(0)
    for norm in (True, False):
        t = MATD3Trainer("predator_prey", 0, config=MATD3Config(**TINY, input_norm=norm))
        obs = torch.randn(t.A, 64, t.do, generator=g)
        acts = torch.rand(t.A, 64, t.da, generator=g) * 0.2 - 0.1
        pi = acts.clone().requires_grad_(True)
        q = t.critic.q1(t._critic_input(obs, acts), pi)
        shifted = t.critic.q1(t._critic_input(obs, acts), pi + 0.5)
        (grad,) = torch.autograd.grad(q.sum(), pi)
        if norm:
            assert torch.allclose(q, shifted, atol=1e-5) and grad.sum((1,)).abs().max() < 1e-4
        else:
            assert not torch.allclose(q, shifted, atol=1e-2) and grad.sum((1,)).abs().max() > 1e-3
    assert MATD3Config().input_norm is False


def test_matd3_continued_past_its_buffer_equals_a_run_with_the_larger_buffer(tmp_path):
    full = MATD3Trainer("cooperative_navigation", 5, config=MATD3Config(**{**TINY, "buffer_size": 400}))
    full.train(400, progress=False)
    part = MATD3Trainer("cooperative_navigation", 5, config=MATD3Config(**{**TINY, "buffer_size": 200}))
    part.train(200, progress=False, save_path=tmp_path / "state.pt")
    resumed = MATD3Trainer.load(tmp_path / "state.pt")
    with pytest.raises(ValueError, match="buffer_size"):
        resumed.train(400, progress=False)
    resumed.reserve(resumed.rows_needed(400))
    assert resumed.cfg.buffer_size == 400 and resumed.size == 200
    resumed.train(400, progress=False)
    assert (resumed.steps, resumed.updates, resumed.size) == (full.steps, full.updates, full.size)
    assert torch.equal(_params(resumed), _params(full))
    for k, v in full.replay.arrays.items():
        assert np.array_equal(resumed.replay.arrays[k], v), k


def test_collect_train_continues_past_its_first_steps(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--task", "cooperative_navigation", "--out", str(out), "--eval-every", "1250", "--no-progress"]
    _collect([*args, "--steps", "1250"])  # sizes its buffer for 1,250 rows: whole rounds of 10 x 25 steps
    _collect([*args, "--steps", "1500"])
    index = json.loads((out / "snapshots.json").read_text())
    assert [s["steps"] for s in index["snapshots"]] == [1250, 1500]
    assert MATD3Trainer.load(out / "state.pt").size == 1500


def test_collect_train_records_its_time_at_every_evaluation(tmp_path, monkeypatch):
    """A run stopped after an evaluation keeps the time it trained; resuming adds to it."""
    from omar_lightning.data.collect.snapshots import SnapshotIndex

    out = tmp_path / "run"
    args = ["train", "--task", "cooperative_navigation", "--out", str(out), "--eval-every", "250", "--no-progress"]

    def stop(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(SnapshotIndex, "pick_final_levels", stop)
    with pytest.raises(KeyboardInterrupt):
        _collect([*args, "--steps", "250"])
    first = json.loads((out / "snapshots.json").read_text())["train_seconds"]
    assert first > 0
    monkeypatch.undo()
    _collect([*args, "--steps", "500"])
    assert json.loads((out / "snapshots.json").read_text())["train_seconds"] > first


def test_collect_train_resumed_after_its_last_evaluation_indexes_each_snapshot_once(tmp_path):
    """State saved at step 500, evaluated at 750; the resumed run evaluates 750 again: one entry, the same score."""
    def run(out, steps):
        _collect(["train", "--task", "cooperative_navigation", "--out", str(out), "--eval-every", "250", "--save-every", "500",
                  "--no-progress", "--steps", str(steps)])

    out, part = tmp_path / "run", tmp_path / "part"
    run(out, 500)
    run(out, 750)
    before = json.loads((out / "snapshots.json").read_text())["snapshots"]
    assert MATD3Trainer.load(out / "state.pt").steps == 750
    # the run as a stop right after the evaluation at step 750 leaves it: the state saved at 500, the index holding 750
    run(part, 500)
    (part / "snapshots.json").write_text(json.dumps({**json.loads((part / "snapshots.json").read_text()), "snapshots": before}))
    run(part, 750)
    after = json.loads((part / "snapshots.json").read_text())["snapshots"]
    assert [s["steps"] for s in after] == [250, 500, 750]
    assert [s["score"] for s in after] == [s["score"] for s in before]


def test_collect_train_resume_takes_a_new_eval_every_and_trains_the_same(tmp_path):
    """--eval-every on resume changes which snapshots are kept, not the weights."""
    base = ["train", "--task", "cooperative_navigation", "--no-progress", "--steps", "1000"]
    _collect([*base, "--out", str(tmp_path / "full"), "--eval-every", "500"])
    split = tmp_path / "split"
    _collect([*base[:-1], "500", "--out", str(split), "--eval-every", "500"])
    _collect([*base, "--out", str(split), "--eval-every", "250"])
    index = json.loads((split / "snapshots.json").read_text())
    assert [s["steps"] for s in index["snapshots"]] == [500, 750, 1000]
    full, resumed = MATD3Trainer.load(tmp_path / "full" / "state.pt"), MATD3Trainer.load(split / "state.pt")
    assert resumed.cfg.eval_every == 250
    assert torch.equal(_params(resumed), _params(full))


def test_chase_distances_are_each_predators_distance_to_the_prey():
    from omar_lightning.envs import make_env

    env = make_env("predator_prey")
    env.reset(seed=3)
    env.step_forces(np.full((3, 2), 0.5, np.float32))
    prey = env.world.agents[-1]
    assert not prey.adversary
    want = [np.linalg.norm(a.state.p_pos - prey.state.p_pos) for a in env.world.agents[:3]]
    np.testing.assert_allclose(env.chase_distances(), want, rtol=1e-6)


def test_matd3_shaping_changes_only_the_training_reward():
    cfg = {**TINY, "start_steps": 400, "num_envs": 1, "eval_every": 10_000}
    shaped = MATD3Trainer("predator_prey", 2, config=MATD3Config(**cfg, shaping=0.5))
    plain = MATD3Trainer("predator_prey", 2, config=MATD3Config(**cfg))
    for t in (shaped, plain):
        t.train(200, progress=False)  # uniform random steps only: the same transitions
    assert shaped.updates == plain.updates == 0 and "distances" not in plain.replay.arrays
    for k in ("obs", "actions", "rewards", "next_obs", "dones"):
        assert np.array_equal(shaped.replay.arrays[k][:200], plain.replay.arrays[k][:200]), k  # the buffer keeps the task reward
    d = shaped.replay.arrays["distances"][:200]
    assert d.min() > 0 and d.max() < 10
    # one update of each: equal when the plain run's rewards are the shaped ones
    plain.replay.arrays["rewards"][:200] -= 0.5 * d
    shaped.update(), plain.update()
    assert torch.equal(_params(shaped), _params(plain))
    plain.replay.arrays["rewards"][:200] += 0.5 * d
    plain.update(), shaped.update()
    assert not torch.equal(_params(shaped), _params(plain))
    with pytest.raises(ValueError, match="shaping"):
        MATD3Config(shaping=-1.0).validate()
    with pytest.raises(ValueError, match="shaping: task 'cooperative_navigation'"):
        MATD3Trainer("cooperative_navigation", 0, config=MATD3Config(**TINY, shaping=0.1))


def test_collect_train_refuses_another_shaping_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--task", "predator_prey", "--out", str(out), "--no-progress"]
    _collect([*args, "--steps", "250", "--shaping", "0.2"])
    assert MATD3Trainer.load(out / "state.pt").cfg.shaping == 0.2
    with pytest.raises(SystemExit):
        _collect([*args, "--steps", "500", "--shaping", "0.1"])
    assert "shaping=0.1" in capsys.readouterr().err and MATD3Trainer.load(out / "state.pt").steps == 250


def test_collect_train_set_overrides_config_fields_and_is_checked_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--task", "cooperative_navigation", "--out", str(out), "--no-progress", "--steps", "250"]
    _collect([*args, "--set", "actor_lr=0.002", "--set", "critic_lr=1e-3", "--set", "hidden_dim=16", "--set", "centralized=false"])
    cfg = MATD3Trainer.load(out / "state.pt").cfg
    assert (cfg.actor_lr, cfg.critic_lr, cfg.hidden_dim, cfg.centralized, cfg.batch_size) == (0.002, 1e-3, 16, False, 1024)
    for bad, says in (("hidden=16", "FIELD one of"), ("hidden_dim=0.5", "hidden_dim takes a int"), ("buffer_size=10", "FIELD one of"),
                      ("centralized=2", "centralized takes a bool")):
        with pytest.raises(SystemExit):
            _collect([*args[:-2], "--steps", "500", "--set", bad])
        assert says in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a resumed run keeps its settings
        _collect([*args[:-2], "--steps", "500", "--set", "actor_lr=0.01"])
    assert "actor_lr=0.01" in capsys.readouterr().err and MATD3Trainer.load(out / "state.pt").steps == 250
    _collect([*args[:-2], "--steps", "500", "--set", "actor_lr=0.002"])  # the same value continues
    assert MATD3Trainer.load(out / "state.pt").steps == 500


def test_matd3_heterogeneous_world_and_decentralized_critics():
    t = MATD3Trainer("world", 0, config=MATD3Config(**{**TINY, "centralized": False, "num_envs": 1, "eval_every": 1000}))
    t.train(150, progress=False)
    assert t.updates > 0 and np.all(t.replay.arrays["actions"][:150, 1:, 2:] == 0) and np.any(t.replay.arrays["actions"][:150, 0, 2:] != 0)  # silent adversaries' padded action slots
    with pytest.raises(ValueError, match="buffer_size"):
        t.train(5000, progress=False)


def _collect(argv, capsys=None):
    main(["collect", *argv])


def test_collect_train_and_all_tiers(tmp_path, capsys):
    out = tmp_path / "run"
    _collect(["train", "--task", "cooperative_navigation", "--steps", "500", "--out", str(out), "--eval-every", "250",
              "--no-progress", "--levels", "low=-1000"])
    for name in ("expert.pt", "medium.pt", "low.pt", "state.pt", "snapshots.json"):
        assert (out / name).exists()
    snap = load_snapshot(out / "expert.pt")
    assert snap["task"] == "cooperative_navigation" and snap["replay_rows"] in (250, 500)
    low = load_snapshot(out / "low.pt")
    assert low["steps"] == 250  # the first evaluated policy reaches -1000
    files = {}
    for tier in ("random", "medium_replay", "medium", "expert"):
        path = tmp_path / f"{tier}.npz"
        policy = ["--policy", str(out / ("medium.pt" if tier in ("medium", "medium_replay") else "expert.pt"))] if tier != "random" else ["--expert", str(out / "expert.pt")]
        _collect(["dataset", "--task", "cooperative_navigation", "--tier", tier, *policy, "--size", "300", "--out", str(path),
                  "--reference-episodes", "4", "--no-progress"])
        ds = load_dataset(path)
        files[tier] = ds
        assert ds.meta["tier"] == tier and ds.meta["s_expert"] != ds.meta["s_random"]
    assert files["random"].num_transitions == 300 and files["expert"].num_transitions == 300
    rows = load_snapshot(out / "medium.pt")["replay_rows"]
    assert files["medium_replay"].num_transitions == min(300, rows)
    # S_expert is the expert snapshot's noiseless return, the same in every tier
    assert files["random"].meta["s_expert"] == files["expert"].meta["s_expert"] == files["medium"].meta["s_expert"]
    assert files["medium"].meta["episode_returns"]["count"] == 12
    # medium_replay rows are whole episodes one after another (the buffer interleaves 10 copies)
    mr = files["medium_replay"]
    cont = np.all([(mr.obs[i][1:] == mr.next_obs[i][:-1]).all(1) for i in range(3)], axis=0)
    assert cont.sum() == mr.num_transitions - mr.num_transitions // 25
    assert mr.meta["episode_returns"]["count"] == mr.num_transitions // 25


def test_collect_dataset_is_deterministic_by_seed(tmp_path):
    out = tmp_path / "run"
    _collect(["train", "--task", "predator_prey", "--steps", "250", "--out", str(out), "--eval-every", "250", "--no-progress"])
    paths = []
    for k, seed in enumerate((0, 0, 1)):
        p = tmp_path / f"e{k}.npz"
        _collect(["dataset", "--task", "predator_prey", "--tier", "expert", "--policy", str(out / "expert.pt"), "--size", "100",
                  "--seed", str(seed), "--out", str(p), "--reference-episodes", "30", "--no-progress"])
        paths.append(load_dataset(p))
    a, b, c = paths
    assert a.meta["checksum"] == b.meta["checksum"] != c.meta["checksum"]


def test_collect_dataset_workers_write_the_same_file(tmp_path):
    # World: heterogeneous agents (the leader's larger action), 44 episodes over 2 processes.
    files = []
    for workers in ("1", "2"):
        p = tmp_path / f"w{workers}.npz"
        _collect(["dataset", "--task", "world", "--tier", "random", "--size", "1100", "--out", str(p), "--reference-episodes", "12",
                  "--workers", workers, "--no-progress"])
        files.append(load_dataset(p))
    one, two = files
    assert one.meta["checksum"] == two.meta["checksum"]
    assert (one.meta["s_random"], one.meta["s_expert"], one.meta["episode_returns"]) == (two.meta["s_random"], two.meta["s_expert"], two.meta["episode_returns"])
    assert one.meta["episode_returns"]["count"] == 44


def test_collect_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _collect(["dataset", "--task", "cooperative_navigation", "--tier", "medium", "--out", str(tmp_path / "x.npz")])
    assert e.value.code == 2 and "--policy is required" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(SystemExit):
        _collect(["dataset", "--task", "cooperative_navigation", "--tier", "medium", "--policy", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "x.npz")])
    err = capsys.readouterr().err
    assert "bad.pt: not a readable policy snapshot" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        _collect(["dataset", "--task", "halfcheetah_2x3", "--tier", "random", "--size", "10", "--out", str(tmp_path / "h.npz"),
                  "--reference-episodes", "1", "--no-progress"])
    assert "no scripted reference expert for task 'halfcheetah_2x3'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _collect(["dataset", "--task", "cooperative_navigation", "--tier", "random", "--workers", "0", "--out", str(tmp_path / "x.npz")])
    assert "--workers: must be an integer >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "h.npz").exists()


def test_write_that_raises_midway_leaves_no_dataset(tmp_path, monkeypatch):
    import zipfile

    from omar_lightning.data import format as fmt

    real = zipfile.ZipFile.writestr
    calls = {"n": 0}

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full")
        return real(self, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing)
    monkeypatch.setattr(zipfile.ZipFile, "open", _failing_open(zipfile.ZipFile.open, calls))
    out = tmp_path / "r.npz"
    with pytest.raises(OSError, match="disk full"):
        main(["collect", "dataset", "--task", "cooperative_navigation", "--tier", "random", "--size", "200", "--out", str(out),
              "--reference-episodes", "2", "--no-progress"])
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert fmt  # the writer is save_dataset's


def _failing_open(real, calls):
    def open_(self, name, mode="r", *a, **k):
        if mode == "w":
            calls["n"] += 1
            if calls["n"] == 4:
                raise OSError("disk full")
        return real(self, name, mode, *a, **k)

    return open_


def test_killed_collection_leaves_no_file_that_loads(tmp_path):
    """SIGKILL during a long write: the target never appears; a leftover temporary file is hidden,
    named *.tmp, and does not load as a dataset."""
    out = tmp_path / "big.npz"
    code = (
        "import numpy as np, time, zipfile\n"
        "from omar_lightning.data import OfflineDataset, save_dataset\n"
        "real = zipfile.ZipFile.open\n"
        "def slow(self, name, mode='r', *a, **k):\n"
        "    if mode == 'w' and 'agent_1' in name:\n"
        "        print('writing', flush=True); time.sleep(60)\n"
        "    return real(self, name, mode, *a, **k)\n"
        "zipfile.ZipFile.open = slow\n"
        "n = 50000\n"
        "f = lambda *s: np.ones(s, np.float32)\n"
        "ds = OfflineDataset(obs=[f(n, 18)] * 3, actions=[f(n, 2) * 0.5] * 3, rewards=[f(n)] * 3, next_obs=[f(n, 18)] * 3,\n"
        "    dones=[np.zeros(n, np.float32)] * 3, meta={'task': 'cooperative_navigation', 'tier': 'random',\n"
        "    'agent_names': ['agent_0', 'agent_1', 'agent_2'], 's_random': 0.0, 's_expert': 1.0, 'env_kwargs': {}})\n"
        f"save_dataset({str(out)!r}, ds)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not out.exists()
    leftovers = list(tmp_path.iterdir())
    assert leftovers and all(p.name.startswith(".") and p.name.endswith(".tmp") for p in leftovers)
    for p in leftovers:
        with pytest.raises(DatasetError):
            load_dataset(p)


SHIPPED = sorted(p for p in (Path(__file__).parents[1] / "omar_lightning" / "policies").iterdir() if p.is_dir())


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_snapshots_replay_their_recorded_scores(folder):
    """Every committed behaviour policy is the one its metadata describes: played noiselessly on
    the training run's evaluation episodes, it scores exactly what snapshots.json recorded (in the
    environment it was trained in, which for a level with ``trained_with`` has another fixed policy)."""
    from omar_lightning.data.collect.matd3 import TASK_DEFAULTS
    from omar_lightning.data.collect.snapshots import snapshot_policy
    from omar_lightning.envs import make_env
    from omar_lightning.envs.rollout import run_episodes, task_returns

    index = json.loads((folder / "snapshots.json").read_text())
    cfg = MATD3Config(**TASK_DEFAULTS.get(index["task"], {}))  # the run's evaluation episodes
    for level in ("medium", "expert"):
        snap = load_snapshot(folder / f"{level}.pt")
        # a level trained against another fixed policy (``trained_with``) replays in its own training environment
        assert snap["task"] == index["task"] and snap["env_kwargs"] == {**index["env_kwargs"], **index["levels"][level].get("trained_with", {})}
        policy = snapshot_policy(snap, 0.0, np.random.default_rng(0))
        res = run_episodes(lambda: make_env(snap["task"], **snap["env_kwargs"]), policy, cfg.eval_episodes, cfg.eval_seed,
                           num_envs=min(10, cfg.eval_episodes))
        # MPE replays to the digit on any machine. MuJoCo's floating point is not the same on every
        # CPU and a 1,000-step HalfCheetah episode is chaotic: on one machine the medium snapshot's
        # five episodes replay as 3505.8, 960.8 (a fall), 3303.2, 3572.2, 3372.7 (mean 2942.9)
        # against the recorded 3439.3, the expert's to the digit. There the check is the level.
        tolerance = 0.2 if index["task"] == "halfcheetah_2x3" else 1e-5
        assert float(task_returns(res).mean()) == pytest.approx(index["levels"][level]["score"], rel=tolerance)
        assert snap["score"] == pytest.approx(index["levels"][level]["score"], rel=1e-9)
