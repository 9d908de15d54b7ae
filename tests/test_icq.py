"""MA-ICQ: in-sample next actions, its losses against scalar loops, and a short fit."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from omar_lightning import MAICQ
from omar_lightning.cli import main
from omar_lightning.data import save_dataset
from omar_lightning.datamodules import OfflineDataModule
from omar_lightning.datamodules.offline import in_sample_next
from omar_lightning.losses import icq_actor_loss, icq_critic_loss

from conftest import config_args, synthetic_dataset
from test_module import fit

ROOT = Path(__file__).resolve().parents[1]


def episodic_dataset(n=200, episode=25, env_kwargs=None):
    """Synthetic data whose next_obs continue into the next row within 25-step episodes."""
    ds = synthetic_dataset(n=n, env_kwargs=env_kwargs)
    for i in range(len(ds.obs)):
        ds.next_obs[i][:-1] = ds.obs[i][1:]
        ends = np.arange(episode - 1, n, episode)
        ds.next_obs[i][ends] = np.random.default_rng(i).standard_normal((len(ends), ds.obs[i].shape[1])).astype(np.float32)
    return ds


def test_in_sample_next_actions_follow_episodes():
    obs = torch.tensor([[[0.0], [1.0], [2.0], [5.0], [6.0]]])
    store = {"obs": obs, "next_obs": torch.tensor([[[1.0], [2.0], [3.0], [6.0], [7.0]]]), "actions": torch.arange(5.0).view(1, 5, 1)}
    out = in_sample_next(store)
    torch.testing.assert_close(out["has_next"], torch.tensor([[1.0, 1.0, 0.0, 1.0, 0.0]]))
    torch.testing.assert_close(out["next_actions"].flatten(), torch.tensor([1.0, 2.0, 0.0, 4.0, 0.0]))


def test_icq_critic_loss_against_scalar_loops():
    torch.manual_seed(0)
    A, B = 2, 4
    q_data, r, done = torch.randn(2, A, B), torch.randn(A, B), torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    next_q, has_next = torch.randn(A, B) * 3, torch.tensor([[1.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    loss, _ = icq_critic_loss(q_data, r, done, next_q, has_next, 0.9, 2.0)
    expected = 0.0
    for i in range(A):
        valid = [b for b in range(B) if has_next[i, b] > 0]
        z = sum(math.exp(float(next_q[i, b]) / 2.0) for b in valid)
        for t in range(2):
            err = 0.0
            for b in valid:
                w = min(1.0, len(valid) * math.exp(float(next_q[i, b]) / 2.0) / z)
                y = float(r[i, b]) + 0.9 * (1 - float(done[i, b])) * w * float(next_q[i, b])
                err += (float(q_data[t, i, b]) - y) ** 2
            expected += err / len(valid)
    torch.testing.assert_close(loss, torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_icq_actor_loss_against_scalar_loop():
    torch.manual_seed(1)
    A, B, D = 2, 5, 2
    pi, a, adv = torch.rand(A, B, D), torch.rand(A, B, D), torch.randn(A, B)
    loss, _ = icq_actor_loss(pi, a, adv, 0.5, torch.tensor([2.0, 2.0]))
    expected = 0.0
    for i in range(A):
        z = sum(math.exp(float(adv[i, b]) / 0.5) for b in range(B))
        expected += sum(B * math.exp(float(adv[i, b]) / 0.5) / z * float(((pi[i, b] - a[i, b]) ** 2).sum()) for b in range(B)) / (B * D)
    torch.testing.assert_close(loss, torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_maicq_fit_needs_in_sample_next_and_moves_both_networks(tmp_path):
    path = save_dataset(tmp_path / "ep.npz", episodic_dataset())
    dm = OfflineDataModule(path=str(path), batch_size=32, generate=False, in_sample_next=True)
    model = MAICQ(dm.obs_dims, dm.act_dims, hidden_dim=16, max_updates=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, dm)
    assert dm.store["has_next"].mean() == pytest.approx(1 - 8 / 200)  # 8 episode ends in 200 rows
    assert not torch.equal(before["critic.net.fc1.weight"], model.critic.net.fc1.weight)
    assert not torch.equal(before["actor.net.fc1.weight"], model.actor.net.fc1.weight)
    with pytest.raises(ValueError, match="data.in_sample_next: true"):
        fit(MAICQ(dm.obs_dims, dm.act_dims, hidden_dim=16, max_updates=1), OfflineDataModule(path=str(path), batch_size=32, generate=False))
    with pytest.raises(ValueError, match="model.critic_temperature"):
        MAICQ(dm.obs_dims, dm.act_dims, critic_temperature=0.0)


def test_shipped_maicq_config_fits(tmp_path, monkeypatch):
    path = save_dataset(tmp_path / "ep.npz", episodic_dataset(env_kwargs={"variant": "official"}))  # the shipped cells' variant
    monkeypatch.chdir(tmp_path)
    main(["fit", *config_args(ROOT / "configs/maicq/cooperative_navigation/random.yaml"), "--data.path", str(path), "--data.generate", "false",
          "--data.batch_size", "32", "--data.eval_episodes", "2", "--model.max_updates", "2", "--model.hidden_dim", "16",
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    state = torch.load(tmp_path / "runs/maicq/cooperative_navigation/random/checkpoints/last.ckpt", weights_only=True)
    assert state["omar"]["updates"] == 2 and state["hyper_parameters"]["_class_path"] == "omar_lightning.MAICQ"
