"""Milliseconds per update of all agents: the Trainer, a bare loop, and a per-agent yardstick.

    python benchmarks/train_step.py --task cooperative_navigation --algorithm omar

Cases, all on the same synthetic dataset with the task's shapes (the values do not change the
cost of an update):
  trainer    the real OMAR LightningModule and OfflineDataModule under pytorch_lightning.Trainer
  bare       the same module's training_step and soft target update in a plain loop
  yardstick  the same OMAR update written as the official code does: one module per agent and
             twin, a Python loop over agents, minibatches drawn by permuting the whole buffer
  sampling   drawing every agent's minibatch from the stream alone (without replacement)
  sampling_with_replacement
             the same gather from indices drawn with replacement (torch.randint), for comparison
Prints a table and one JSON line per case ({"case", "ms_per_update", ...}).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from pytorch_lightning import Callback, Trainer
from torch import nn

from omar_lightning import BC, MACQL, MAICQ, MATD3BC, OMAR, Refinement
from omar_lightning.callbacks import SoftTargetUpdate
from omar_lightning.nets import soft_update_
from omar_lightning.data import OfflineDataset, save_dataset
from omar_lightning.datamodules import MinibatchStream, OfflineDataModule
from omar_lightning.envs import task_spec
from omar_lightning.nets import TwinCritic

# Each algorithm's class and the settings that change its cost; the yardstick exists for OMAR and MA-CQL.
ALGORITHMS = {
    "omar": (OMAR, {"tau": 1.0, "cql_alpha": 0.5, "refinement": Refinement()}),
    "macql": (MACQL, {"cql_alpha": 0.5}),
    "matd3bc": (MATD3BC, {}),
    "maicq": (MAICQ, {}),
    "bc": (BC, {}),
}
YARDSTICK_TAU = {"omar": 1.0, "macql": 0.0}


def synthetic_file(task: str, n: int, directory: Path, env_kwargs: dict | None = None) -> tuple[Path, list[int], list[int]]:
    env_kwargs = dict(env_kwargs or {})
    spec = task_spec(task, **env_kwargs)
    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.standard_normal(s, dtype=np.float32)  # noqa: E731
    ds = OfflineDataset(
        obs=[f32(n, d) for d in spec.obs_dims],
        actions=[rng.uniform(-1, 1, (n, d)).astype(np.float32) for d in spec.act_dims],
        rewards=[f32(n) for _ in spec.obs_dims],
        next_obs=[f32(n, d) for d in spec.obs_dims],
        dones=[np.zeros(n, np.float32) for _ in spec.obs_dims],
        meta={"task": task, "tier": "random", "agent_names": spec.agent_names, "s_random": 0.0, "s_expert": 1.0, "env_kwargs": env_kwargs},
    )
    return save_dataset(directory / f"{task}.npz", ds), list(spec.obs_dims), list(spec.act_dims)


class UpdateTimer(Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.times = warmup, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter())


def time_trainer(path: Path, model: OMAR, args) -> float:
    dm = OfflineDataModule(task=args.task, path=str(path), batch_size=args.batch_size, generate=False, in_sample_next=args.algorithm == "maicq")
    timer = UpdateTimer(args.warmup)
    trainer = Trainer(
        accelerator=args.device, devices=1, max_epochs=-1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        callbacks=[SoftTargetUpdate(0.01), timer],
    )
    trainer.fit(model, datamodule=dm)
    t = timer.times[args.warmup:]
    return (t[-1] - t[0]) / (len(t) - 1) * 1000


def bare_loop(model: OMAR, stream: MinibatchStream, args) -> float:
    device = torch.device(args.device if args.device != "gpu" else "cuda")
    model = model.to(device)
    optimizers = model.configure_optimizers()  # the actors', then the critics' where there are critics
    model.optimizers = lambda: optimizers
    model.manual_backward = lambda loss: loss.backward()
    model.toggle_optimizer = model.untoggle_optimizer = lambda opt: None
    model.log = model.log_dict = lambda *a, **k: None
    online = [p.data for m, _ in model.target_pairs() for p in m.parameters()]
    target = [p.data for _, m in model.target_pairs() for p in m.parameters()]
    times = []
    for u in range(args.warmup + args.updates):
        batch = {k: v.to(device, non_blocking=True) for k, v in stream.batch(u).items()}
        model.training_step(batch, u)
        with torch.no_grad():
            if target:  # BC has no target networks
                soft_update_(target, online, 0.01)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())
    t = times[args.warmup:]
    return (t[-1] - t[0]) / (len(t) - 1) * 1000


def mlp(d_in: int, d_out: int, hidden: int, out_init: float | None = None) -> nn.Sequential:
    net = nn.Sequential(nn.BatchNorm1d(d_in), nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, d_out))
    if out_init:
        nn.init.uniform_(net[-1].weight, -out_init, out_init)
    return net


def yardstick(store: dict[str, torch.Tensor], obs_dims, act_dims, args, tau: float) -> float:
    """The per-agent OMAR update of the official code's structure (one module per agent and twin)."""
    n_agents, size = store["obs"].shape[:2]
    agents = []
    for i in range(n_agents):
        do, da = obs_dims[i], act_dims[i]
        actor, q1, q2 = mlp(do, da, args.hidden, 3e-3), mlp(do + da, 1, args.hidden), mlp(do + da, 1, args.hidden)
        agents.append({
            "actor": actor, "q1": q1, "q2": q2, "actor_t": copy.deepcopy(actor), "q1_t": copy.deepcopy(q1), "q2_t": copy.deepcopy(q2),
            "aopt": torch.optim.Adam(actor.parameters(), lr=0.01), "copt": torch.optim.Adam([*q1.parameters(), *q2.parameters()], lr=0.01),
        })
    K, B, J = 10, args.batch_size, 3
    times = []
    for u in range(args.warmup + args.updates):
        for i, ag in enumerate(agents):
            idx = torch.randperm(size)[:B]  # the official sampler: a permutation of the whole buffer
            do, da = obs_dims[i], act_dims[i]
            o, a = store["obs"][i, idx, :do], store["actions"][i, idx, :da]
            r, o2, d = store["rewards"][i, idx], store["next_obs"][i, idx, :do], store["dones"][i, idx]
            with torch.no_grad():
                a2 = torch.tanh(ag["actor_t"](o2))
                x2 = torch.cat([o2, a2], 1)
                y = r + 0.95 * (1 - d) * torch.min(ag["q1_t"](x2), ag["q2_t"](x2)).squeeze(-1)
            x = torch.cat([o, a], 1)
            o_rep = o.unsqueeze(1).expand(B, K, do).reshape(B * K, do)
            a_rand = torch.rand(B * K, da) * 2 - 1
            xr = torch.cat([o_rep, a_rand], 1)
            loss = 0
            for q in (ag["q1"], ag["q2"]):
                qd = q(x).squeeze(-1)
                qr = q(xr).view(B, K) - da * np.log(0.5)
                loss = loss + ((qd - y) ** 2).mean() + 0.5 * (torch.logsumexp(qr, 1) - qd).mean()
            ag["copt"].zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_([*ag["q1"].parameters(), *ag["q2"].parameters()], 0.5)
            ag["copt"].step()
            pi = torch.tanh(ag["actor"](o))
            q_pi = ag["q1"](torch.cat([o, pi], 1)).squeeze(-1)
            if tau > 0:
                with torch.no_grad():
                    mu, sigma = torch.zeros(B, da), torch.full((B, da), 2.0)
                    for _ in range(J):
                        s = (mu.unsqueeze(1) + sigma.unsqueeze(1) * torch.randn(B, K, da)).clamp(-1, 1)
                        qs = ag["q1"](torch.cat([o_rep, s.reshape(B * K, da)], 1)).view(B, K)
                        w = torch.softmax(qs, 1).unsqueeze(-1)
                        mu = (w * s).sum(1)
                        sigma = ((s - mu.unsqueeze(1)) ** 2).mean(1).sqrt()
                    best = s[torch.arange(B), qs.argmax(1)]
                    a_hat = torch.where((qs.max(1).values > q_pi.detach()).unsqueeze(-1), best, pi.detach())
                actor_loss = tau * ((pi - a_hat) ** 2).mean() - (1 - tau) * q_pi.mean() + 1e-3 * (pi**2).mean()
            else:
                actor_loss = -q_pi.mean() + 1e-3 * (pi**2).mean()
            ag["aopt"].zero_grad()
            actor_loss.backward()
            nn.utils.clip_grad_norm_(ag["actor"].parameters(), 0.5)
            ag["aopt"].step()
        with torch.no_grad():
            for ag in agents:
                for name in ("actor", "q1", "q2"):
                    for p, pt in zip(ag[name].parameters(), ag[name + "_t"].parameters()):
                        pt.mul_(0.99).add_(0.01 * p)
        times.append(time.perf_counter())
    t = times[args.warmup:]
    return (t[-1] - t[0]) / (len(t) - 1) * 1000


def sampling(stream: MinibatchStream, args) -> float:
    for u in range(5):
        stream.batch(u)
    t = time.perf_counter()
    n = 200
    for u in range(n):
        stream.batch(u)
    return (time.perf_counter() - t) / n * 1000


class WithReplacement(MinibatchStream):
    """The stream's gather from indices drawn with replacement (the sampler before batches were drawn without)."""

    def indices(self, update: int, generator: torch.Generator | None = None) -> torch.Tensor:
        g = generator or torch.Generator()
        g.manual_seed(update)
        return torch.randint(self.size, (self.num_agents, self.batch_size), generator=g)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="cooperative_navigation")
    p.add_argument("--algorithm", default="omar", choices=sorted(ALGORITHMS))
    p.add_argument("--transitions", type=int, default=1_000_000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--updates", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu", "cuda"])
    p.add_argument("--cases", default="sampling,bare,trainer,yardstick")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--sampled-path", default="auto", choices=["auto", "per-sample", "one-pass"],
                   help="how the critic scores CQL and refinement samples (TwinCritic.sample_q; auto: per sample on CPU where gradients are recorded, one pass otherwise)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sampled_path != "auto":
        TwinCritic.sample_q = functools.partialmethod(TwinCritic.sample_q, per_sample=args.sampled_path == "per-sample")
    args.device = "gpu" if args.device == "cuda" else args.device
    torch.manual_seed(0)
    cases = args.cases.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        path, obs_dims, act_dims = synthetic_file(args.task, args.transitions, Path(tmp))
        dm = OfflineDataModule(task=args.task, path=str(path), batch_size=args.batch_size, generate=False, in_sample_next=args.algorithm == "maicq")
        dm.setup("fit")
        stream = MinibatchStream(dm.store, args.batch_size, seed=0)
        cls, settings = ALGORITHMS[args.algorithm]
        hp = dict(obs_dims=obs_dims, act_dims=act_dims, hidden_dim=args.hidden, **settings)
        results = {}
        if "sampling" in cases:
            results["sampling"] = sampling(stream, args)
        if "sampling_with_replacement" in cases:
            results["sampling_with_replacement"] = sampling(WithReplacement(dm.store, args.batch_size, seed=0), args)
        if "bare" in cases:
            results["bare"] = bare_loop(cls(**hp), stream, args)
        if "trainer" in cases:
            results["trainer"] = time_trainer(path, cls(**hp, max_updates=args.warmup + args.updates + 1), args)
        if "yardstick" in cases and args.device == "cpu" and args.algorithm in YARDSTICK_TAU:
            results["yardstick"] = yardstick(dm.store, obs_dims, act_dims, args, YARDSTICK_TAU[args.algorithm])
    print(f"\n{args.algorithm} on {args.task}: batch {args.batch_size}, hidden {args.hidden}, {args.transitions:,} transitions, {args.device}, "
          f"torch threads {torch.get_num_threads()}, sampled path {args.sampled_path}")
    print(f"{'case':<10} {'ms/update':>10}")
    for case, ms in results.items():
        print(f"{case:<10} {ms:>10.2f}")
    if "yardstick" in results and "bare" in results:
        print(f"yardstick / bare = {results['yardstick'] / results['bare']:.2f}x")
    if "trainer" in results and "bare" in results:
        print(f"trainer / bare = {results['trainer'] / results['bare']:.3f}")
    for case, ms in results.items():
        print(json.dumps({"case": case, "task": args.task, "algorithm": args.algorithm, "device": args.device, "batch_size": args.batch_size,
                          "hidden": args.hidden, "transitions": args.transitions, "threads": torch.get_num_threads(),
                          "sampled_path": args.sampled_path, "ms_per_update": round(ms, 3)}))


if __name__ == "__main__":
    main()
