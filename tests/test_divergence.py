"""Divergence stops training before the bad step is applied; the last good checkpoint stays intact."""

import hashlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from omar_lightning import OMAR
from omar_lightning.callbacks import DivergenceGuard
from omar_lightning.checkpoint_io import AtomicCheckpointIO
from omar_lightning.cli import main
from omar_lightning.data import save_dataset
from omar_lightning.datamodules import MinibatchStream
from omar_lightning.errors import DivergenceError

from conftest import synthetic_dataset, tiny_config

N, BATCH = 400, 32  # tiny.yaml's batch size


def first_drawn_at(update: int, seed: int = 0) -> int:
    """A row that agent 0 draws first in update ``update`` (counted from 1), never before."""
    rows = torch.arange(N, dtype=torch.float32).repeat(3, 1).unsqueeze(-1)
    stream = MinibatchStream({"obs": rows}, BATCH, seed)
    earlier = {int(r) for u in range(update - 1) for r in stream.batch(u)["obs"][0, :, 0]}
    return next(int(r) for r in stream.batch(update - 1)["obs"][0, :, 0] if int(r) not in earlier)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_omar(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    (line,) = [x for x in err.splitlines() if x.startswith("omar: error: ")]
    return exit_info.value.code, line[len("omar: error: ") :]


def test_huge_reward_stops_training_before_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ds = synthetic_dataset(n=N)
    ds.rewards[0][first_drawn_at(6)] = 3e38  # finite in float32; its squared TD error is not
    data = save_dataset(tmp_path / "d.npz", ds)
    ckpts = tmp_path / "ckpts"
    config = tiny_config(tmp_path / "c.yaml", checkpoint_dir=ckpts, every_n_checkpoint=2, every_n_eval=100)
    common = ["--config", str(config), "--data.path", str(data), "--data.generate", "false", "--trainer.enable_model_summary", "false"]

    main(["fit", *common, "--model.max_updates", "4"])  # checkpoints after updates 2 and 4
    last = ckpts / "last.ckpt"
    before = sha(last)

    # resume for 10 updates: update 5 is fine, update 6 (a checkpoint update) meets the reward
    status, line = run_omar(capsys, "fit", *common, "--model.max_updates", "10", "--ckpt_path", "last")
    assert status == 1
    assert line == f"update 6: critic loss is inf; training stopped before the critic step was applied, last checkpoint {last} is kept"
    assert sha(last) == before
    state = AtomicCheckpointIO().load_checkpoint(last)
    assert state["omar"]["updates"] == 4
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    # and the run resumes from it
    main(["fit", *common, "--model.max_updates", "5", "--ckpt_path", "last"])
    assert AtomicCheckpointIO().load_checkpoint(last)["omar"]["updates"] == 5


def test_nan_actor_loss_names_the_update_and_adam_never_takes_the_step(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    import omar_lightning.module as module

    calls = {"n": 0}
    real = module.actor_loss

    def actor_loss(*args, **kwargs):
        loss, metrics = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 3 else loss), metrics  # the actor loss of update 3

    monkeypatch.setattr(module, "actor_loss", actor_loss)
    seen = {}
    hook = DivergenceGuard.on_before_optimizer_step

    def keep_optimizers(self, trainer, pl_module, optimizer):
        seen["optimizers"] = trainer.optimizers
        seen["module"] = pl_module
        hook(self, trainer, pl_module, optimizer)

    monkeypatch.setattr(DivergenceGuard, "on_before_optimizer_step", keep_optimizers)
    data = save_dataset(tmp_path / "d.npz", synthetic_dataset(n=N))
    config = tiny_config(tmp_path / "c.yaml", checkpoint_dir=tmp_path / "ckpts", every_n_checkpoint=2, every_n_eval=100)
    status, line = run_omar(capsys, "fit", "--config", str(config), "--data.path", str(data), "--data.generate", "false",
                            "--trainer.enable_model_summary", "false")
    assert status == 1
    last = tmp_path / "ckpts" / "last.ckpt"
    assert line == f"update 3: actor loss is nan; training stopped before the actor step was applied, last checkpoint {last} is kept"
    # Adam took the critic step of update 3 but not its actor step, and the actor's weights are finite
    actor, critic = seen["module"].actor, seen["module"].critic
    steps = {id(p): int(opt.state[p]["step"]) for opt in seen["optimizers"] for g in opt.param_groups for p in g["params"]}
    assert {steps[id(p)] for p in actor.parameters()} == {2}
    assert {steps[id(p)] for p in critic.parameters()} == {3}
    assert all(torch.isfinite(p).all() for p in actor.parameters())
    assert torch.load(last, weights_only=False)["omar"]["updates"] == 2


def _guard_case(loss, grad):
    guard = DivergenceGuard()
    module = OMAR([18] * 3, [2] * 3, hidden_dim=8)
    opt = torch.optim.Adam(module.critic.parameters())
    for p in module.critic.parameters():
        p.grad = torch.zeros_like(p)
    next(module.critic.parameters()).grad.view(-1)[0] = grad
    trainer = SimpleNamespace(checkpoint_callback=None, global_step=0)
    guard.on_before_backward(trainer, module, torch.tensor(loss))
    guard.on_before_optimizer_step(trainer, module, opt)


def test_guard_checks_loss_and_gradients():
    _guard_case(1.5, 2.0)  # finite: nothing happens
    with pytest.raises(DivergenceError, match=r"^update 1: critic loss is nan; .*no checkpoint had been written$"):
        _guard_case(float("nan"), 0.0)
    with pytest.raises(DivergenceError, match=r"^update 1: critic loss is -inf"):
        _guard_case(float("-inf"), 0.0)
    with pytest.raises(DivergenceError, match=r"^update 1: critic gradients are not finite \(loss 1.5\)"):
        _guard_case(1.5, float("inf"))
    # a large but finite gradient is not mistaken for an overflow (its 2-norm would be inf)
    _guard_case(1.5, 3e38)


def test_checkpoint_io_refuses_non_finite_weights_and_keeps_the_previous_file(tmp_path):
    io = AtomicCheckpointIO()
    good = {"state_dict": {"w": torch.ones(3)}, "omar": {"updates": 4}}
    path = tmp_path / "last.ckpt"
    io.save_checkpoint(good, path)
    before = sha(path)
    bad = {"state_dict": {"w": torch.tensor([1.0, np.inf, 0.0])}, "omar": {"updates": 5}}
    with pytest.raises(DivergenceError, match=r"update 5: 'w' is not finite; refused to write .*last.ckpt, the previous checkpoint is kept"):
        io.save_checkpoint(bad, path)
    assert sha(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_non_finite_evaluation_returns_are_refused(tmp_path, monkeypatch):
    import omar_lightning.evaluation as evaluation

    monkeypatch.setattr(evaluation, "policy_returns", lambda *a, **k: np.array([1.0, np.nan]))
    dm = SimpleNamespace(eval_episodes=2, task="cooperative_navigation", env_kwargs={}, eval_seed=0, meta={"s_random": 0.0, "s_expert": 1.0})
    module = SimpleNamespace(trainer=SimpleNamespace(datamodule=dm, world_size=1, global_rank=0), actor=None, updates=7)
    with pytest.raises(DivergenceError, match=r"update 7: evaluation returns are not finite"):
        evaluation.evaluate_and_log(module, prefix="eval")
