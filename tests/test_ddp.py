"""Two processes with Lightning's DDP on CPU (gloo), through the `omar` console script.

One short two-process fit is recorded on every process (tests/rank_recorder.py) and checked
against single-process computations: different minibatches per process, identical networks
(online, targets, BatchNorm statistics) on every process after every update, every update equal
to one taken with the mean of the processes' gradients, evaluations equal to the mean over all
processes' episodes, and an exact resume from a mid-run checkpoint.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from omar_lightning import OMAR
from omar_lightning.datamodules import MinibatchStream, OfflineDataModule
from omar_lightning.data.format import normalized_score
from omar_lightning.evaluation import episode_share, policy_returns
from omar_lightning.nets import clip_grad_norm_per_member_, parameter_members
from omar_lightning.data import save_dataset

from conftest import synthetic_dataset, tiny_config

TESTS = Path(__file__).resolve().parent
WORLD = 2
EVAL_EPISODES = 3  # split 2 + 1 over the processes
STRATEGY = "ddp_find_unused_parameters_true"


def omar_fit(workdir: Path, args: list[str]) -> subprocess.CompletedProcess:
    omar = shutil.which("omar", path=os.path.dirname(sys.executable))
    assert omar, "the console script `omar` is not installed next to this python"
    # Lightning's own launcher on this machine: no cluster or launcher variables from the environment
    launcher_vars = ("SLURM_", "TORCHELASTIC_", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "WORLD_SIZE", "LOCAL_RANK", "RANK", "GROUP_RANK")
    env = {k: v for k, v in os.environ.items() if not k.startswith(launcher_vars)}
    env.update(PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    cmd = [omar, "fit", *args, "--trainer.accelerator", "cpu", "--trainer.devices", str(WORLD), "--trainer.strategy", STRATEGY]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def load_records(out_dir: Path) -> list[dict]:
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def eval_rows(workdir: Path, save_dir: str) -> dict[int, tuple[float, float]]:
    (metrics,) = workdir.glob(f"{save_dir}/logs/version_*/metrics.csv")
    with open(metrics) as f:
        rows = [r for r in csv.DictReader(f) if r.get("eval/return")]
    return {int(float(r["updates"])): (float(r["eval/return"]), float(r["eval/normalized_score"])) for r in rows}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One 6-update two-process fit: checkpoints every 2 updates (all kept), evaluations at 3 and 6."""
    d = tmp_path_factory.mktemp("ddp")
    data = save_dataset(d / "d.npz", synthetic_dataset(n=500))
    config = tiny_config(d / "ddp.yaml", checkpoint_args={"save_top_k": -1}, extra_callbacks=[("rank_recorder.RankRecorder", {"out_dir": str(d / "record")})])
    common = ["--config", str(config), "--data.path", str(data), "--data.generate", "false", "--data.eval_episodes", str(EVAL_EPISODES)]
    omar_fit(d, common + ["--trainer.logger.init_args.save_dir", "full"])
    (ckpt_dir,) = d.glob("full/logs/version_*/checkpoints")
    return {"dir": d, "common": common, "data": data, "ckpt_dir": ckpt_dir, "records": load_records(d / "record")}


def assert_same_state(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{what}: {k}")


def test_processes_draw_different_minibatches_and_keep_identical_networks(run):
    records = run["records"]
    assert [r["rank"] for r in records] == list(range(WORLD)) and all(r["world_size"] == WORLD for r in records)
    assert [len(r["updates"]) for r in records] == [6] * WORLD
    dm = OfflineDataModule(path=str(run["data"]), batch_size=32, generate=False)
    dm.setup("fit")
    for u in range(6):
        steps = [r["updates"][u] for r in records]
        assert [s["updates"] for s in steps] == [u + 1] * WORLD
        # each process's minibatch is the stream's batch u for its rank; the ranks' batches differ
        for rank, step in enumerate(steps):
            expected = MinibatchStream(dm.store, 32, seed=0, rank=rank).batch(u)
            for k, v in expected.items():
                torch.testing.assert_close(step["batch"][k], v, rtol=0, atol=0)
        assert not torch.equal(steps[0]["batch"]["obs"], steps[1]["batch"]["obs"])
        # identical networks everywhere after the update: online, targets and BatchNorm statistics
        for step in steps[1:]:
            assert_same_state(step["state"], steps[0]["state"], f"update {u + 1}")
        torch.testing.assert_close(steps[1]["rng"], steps[0]["rng"], rtol=0, atol=0)
    assert_same_state(records[1]["final"], records[0]["final"], "final")
    # the targets and the running statistics did move
    initial, final = records[0]["initial"], records[0]["final"]
    for key in ("actor_target.net.fc1.weight", "critic_target.net.fc1.weight", "actor.net.norm.running_mean", "critic.net.norm.running_var"):
        assert not torch.equal(initial[key], final[key]), key


def test_every_update_applies_the_mean_of_the_processes_gradients(run):
    """Replays the run in one process: per update, each rank's gradient from its own minibatch
    (same RNG draws, its own BatchNorm statistics), averaged, clipped and stepped."""
    records = run["records"]
    ckpt = torch.load(run["ckpt_dir"] / "last.ckpt", weights_only=True)
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
    rho = 0.01  # SoftTargetUpdate in tests/configs/tiny.yaml
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each DDP process (OMP_NUM_THREADS=1)
    try:
        model = OMAR(**hparams)
        model.load_state_dict(records[0]["initial"])
        model.train()
        actor_opt, critic_opt = model.configure_optimizers()
        # BatchNorm buffers that a forward pass in training mode changes; each process has its own
        stats = [b for m in model.modules() if isinstance(m, _BatchNorm) for b in (m.running_mean, m.running_var, m.num_batches_tracked)]
        per_rank = [[t.clone() for t in stats] for _ in range(WORLD)]
        actor_objective = lambda b: model.actor_objective(b["obs"], b["actions"])  # noqa: E731
        phases = [(model.critic_objective, model.critic, critic_opt), (actor_objective, model.actor, actor_opt)]
        for u in range(6):
            steps = [r["updates"][u] for r in records]
            torch.set_rng_state(steps[0]["rng"])
            for objective, net, opt in phases:
                params = [p for group in opt.param_groups for p in group["params"]]
                rng = torch.get_rng_state()
                grads = []
                for rank in range(WORLD):
                    torch.set_rng_state(rng)  # every process draws the same samples
                    for t, saved in zip(stats, per_rank[rank]):
                        t.copy_(saved)
                    loss, _ = objective(steps[rank]["batch"])
                    grads.append(torch.autograd.grad(loss, params))
                    per_rank[rank] = [t.clone() for t in stats]
                for p, *g in zip(params, *grads):
                    assert not torch.equal(g[0], g[1])  # the processes' gradients differ...
                    p.grad = g[0] * (1 / WORLD) + g[1] * (1 / WORLD)  # ...and DDP applies their mean
                clip_grad_norm_per_member_(params, parameter_members(net), model.num_agents, hparams["grad_clip"])
                opt.step()
                opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                for i, t in enumerate(stats):  # running statistics averaged, batch counts equal
                    t.copy_((per_rank[0][i] + per_rank[1][i]) / WORLD if t.is_floating_point() else per_rank[0][i])
                per_rank = [[t.clone() for t in stats] for _ in range(WORLD)]
                for online, target in model.target_pairs():
                    torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), rho)
            state = model.state_dict()
            for k, v in steps[0]["state"].items():
                torch.testing.assert_close(state[k], v, rtol=0, atol=0, msg=f"update {u + 1}: {k}")
    finally:
        torch.set_num_threads(threads)


def _scores(record_state: dict, hparams: dict, seed: int) -> np.ndarray:
    model = OMAR(**hparams)
    model.load_state_dict(record_state)
    return policy_returns(model.actor, "cooperative_navigation", {}, EVAL_EPISODES, seed)


def test_logged_evaluation_is_the_mean_over_all_processes_episodes(run):
    records = run["records"]
    ckpt = torch.load(run["ckpt_dir"] / "last.ckpt", weights_only=True)
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
    seed = ckpt["datamodule_hyper_parameters"]["eval_seed"]
    logged = eval_rows(run["dir"], "full")
    assert sorted(logged) == [0, 3, 6]  # the evaluation before the first update, then every 3 updates
    first, count = episode_share(EVAL_EPISODES, 0, WORLD)
    assert (first, count) == (0, 2)  # rank 0 plays two episodes, rank 1 one
    for updates, state in ((0, records[0]["initial"]), (3, records[0]["updates"][2]["state"]), (6, records[0]["final"])):
        scores = _scores(state, hparams, seed)  # all the episodes, in one process
        ret, norm = logged[updates]
        assert ret == pytest.approx(scores.mean(), rel=1e-6)
        assert norm == pytest.approx(normalized_score(scores, -10.0, 30.0).mean(), rel=1e-6)
        assert ret != pytest.approx(scores[:count].mean(), rel=1e-6)  # not rank 0's share alone
    for record in records:  # every process holds the same reduced value
        assert record["callback_metrics"]["eval/return"] == logged[6][0]
        assert record["callback_metrics"]["eval/normalized_score"] == logged[6][1]


def test_resuming_two_processes_from_a_mid_run_checkpoint_is_exact(run):
    d = run["dir"]
    mid = run["ckpt_dir"] / "updates=2.ckpt"
    config = tiny_config(d / "resume.yaml", checkpoint_args={"save_top_k": -1}, extra_callbacks=[("rank_recorder.RankRecorder", {"out_dir": str(d / "record_resumed")})])
    common = [a if a != str(d / "ddp.yaml") else str(config) for a in run["common"]]
    omar_fit(d, common + ["--trainer.logger.init_args.save_dir", "resumed", "--ckpt_path", str(mid)])
    resumed = load_records(d / "record_resumed")
    assert [r["start_updates"] for r in resumed] == [2] * WORLD
    for record in resumed:
        assert [s["updates"] for s in record["updates"]] == [3, 4, 5, 6]
        assert_same_state(record["final"], run["records"][0]["final"], f"rank {record['rank']}")
    # the evaluations after the resume point are the uninterrupted run's (update 0 is not repeated)
    assert eval_rows(d, "resumed") == {u: v for u, v in eval_rows(d, "full").items() if u > 0}


@pytest.mark.parametrize(
    "strategy, sync_batchnorm, error",
    [
        ("ddp", False, "use --trainer.strategy ddp_find_unused_parameters_true"),
        ("ddp_find_unused_parameters_true", True, "trainer.sync_batchnorm must be false"),
        ("ddp_find_unused_parameters_true", False, None),
    ],
)
def test_ddp_settings_that_cannot_work_are_refused_before_training(strategy, sync_batchnorm, error):
    from pytorch_lightning import Trainer

    trainer = Trainer(accelerator="cpu", devices=2, strategy=strategy, sync_batchnorm=sync_batchnorm, logger=False, enable_progress_bar=False)
    model = OMAR([18] * 3, [2] * 3, hidden_dim=8)
    model.trainer = trainer
    if error is None:
        model.setup("fit")
    else:
        with pytest.raises(ValueError, match=error):
            model.setup("fit")
