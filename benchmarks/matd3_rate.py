"""Environment steps per second of MATD3 behaviour training (``omar collect train``'s learner), by phase.

    OMP_NUM_THREADS=1 python benchmarks/matd3_rate.py --num-agents 2 --layout line --steps 20000

Runs :class:`~omar_lightning.data.collect.matd3.MATD3Trainer` on cooperative navigation with the task's
settings and ``input_norm=False`` (no evaluations), on one torch thread, and times two pieces: the
first ``start_steps`` (uniform random actions, no updates) and the rest (policy actions, updates).
Prints wall and CPU seconds and steps per second of each piece; CPU time is what one core gives
when the machine is shared.
"""

from __future__ import annotations

import argparse
import time

import torch

from omar_lightning.data.collect.matd3 import TASK_DEFAULTS, MATD3Config, MATD3Trainer

TASK = "cooperative_navigation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-agents", type=int, default=2)
    parser.add_argument("--layout", default="line", choices=("plane", "line"))
    parser.add_argument("--variant", default="mpe2", choices=("mpe2", "official"))
    parser.add_argument("--steps", type=int, default=20_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    env_kwargs = {"num_agents": args.num_agents, "layout": args.layout, "variant": args.variant}
    cfg = MATD3Config(**{**TASK_DEFAULTS[TASK], "input_norm": False, "eval_every": 10**12})
    trainer = MATD3Trainer(TASK, 0, env_kwargs=env_kwargs, config=cfg)
    for target in (min(cfg.start_steps, args.steps), args.steps):
        steps, updates = trainer.steps, trainer.updates
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.train(target, progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        n = trainer.steps - steps
        if n:
            print(f"{env_kwargs} steps {steps}..{trainer.steps} ({trainer.updates - updates} updates): "
                  f"wall {wall:.1f} s, {n / wall:.0f} steps/s; CPU {cpu:.1f} s, {n / cpu:.0f} steps/s", flush=True)


if __name__ == "__main__":
    main()
