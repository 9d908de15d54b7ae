"""The measured floor of one OMAR update: its 64x64 hidden-layer matrix products alone.

    python benchmarks/gemm_floor.py [--threads N]

An OMAR update with the official MPE settings (3 agents, batch 1024, hidden 64, 10 CQL samples,
J=3 x K=10 refinement samples) multiplies [members, 1024, 64] activations by [members, 64, 64]
hidden-layer weights many times over (forward, and two products per layer backward). Those
products carry most of the update's arithmetic; everything else (input and output layers,
elementwise passes, optimizer steps) only adds to them. This script times exactly that list of
products with ``torch.bmm`` on the same shapes and prints their time, their FLOPs and the rate
reached: an implementation of the update built on torch's matrix products cannot be faster than
this time on the same machine.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

B, H = 1024, 64


def products(agents: int, cql_samples: int, refine_samples: int) -> list[tuple[int, int, int]]:
    """(members, forward passes, backward passes) of the hidden layer in one update.

    A forward pass is one product [members, B, H] x [members, H, H]; a backward pass is two,
    the input gradient (the same shape, transposed weights) and the weight gradient
    ([members, H, B] x [members, B, H]). Critic step: target critics (2A members), critics on
    the data, critics on each CQL sample; target actors (A). Actor step: actors, Q1(o, pi), and
    the refinement's Q1 on every sample (forward only).
    """
    m2, m1 = 2 * agents, agents
    return [
        (m2, 1, 0),  # target twin critics
        (m2, 1, 1),  # critics on the data
        (m2, cql_samples, cql_samples),  # critics on the CQL samples
        (m1, 1, 0),  # target actors
        (m1, 1, 1),  # actors
        (m1, 1, 1),  # Q1(o, pi)
        (m1, refine_samples, 0),  # refinement
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--cql-samples", type=int, default=10)
    p.add_argument("--refine-samples", type=int, default=30, help="iterations x samples of the refinement")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = products(args.agents, args.cql_samples, args.refine_samples)
    calls = []
    for m, forward, backward in plan:
        x, w, g = torch.randn(m, B, H), torch.randn(m, H, H), torch.randn(m, B, H)
        calls += [(x, w)] * forward + [(g, w.transpose(1, 2)), (x.transpose(1, 2), g)] * backward
    flops = sum(2 * x.shape[0] * x.shape[1] * x.shape[2] * w.shape[2] for x, w in calls)

    def once() -> None:
        for x, w in calls:
            torch.bmm(x, w)

    for _ in range(3):
        once()
    start = time.perf_counter()
    for _ in range(args.repeats):
        once()
    ms = (time.perf_counter() - start) / args.repeats * 1000
    print(f"hidden-layer products of one update: {len(calls)} bmm calls, {flops / 1e9:.2f} GFLOP, torch threads {torch.get_num_threads()}")
    print(f"time {ms:.1f} ms per update, rate {flops / ms / 1e6:.1f} GFLOP/s")
    print(json.dumps({"case": "gemm_floor", "agents": args.agents, "threads": torch.get_num_threads(), "bmm_calls": len(calls),
                      "gflop": round(flops / 1e9, 3), "ms_per_update": round(ms, 3), "gflop_per_s": round(flops / ms / 1e6, 1)}))


if __name__ == "__main__":
    main()
