"""Plain per-agent torch networks of the official structure, holding one agent's weights of the
agent-batched networks (for the equivalence tests).

``mlp`` is the official ``MLPNetwork`` (input BatchNorm, two hidden ReLU layers), ``DoubleMLP``
the official ``DoubleMLPNetwork`` (one input BatchNorm shared by the towers Q1 and Q2). Both
take the member's weights restricted to its real (unpadded) input and output features, so they
are the separate unpadded networks that a padded agent must train exactly as.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from omar_lightning.nets import EnsembleMLP, MemberBatchNorm


def plain_norm(norm: MemberBatchNorm, member: int, features: Sequence[int]) -> nn.BatchNorm1d:
    """``BatchNorm1d`` over ``features`` of norm member ``member`` (weights, bias, running statistics)."""
    index = torch.as_tensor(list(features)) + member * norm.features
    bn = nn.BatchNorm1d(len(index)).to(norm.weight.dtype)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(getattr(norm, name)[index])
    return bn


def plain_tower(ens: EnsembleMLP, member: int, inputs: Sequence[int], outputs: Sequence[int] | None = None) -> nn.Sequential:
    """The three linear layers of ``member`` (ReLU between), fc1 restricted to the ``inputs``
    rows and fc3 to the ``outputs`` columns (default: all)."""
    outputs = list(range(ens.fc3.out_features)) if outputs is None else list(outputs)
    layers: list[nn.Module] = []
    for i, fc in enumerate((ens.fc1, ens.fc2, ens.fc3)):
        rows = list(inputs) if i == 0 else list(range(fc.in_features))
        cols = outputs if i == 2 else list(range(fc.out_features))
        lin = nn.Linear(len(rows), len(cols)).to(fc.weight.dtype)
        with torch.no_grad():
            lin.weight.copy_(fc.weight[member][rows][:, cols].T)
            lin.bias.copy_(fc.bias[member, 0, cols])
        layers += [lin] + ([nn.ReLU()] if i < 2 else [])
    return nn.Sequential(*layers)


def mlp(ens: EnsembleMLP, member: int, inputs: Sequence[int] | None = None, outputs: Sequence[int] | None = None) -> nn.Sequential:
    """Member ``member`` as the official ``MLPNetwork`` without its output function."""
    inputs = list(range(ens.fc1.in_features)) if inputs is None else list(inputs)
    layers = [plain_norm(ens.norm, member, inputs)] if ens.norm is not None else []
    return nn.Sequential(*layers, *plain_tower(ens, member, inputs, outputs))


class DoubleMLP(nn.Module):
    """The official ``DoubleMLPNetwork``: ``in_fn`` shared by the towers; ``forward -> (q1, q2)``, ``Q1``."""

    def __init__(self, ens: EnsembleMLP, agent: int, agents: int, inputs: Sequence[int] | None = None) -> None:
        super().__init__()
        inputs = list(range(ens.fc1.in_features)) if inputs is None else list(inputs)
        self.in_fn = plain_norm(ens.norm, agent, inputs)
        self.q1 = plain_tower(ens, agent, inputs)
        self.q2 = plain_tower(ens, agents + agent, inputs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.in_fn(x)
        return self.q1(x), self.q2(x)

    def Q1(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 (the official name)
        return self.q1(self.in_fn(x))
