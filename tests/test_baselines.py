"""Baselines: each loss against an independent computation, which parameters move, a short CLI fit."""

import copy
import json
from pathlib import Path

import pytest
import torch

from omar_lightning import BC, MACQL, MATD3BC, OMAR
from omar_lightning.cli import main
from omar_lightning.evaluate_cli import main as evaluate_main
from omar_lightning.datamodules import OfflineDataModule
from omar_lightning.losses import bc_loss, td3bc_actor_loss

from conftest import config_args, synthetic_dataset
from omar_lightning.data import save_dataset
from test_module import Moves, batch_for, fit

ROOT = Path(__file__).resolve().parents[1]


def test_td3bc_actor_loss_against_scalar_loops():
    torch.manual_seed(0)
    A, B, D = 2, 5, 2
    pi, a, q = torch.rand(A, B, D) * 2 - 1, torch.rand(A, B, D) * 2 - 1, torch.randn(A, B) * 7
    act_dims = torch.tensor([2.0, 2.0])
    loss, m = td3bc_actor_loss(pi, q, a, 2.5, act_dims)
    expected = 0.0
    for i in range(A):
        lam = 2.5 / (sum(abs(float(q[i, b])) for b in range(B)) / B)
        bc = sum(float(pi[i, b, j] - a[i, b, j]) ** 2 for b in range(B) for j in range(D)) / (B * D)
        expected += -lam * float(q[i].mean()) + bc
    torch.testing.assert_close(loss, torch.tensor(expected), rtol=1e-5, atol=1e-5)
    # lambda carries no gradient: d loss / d q = -lambda / B
    q = q.clone().requires_grad_(True)
    td3bc_actor_loss(pi, q, a, 2.5, act_dims)[0].backward()
    torch.testing.assert_close(q.grad[0], torch.full((B,), -2.5 / q[0].detach().abs().mean().item() / B))


def test_bc_loss_against_scalar_loop_with_padded_actions():
    pi = torch.tensor([[[0.5, 0.0]], [[0.2, 0.0]]])  # agent 1 has one action feature
    a = torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]]])
    loss, _ = bc_loss(pi, a, torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(loss, torch.tensor((0.25 + 1.0) / 2 + 0.64))


class SpyBC(Moves, BC):
    pass


class SpyTD3BC(Moves, MATD3BC):
    pass


def test_bc_moves_only_actors_and_matd3bc_moves_both(dataset_file):
    dm = OfflineDataModule(path=str(dataset_file), batch_size=32, generate=False)
    bc = SpyBC(dm.obs_dims, dm.act_dims, hidden_dim=16, max_updates=2)
    fit(bc, dm)
    assert len(bc.moved) == 2 and all(n.startswith("actor.") for step in bc.moved for n in step)
    td3 = SpyTD3BC(dm.obs_dims, dm.act_dims, hidden_dim=16, max_updates=1)
    fit(td3, dm)
    critic_moved, actor_moved = td3.moved
    assert critic_moved and all(n.startswith("critic.") for n in critic_moved)
    assert actor_moved and all(n.startswith("actor.") for n in actor_moved)


def test_macql_is_omar_with_tau_zero():
    b = batch_for(3)
    torch.manual_seed(0)
    macql = MACQL([18] * 3, [2] * 3, hidden_dim=16, cql_alpha=2.0)
    torch.manual_seed(0)
    omar = OMAR([18] * 3, [2] * 3, hidden_dim=16, cql_alpha=2.0, tau=0.0)
    for m in (macql, omar):
        torch.manual_seed(7)
        loss, _ = m.actor_objective(b["obs"], b["actions"])
        m.loss = loss
    torch.testing.assert_close(macql.loss, omar.loss)
    with pytest.raises(ValueError, match="model.tau is fixed at 0 for MACQL"):
        MACQL([18] * 3, [2] * 3, tau=0.5)


def test_matd3bc_actor_uses_the_dataset_action_not_refinement(monkeypatch):
    from omar_lightning.refinement import Refinement

    monkeypatch.setattr(Refinement, "__call__", lambda *a, **k: pytest.fail("refinement ran for TD3+BC"))
    m = MATD3BC([18] * 3, [2] * 3, hidden_dim=16)
    b = batch_for(1)
    loss, metrics = m.actor_objective(b["obs"], b["actions"])
    pi = m.actor(b["obs"])
    expected, _ = td3bc_actor_loss(pi, m.critic.q1(b["obs"], pi), b["actions"], 2.5, torch.tensor([2.0] * 3))
    torch.testing.assert_close(loss, expected)
    assert m.hparams.cql_alpha == 0.0
    with pytest.raises(ValueError, match="model.bc_alpha"):
        MATD3BC([18] * 3, [2] * 3, bc_alpha=0.0)


@pytest.mark.parametrize(
    "config, cls",
    [("macql/cooperative_navigation/random", "MACQL"), ("matd3bc/cooperative_navigation/random", "MATD3BC"),
     ("bc/cooperative_navigation/random", "BC"), ("omar/cooperative_navigation/medium_centralized", "OMAR")],
)
def test_short_fit_of_shipped_configs(config, cls, tmp_path, monkeypatch):
    # the shipped cells run on the official variant: a dataset made there
    dataset_file = save_dataset(tmp_path / "coop_official.npz", synthetic_dataset(env_kwargs={"variant": "official"}))
    monkeypatch.chdir(tmp_path)
    main(["fit", *config_args(ROOT / "configs" / f"{config}.yaml"), "--data.path", str(dataset_file), "--data.generate", "false",
          "--data.batch_size", "32", "--data.eval_episodes", "2", "--model.max_updates", "3", "--model.hidden_dim", "16",
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    state = torch.load(tmp_path / "runs" / config / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["omar"]["updates"] == 3
    assert state["hyper_parameters"]["_class_path"] == f"omar_lightning.{cls}"
    assert state["hyper_parameters"].get("centralized", False) == config.endswith("centralized")
    # omar evaluate loads the checkpoint with its own algorithm class
    out = tmp_path / "summary.json"
    evaluate_main(["--ckpt_path", str(tmp_path / "runs" / config / "checkpoints" / "last.ckpt"), "--episodes", "2", "--out", str(out)])
    summary = json.loads(out.read_text())
    assert summary["episodes"] == 2 and summary["updates"] == 3 and len(summary["returns"]) == 2


def test_a_bc_checkpoint_of_the_earlier_layout_loads_its_actors_and_drops_unused_settings(tmp_path):
    """BC checkpoints written while BC carried OMAR's critics and settings: load_module keeps the
    actors exactly and leaves out the never-stepped critics and the settings BC no longer takes."""
    from omar_lightning.checkpoint_io import load_module

    torch.manual_seed(3)
    old = OMAR([18] * 3, [2] * 3, hidden_dim=16)  # the earlier BC layout: OMAR's networks
    hp = {**dict(old.hparams), "_class_path": "omar_lightning.BC"}
    path = tmp_path / "bc_old.ckpt"
    torch.save({"state_dict": old.state_dict(), "hyper_parameters": hp, "omar": {"updates": 3}}, path)
    model, _ = load_module(path)
    assert type(model) is BC and model.updates == 3 and not hasattr(model, "critic")
    assert set(model.state_dict()) == {k for k in old.state_dict() if k.startswith("actor.")}
    for k, v in model.state_dict().items():
        assert torch.equal(v, old.state_dict()[k]), k
    assert "tau" not in model.hparams and "cql_alpha" not in model.hparams
