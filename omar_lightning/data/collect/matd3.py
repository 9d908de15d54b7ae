"""MATD3 behaviour policies trained online, for the medium-replay, medium and expert tiers.

The paper's behaviour policies are MATD3 (Ackermann et al., 2019) with added noise. This
trainer follows MATD3:

* **centralized twin critics** (the MATD3 / MADDPG choice; the official OMAR repository builds
  on maddpg-pytorch, whose critics are centralized): agent i's critics see all agents'
  observations and the other agents' actions of the same joint transition
  (:class:`~omar_lightning.nets.JointContext`), its own action last. ``centralized=False``
  gives independent TD3 critics on ``(o_i, a_i)``. ``critic_input="state"`` puts the
  environment's global state ``s`` (``env.state()``, where it holds more than the agents'
  observations: HalfCheetah's full observation) in the observations' place: agent i's critics
  see ``[s, a_-i]`` and its own action last, the replay buffer keeps ``s`` before and after
  every step. Policies are always decentralized, on each agent's own observations;
* target policy smoothing (``target_noise`` 0.2, clipped at ``target_noise_clip`` 0.5),
  the minimum of the twin target critics, delayed actor and target updates
  (``policy_delay`` 2), Gaussian exploration noise (``exploration_noise`` 0.1) on the tanh
  actions, uniform random actions for the first ``start_steps`` environment steps;
* the actor loss ``-Q1(o, [a_-i from the buffer, pi_i(o_i)]) + 1e-3 * mean(z_i^2)`` with ``z_i``
  the pre-tanh output (maddpg-pytorch's policy regulariser; penalising only the tanh output lets
  the actor saturate at the box corners), gradient-norm clipping (0.5) per agent, Adam, soft
  target updates (``rho``).

The losses are :mod:`omar_lightning.losses`' (``smoothed_target_action``, ``td_target``,
``critic_loss`` without the CQL penalty, ``matd3_actor_loss``). All agents are one ensemble
(:mod:`omar_lightning.nets`), without input normalisation by default, as TD3 and MATD3.
``input_norm=True`` puts maddpg-pytorch's BatchNorm on the inputs (batch statistics in updates,
running statistics when acting). Only cooperative navigation trains with it, so that its shipped
snapshots regenerate. With batch statistics, the critic in the actor loss sees the actor's action
column normalised over the batch: a shift or rescaling of all actions leaves Q unchanged, so the
actor gets no gradient towards larger forces. Its policies push weakly (mean |force| 0.06 to
0.45), and predator-prey never learned to catch with it (docs/datasets.md).

``num_envs`` environment copies (:class:`~omar_lightning.envs.rollout.EnvCopies`) are stepped in
lockstep into the :class:`~omar_lightning.data.collect.replay.ReplayBuffer`; ``update_every``
environment steps (summed over copies) are followed by ``update_every * updates_per_step``
gradient updates. Training is deterministic for a seed and resumable: :meth:`MATD3Trainer.save`
writes networks, optimizers, the replay buffer, RNG states and counters (atomically); the state is
only saved between episodes (all copies reset together), so a resumed run continues exactly.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from omar_lightning.atomic import atomic_write
from omar_lightning.data.collect.replay import ReplayBuffer
from omar_lightning.envs import make_env, task_spec
from omar_lightning.envs.rollout import EnvCopies, run_episodes, task_returns
from omar_lightning.losses import critic_loss, matd3_actor_loss, smoothed_target_action, td_target
from omar_lightning.nets import Actor, JointContext, TwinCritic, clip_grad_norm_per_member_, soft_update_

__all__ = ["TASK_DEFAULTS", "MATD3Config", "MATD3Trainer", "load_torch_file"]

#: Environment episodes of a training run are seeded from here on (evaluation episodes use
#: ``eval_seed``; datasets and reference returns use their own ranges).
TRAIN_SEED_BASE = 50_000_000

#: The values of :attr:`MATD3Config.critic_input`.
CRITIC_INPUTS = ("observations", "state")


@dataclass
class MATD3Config:
    """Settings of :class:`MATD3Trainer` (MPE defaults: the official MPE network settings).

    Args:
        hidden_dim: width of the actors' and critics' hidden layers.
        actor_lr, critic_lr: Adam learning rates.
        gamma: discount.
        rho: soft target-update rate.
        batch_size: rows per gradient update.
        buffer_size: replay rows (the buffer never wraps; ``omar collect train`` sizes it to ``--steps``).
        start_steps: environment steps of uniform random actions before the policy acts.
        update_every: environment steps (summed over copies) between bursts of updates.
        updates_per_step: gradient updates per environment step.
        policy_delay: critic updates per actor and target update.
        exploration_noise: std of the Gaussian noise on the acting policy's actions.
        target_noise, target_noise_clip: TD3's target policy smoothing.
        grad_clip: gradient-norm clip per agent.
        action_l2: weight of the pre-tanh regulariser of the actor loss.
        centralized: centralized critics (MATD3); False: independent TD3 critics.
        critic_input: what centralized critics see besides the actions: ``"observations"``
            (all agents' observations) or ``"state"`` (the environment's global state,
            ``env.state()``; only tasks whose state holds more than the observations, such as
            HalfCheetah, whose official variant's observations lack the torso's velocity).
        input_norm: maddpg-pytorch's input BatchNorm on actors and critics.
        num_envs: environment copies stepped in lockstep.
        eval_every: environment steps between evaluations (snapshots).
        eval_episodes: episodes per evaluation, seeded ``eval_seed + k``.
        eval_seed: seed of the first evaluation episode.
        shaping: training-only reward shaping: each learning agent's reward in the update is its
            task reward minus ``shaping`` x its distance to the nearest good agent (predator-prey,
            world). The replay buffer keeps the task reward (and so does the medium-replay tier);
            evaluation returns are task returns. 0 trains on the task reward alone.
    """

    hidden_dim: int = 64
    actor_lr: float = 0.01
    critic_lr: float = 0.01
    gamma: float = 0.95
    rho: float = 0.01
    batch_size: int = 1024
    buffer_size: int = 1_000_000
    start_steps: int = 10_000
    update_every: int = 100
    updates_per_step: float = 0.25
    policy_delay: int = 2
    exploration_noise: float = 0.1
    target_noise: float = 0.2
    target_noise_clip: float = 0.5
    grad_clip: float = 0.5
    action_l2: float = 1e-3
    centralized: bool = True
    critic_input: str = "observations"
    input_norm: bool = False
    num_envs: int = 10
    eval_every: int = 25_000
    eval_episodes: int = 20
    eval_seed: int = 2_000_000
    shaping: float = 0.0

    def validate(self) -> None:
        for name in ("hidden_dim", "batch_size", "buffer_size", "update_every", "policy_delay", "num_envs", "eval_every", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("actor_lr", "critic_lr", "updates_per_step"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.gamma <= 1 or not 0 < self.rho <= 1:
            raise ValueError(f"gamma must be in [0, 1] and rho in (0, 1], got {self.gamma}, {self.rho}")
        if self.start_steps < 0 or self.exploration_noise < 0 or self.target_noise < 0:
            raise ValueError("start_steps, exploration_noise and target_noise must be >= 0")
        if not 0 <= self.shaping < float("inf"):
            raise ValueError(f"shaping must be >= 0 and finite, got {self.shaping}")
        if self.critic_input not in CRITIC_INPUTS:
            raise ValueError(f"critic_input must be one of {', '.join(CRITIC_INPUTS)}, got {self.critic_input!r}")
        if self.critic_input == "state" and not self.centralized:
            raise ValueError("critic_input=state needs centralized critics (centralized=true)")


#: Settings per task that differ from :class:`MATD3Config`'s defaults.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    # The shipped snapshots were trained with maddpg-pytorch's input BatchNorm.
    "cooperative_navigation": dict(input_norm=True),
    # The predators' reward is +10 per contact and nothing else; 0.1 is simple_world_comm's own
    # shaping weight (docs/datasets.md).
    "predator_prey": dict(shaping=0.1),
    "halfcheetah_2x3": dict(hidden_dim=256, actor_lr=3e-4, critic_lr=3e-4, gamma=0.99, rho=0.005, batch_size=256,
                            start_steps=25_000, update_every=50, updates_per_step=1.0, num_envs=1, eval_every=20_000, eval_episodes=5),
}


def _chase_distances(env: Any, num_agents: int) -> np.ndarray:
    """Each agent's distance to the nearest good agent after the last step ``[A]`` (0 for good agents)."""
    out = np.zeros(num_agents, dtype=np.float32)
    d = env.chase_distances()
    out[: len(d)] = d
    return out


class MATD3Trainer:
    """Online MATD3 on ``task``; see the module docstring."""

    def __init__(self, task: str, seed: int = 0, env_kwargs: dict[str, Any] | None = None, config: MATD3Config | None = None) -> None:
        self.task, self.seed, self.env_kwargs = task, int(seed), dict(env_kwargs or {})
        cfg = config or MATD3Config(**TASK_DEFAULTS.get(task, {}))
        cfg.validate()
        self.cfg = cfg
        spec = task_spec(task, **self.env_kwargs)
        self.spec = spec
        self.obs_dims, self.act_dims = list(spec.obs_dims), list(spec.act_dims)
        A, do, da = spec.num_agents, max(self.obs_dims), max(self.act_dims)
        self.A, self.do, self.da = A, do, da
        state_dim = spec.state_dim if cfg.critic_input == "state" else None
        if cfg.critic_input == "state" and state_dim is None:
            raise ValueError(f"critic_input=state: task {task!r} has no global state beyond the agents' observations "
                             "(its state() is them concatenated); use critic_input=observations")
        torch.manual_seed(self.seed)
        self.actor = Actor(self.obs_dims, self.act_dims, cfg.hidden_dim, input_norm=cfg.input_norm)
        self.joint = JointContext(self.obs_dims, self.act_dims, state_dim) if cfg.centralized else None
        ctx = self.joint.dim if self.joint is not None else do
        # One input norm per twin, as the shipped snapshots were trained (see TwinCritic).
        critic = dict(input_norm=cfg.input_norm, shared_norm=False, obs_dims=self.joint.dims if self.joint is not None else self.obs_dims, act_dims=self.act_dims)
        self.critic = TwinCritic(ctx, da, cfg.hidden_dim, A, **critic)
        self.actor_target = Actor(self.obs_dims, self.act_dims, cfg.hidden_dim, input_norm=cfg.input_norm)
        self.critic_target = TwinCritic(ctx, da, cfg.hidden_dim, A, **critic)
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.torch_gen = torch.Generator().manual_seed(self.seed + 1)
        self.rng = np.random.default_rng(self.seed)
        if cfg.shaping > 0:  # distance to the nearest good agent after each step
            probe = make_env(task, **self.env_kwargs)
            chases = callable(getattr(probe, "chase_distances", None))
            probe.close()
            if not chases:
                raise ValueError(f"shaping: task {task!r} has no good agents to chase; use 0")
        self.replay = ReplayBuffer(cfg.buffer_size, A, do, da, distances=cfg.shaping > 0, state_dim=state_dim or 0)
        self.steps = 0  # environment steps, summed over copies
        self.updates = 0
        self.episodes = 0  # episodes started
        self.evaluations: list[dict[str, Any]] = []
        self.act_mask = self.actor.act_mask[:, 0, :].numpy()  # [A, da]

    @property
    def size(self) -> int:
        """Replay rows written (the buffer never wraps: training stops when it is full)."""
        return self.replay.size

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs: np.ndarray, noise: float) -> np.ndarray:
        """``obs [A, E, do]`` -> actions ``[A, E, da]`` with Gaussian noise, clipped to [-1, 1]."""
        self.actor.eval()  # BatchNorm's running statistics when acting
        a = self.actor(torch.as_tensor(obs)).numpy()
        self.actor.train()
        if noise > 0:
            a = a + noise * self.rng.standard_normal(a.shape).astype(np.float32)
        return (np.clip(a, -1.0, 1.0) * self.act_mask[:, None, :]).astype(np.float32)

    # ------------------------------------------------------------------ learning
    def _critic_input(self, obs: Tensor, act: Tensor) -> Tensor:
        """Critic context from ``obs`` (observations ``[A, B, Do]``, or with ``critic_input="state"``
        states ``[B, Ds]``) and the joint actions ``act [A, B, Da]``."""
        return self.joint(obs, act) if self.joint is not None else obs

    def update(self) -> dict[str, float]:
        """One critic update (and, every ``policy_delay``-th, one actor and target update) on a
        minibatch of the replay buffer; the losses as floats."""
        cfg, g = self.cfg, self.torch_gen
        b = self.replay.sample(cfg.batch_size, g)  # [A, B, ...]; states [B, Ds]
        # What the critics see besides the actions: observations [A, B, Do] or states [B, Ds].
        seen, next_seen = ("state", "next_state") if self.replay.has_state else ("obs", "next_obs")
        mask = self.actor.act_mask
        with torch.no_grad():
            na = self.actor_target(b["next_obs"])
            if cfg.target_noise > 0:
                na = smoothed_target_action(na, torch.randn(na.shape, generator=g), cfg.target_noise, cfg.target_noise_clip, mask)
            rewards = b["rewards"] - cfg.shaping * b["distances"] if cfg.shaping > 0 else b["rewards"]
            y = td_target(rewards, b["dones"], self.critic_target(self._critic_input(b[next_seen], na), na), cfg.gamma)
        q = self.critic(self._critic_input(b[seen], b["actions"]), b["actions"])
        loss_c, critic_metrics = critic_loss(q, y, None, None, 0.0)  # sum over twins and agents of per-agent MSEs
        self.critic_opt.zero_grad(set_to_none=True)
        loss_c.backward()
        clip_grad_norm_per_member_(list(self.critic.parameters()), 2 * self.A, self.A, cfg.grad_clip)
        self.critic_opt.step()
        self.updates += 1
        out = {"critic_loss": float(critic_metrics["critic/mse"])}
        if self.updates % cfg.policy_delay == 0:
            pre = self.actor.net(b["obs"])  # pre-tanh outputs
            pi = torch.tanh(pre) * mask
            q1 = self.critic.q1(self._critic_input(b[seen], b["actions"]), pi)
            loss_a, actor_metrics = matd3_actor_loss(q1, pre, mask, cfg.action_l2)
            self.actor_opt.zero_grad(set_to_none=True)
            loss_a.backward()
            clip_grad_norm_per_member_(list(self.actor.parameters()), self.A, self.A, cfg.grad_clip)
            self.actor_opt.step()
            for net, tgt in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
                soft_update_(list(tgt.parameters()), list(net.parameters()), cfg.rho)
            out["actor_loss"] = float(actor_metrics["actor/loss"])
        return out

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, episodes: int | None = None) -> float:
        """Mean return of deterministic rollouts (no noise), episodes ``eval_seed + k``."""
        n = episodes or self.cfg.eval_episodes
        res = run_episodes(lambda: make_env(self.task, **self.env_kwargs), lambda o: self.act(o, 0.0), n, self.cfg.eval_seed,
                           num_envs=min(10, n))
        return float(task_returns(res).mean())

    # ------------------------------------------------------------------ training loop
    def train(
        self,
        total_steps: int,
        on_eval: Callable[["MATD3Trainer", float], None] | None = None,
        save_path: str | os.PathLike | None = None,
        save_every: int = 100_000,
        progress: bool = True,
    ) -> None:
        """Train until at least ``total_steps`` environment steps (summed over copies) have been
        taken; training stops between rounds (every copy plays whole episodes), so the count is
        rounded up to a multiple of ``num_envs * episode_length`` and a resumed run continues
        exactly as an uninterrupted one.

        Every ``eval_every`` steps (at the next episode boundary) and at the end the policy is
        evaluated and ``on_eval(trainer, mean_return)`` called; every ``save_every`` steps and at
        the end the whole state is written to ``save_path`` (atomically).
        """
        cfg = self.cfg
        round_steps = cfg.num_envs * self.spec.episode_length
        if self.rows_needed(total_steps) > cfg.buffer_size:
            raise ValueError(
                f"steps ({total_steps:,}, rounded up to whole rounds of {round_steps} steps) must not exceed buffer_size "
                f"({cfg.buffer_size:,}): the replay buffer never wraps"
            )
        E = cfg.num_envs
        copies = EnvCopies([make_env(self.task, **self.env_kwargs) for _ in range(E)])
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_steps, initial=self.steps, desc=f"MATD3 {self.task}", unit="step")
        next_eval = (self.steps // cfg.eval_every + 1) * cfg.eval_every
        next_save = (self.steps // save_every + 1) * save_every
        pending = 0.0
        try:
            while self.steps < total_steps:
                # One round: every copy plays one whole episode (MPE and HalfCheetah episodes have a
                # fixed length, so all copies end together; an early end restarts that copy).
                obs = np.stack([copies.reset(e, TRAIN_SEED_BASE + self.seed * 1_000_000 + self.episodes + e) for e in range(E)], 1)
                states = [copies.state(e) for e in range(E)] if self.replay.has_state else None
                self.episodes += E
                live = np.ones(E, bool)
                while live.any():
                    if self.steps < cfg.start_steps:
                        act = self.rng.uniform(-1.0, 1.0, (self.A, E, self.da)).astype(np.float32) * self.act_mask[:, None, :]
                    else:
                        act = self.act(obs, cfg.exploration_noise)
                    for e in np.flatnonzero(live):
                        nxt, rew, dones, ended = copies.step(e, act[:, e])
                        distances = _chase_distances(copies.envs[e], self.A) if cfg.shaping > 0 else None
                        if states is None:
                            self.replay.add(obs[:, e], act[:, e], rew, nxt, dones, distances)
                        else:
                            nxt_state = copies.state(e)
                            self.replay.add(obs[:, e], act[:, e], rew, nxt, dones, distances, states[e], nxt_state)
                            states[e] = nxt_state
                        self.steps += 1
                        obs[:, e] = nxt
                        if ended:
                            live[e] = False
                    if bar is not None:
                        bar.update(int(self.steps - bar.n))
                    if self.steps >= cfg.start_steps and self.size >= cfg.batch_size:
                        pending += E * cfg.updates_per_step
                        if self.steps % cfg.update_every < E:
                            last = {}
                            for _ in range(int(pending)):
                                last = self.update()
                            pending -= int(pending)
                            if bar is not None and last:
                                bar.set_postfix(critic=f"{last['critic_loss']:.3g}", refresh=False)
                # Episode boundary: evaluate, save.
                if self.steps >= next_eval or self.steps >= total_steps:
                    mean_return = self.evaluate()
                    self.evaluations.append({"steps": self.steps, "updates": self.updates, "score": mean_return})
                    if bar is not None:
                        bar.write(f"step {self.steps:>9,}: evaluation score {mean_return:.2f} (updates {self.updates:,})")
                    if on_eval is not None:
                        on_eval(self, mean_return)
                    next_eval = (self.steps // cfg.eval_every + 1) * cfg.eval_every
                if save_path is not None and (self.steps >= next_save or self.steps >= total_steps):
                    self.save(save_path)
                    next_save = (self.steps // save_every + 1) * save_every
        finally:
            if bar is not None:
                bar.close()
            copies.close()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (the layout of ``state.pt``)."""
        return {
            "task": self.task, "seed": self.seed, "env_kwargs": self.env_kwargs, "config": asdict(self.cfg),
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(), "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "torch_gen": self.torch_gen.get_state(), "rng": self.rng.bit_generator.state,
            "buffer": self.replay.state_dict(),
            "size": self.replay.size, "steps": self.steps, "updates": self.updates, "episodes": self.episodes,
            "evaluations": self.evaluations,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the whole training state atomically to ``path``."""
        state = self.state_dict()
        return atomic_write(path, lambda f: torch.save(state, f))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MATD3Trainer":
        """Rebuild a trainer from :meth:`save`'s file, ready to continue training."""
        st = load_torch_file(Path(path), "training state", "MATD3 training state", weights_only=False)
        t = cls(st["task"], st["seed"], st["env_kwargs"], MATD3Config(**st["config"]))
        try:  # first: a buffer without the arrays of the settings (states) is named as such
            t.replay.load_state_dict(st["buffer"], st["size"])
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        for name in ("actor", "critic", "actor_target", "critic_target", "actor_opt", "critic_opt"):
            getattr(t, name).load_state_dict(st[name])
        t.torch_gen.set_state(st["torch_gen"])
        t.rng.bit_generator.state = st["rng"]
        t.steps, t.updates, t.episodes = int(st["steps"]), int(st["updates"]), int(st["episodes"])
        t.evaluations = list(st["evaluations"])
        return t

    def rows_needed(self, total_steps: int) -> int:
        """Replay rows a run to ``total_steps`` fills: the steps rounded up to whole rounds (every
        environment copy plays whole episodes)."""
        round_steps = self.cfg.num_envs * self.spec.episode_length
        return self.steps + math.ceil(max(0, total_steps - self.steps) / round_steps) * round_steps

    def reserve(self, rows: int) -> None:
        """Grow the replay buffer to hold ``rows`` rows (``cfg.buffer_size`` follows), keeping what
        it holds. Minibatches are drawn from the rows written so far, never from the capacity, so a
        run continued to more steps than its first ``--steps`` is the same as one started with
        the larger buffer."""
        if rows <= self.cfg.buffer_size:
            return
        self.replay.grow(rows)
        self.cfg = replace(self.cfg, buffer_size=rows)


def load_torch_file(path: Path, name: str, kind: str, weights_only: bool) -> Any:
    """torch.load ``path``; FileNotFoundError or a one-line ValueError naming the file otherwise."""
    if not path.is_file():
        raise FileNotFoundError(f"{name} not found: {path}")
    try:
        return torch.load(path, weights_only=weights_only)
    except Exception as e:  # noqa: BLE001
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: not a readable {kind}: {reason}") from None
