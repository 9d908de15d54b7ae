"""Agent-batched networks: one ensemble axis covers every agent (and both twin critics).

Weights are shaped ``[members, in, out]`` and applied with one batched matmul, so a single
call evaluates all agents' networks on their own inputs. Inputs and outputs are
``[members, batch, features]``. Agents whose observation or action sizes differ are handled by
zero-padding to the largest size (see ``act_mask`` in :class:`Actor`); padded features
contribute nothing and train nothing (``feature_mask`` in :class:`MemberBatchNorm`), so every
agent trains exactly as a separate unpadded network would.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class VectorizedLinear(nn.Module):
    """``members`` independent linear layers: ``y[m] = x[m] @ W[m] + b[m]``.

    Initialised like ``nn.Linear`` for every member (uniform in +-1/sqrt(in_features)).
    ``members`` may be a slice to evaluate a contiguous subset of members.
    """

    def __init__(self, in_features: int, out_features: int, members: int) -> None:
        super().__init__()
        self.in_features, self.out_features, self.members = in_features, out_features, members
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self, bound: float | None = None) -> None:
        bound = 1.0 / math.sqrt(self.in_features) if bound is None else bound
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor, members: slice = slice(None)) -> Tensor:
        return torch.baddbmm(self.bias[members], x, self.weight[members])

    def extra_repr(self) -> str:
        return f"members={self.members}, in={self.in_features}, out={self.out_features}"


class MemberBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d applied independently to every member's features.

    ``[members, batch, features]`` is viewed as ``[batch, members * features]`` so each member
    keeps its own statistics and affine parameters, exactly like one ``BatchNorm1d`` per member.

    ``feature_mask`` ``[members, features]`` (1 real, 0 padded) marks the zero padding of members
    with fewer input features than the widest. A padded feature is always 0, so it normalises to
    0 and the norm outputs its bias there; the affine terms of padded features enter the output
    with their values but receive no gradient (:meth:`affine_terms`), so they never move from their
    initial weight 1 and bias 0: the norm's padded outputs stay exactly 0 and the first layer's
    padded rows, multiplied by them, get no gradient either. A member then trains exactly as an
    unpadded network would, and the forward pass (evaluation included) is that of plain BatchNorm.
    """

    def __init__(self, features: int, members: int, feature_mask: Tensor | None = None) -> None:
        super().__init__(members * features)
        self.features, self.members = features, members
        keep = None
        if feature_mask is not None:
            if tuple(feature_mask.shape) != (members, features):
                raise ValueError(f"feature_mask must be [members={members}, features={features}], got {list(feature_mask.shape)}")
            keep = feature_mask.reshape(-1) > 0
            keep = None if bool(keep.all()) else keep
        self.register_buffer("feature_mask", keep, persistent=False)

    def affine_terms(self) -> tuple[Tensor, Tensor]:
        """Weight and bias ``[members * features]``; padded features' entries without gradient."""
        keep = self.feature_mask
        if keep is None:
            return self.weight, self.bias
        return torch.where(keep, self.weight, self.weight.detach()), torch.where(keep, self.bias, self.bias.detach())

    def forward(self, x: Tensor, members: slice = slice(None)) -> Tensor:
        m, b, d = x.shape
        lo = (members.start or 0) * d
        hi = lo + m * d
        training = self.training
        if training and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        weight, bias = self.affine_terms()
        y = F.batch_norm(
            x.transpose(0, 1).reshape(b, m * d),
            self.running_mean[lo:hi] if self.running_mean is not None else None,
            self.running_var[lo:hi] if self.running_var is not None else None,
            weight[lo:hi],
            bias[lo:hi],
            training,
            self.momentum,
            self.eps,
        )
        return y.reshape(b, m, d).transpose(0, 1)


class EnsembleMLP(nn.Module):
    """``members`` MLPs with two hidden ReLU layers and optional input BatchNorm.

    Args:
        in_dim: input features per member.
        out_dim: output features per member.
        hidden_dim: hidden units per layer.
        members: ensemble size (agents, or agents x twins).
        input_norm: BatchNorm1d on the input, as the official networks.
        out_init: if given, the last layer is initialised uniformly in +-out_init.
        feature_mask: ``[norm members, in_dim]``, 1 on each member's real input features (see
            :class:`MemberBatchNorm`); None when no member is padded.
        norm_members: members of the input norm when it is shared: member ``m`` of the layers
            then sees norm member ``m % norm_members`` (the twin critics, :class:`TwinCritic`,
            which normalise once and call :meth:`trunk`). Default: one norm per member.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int,
        members: int,
        input_norm: bool = True,
        out_init: float | None = None,
        feature_mask: Tensor | None = None,
        norm_members: int | None = None,
    ) -> None:
        super().__init__()
        self.members = members
        norm_members = members if norm_members is None else norm_members
        if members % norm_members:
            raise ValueError(f"norm_members ({norm_members}) must divide members ({members})")
        self.norm = MemberBatchNorm(in_dim, norm_members, feature_mask) if input_norm else None
        self.fc1 = VectorizedLinear(in_dim, hidden_dim, members)
        self.fc2 = VectorizedLinear(hidden_dim, hidden_dim, members)
        self.fc3 = VectorizedLinear(hidden_dim, out_dim, members)
        if out_init is not None:
            self.fc3.reset_parameters(out_init)

    def forward(self, x: Tensor, members: slice = slice(None)) -> Tensor:
        """x: [M, B, in_dim] with M the number of selected members -> [M, B, out_dim]."""
        if self.norm is not None:
            if self.norm.members != self.members:
                raise RuntimeError("this ensemble's input norm is shared between members: normalise, then call trunk()")
            x = self.norm(x, members)
        return self.trunk(x, members)

    def trunk(self, x: Tensor, members: slice = slice(None)) -> Tensor:
        """The layers after the input norm: x [M, B, in_dim] -> [M, B, out_dim]."""
        x = torch.relu_(self.fc1(x, members))
        x = torch.relu_(self.fc2(x, members))
        return self.fc3(x, members)


def _mask(dims: Sequence[int], width: int) -> Tensor:
    """[A, 1, width] with ones on each agent's first dims[i] features."""
    return (torch.arange(width)[None, :] < torch.as_tensor(list(dims))[:, None]).float()[:, None, :]


class Actor(nn.Module):
    """Deterministic tanh policies of all agents: obs [A, B, obs_dim] -> actions [A, B, act_dim].

    Padded action features of agents with fewer action dimensions are always zero; padded
    observation features take no part in training (:class:`MemberBatchNorm`).
    """

    def __init__(self, obs_dims: Sequence[int], act_dims: Sequence[int], hidden_dim: int, input_norm: bool = True):
        super().__init__()
        self.num_agents = len(obs_dims)
        obs_mask = _mask(obs_dims, max(obs_dims))[:, 0]
        self.net = EnsembleMLP(max(obs_dims), max(act_dims), hidden_dim, self.num_agents, input_norm, out_init=3e-3, feature_mask=obs_mask)
        self.register_buffer("act_mask", _mask(act_dims, max(act_dims)), persistent=False)

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(obs)) * self.act_mask


class TwinCritic(nn.Module):
    """Twin Q-networks of all agents in one ensemble of 2 * A members (twin-major order).

    ``forward(obs [A, N, obs_dim], act [A, N, act_dim]) -> q [2, A, N]``;
    ``q1`` evaluates the first twin only, at half the cost -> [A, N].
    ``obs`` may be any per-agent critic input (local observation, or a joint one for
    centralized critics).

    With ``shared_norm`` (the default) both twins of an agent share one input BatchNorm, as the
    official ``DoubleMLPNetwork``: one norm per agent over its input (affine parameters and
    running statistics shared by Q1 and Q2, updated once per call, by Q1-only calls too), and
    the norm's affine gradients are the sum of both twins'. ``shared_norm=False`` gives each
    twin its own norm (members ``t * A + i``); it is kept for the online MATD3 behaviour trainer
    (:mod:`omar_lightning.data.collect.matd3`), whose shipped cooperative-navigation snapshots were
    trained with it and regenerate only with it.

    ``obs_dims``/``act_dims``: each agent's real input sizes (a prefix of ``obs_dim`` and of
    ``act_dim``); padded features beyond them take no part in training (:class:`MemberBatchNorm`).
    Default: every feature is real.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_dim: int,
        num_agents: int,
        input_norm: bool = True,
        shared_norm: bool = True,
        obs_dims: Sequence[int] | None = None,
        act_dims: Sequence[int] | None = None,
    ):
        super().__init__()
        self.num_agents, self.shared_norm = num_agents, shared_norm
        mask = torch.cat([_mask(obs_dims or [obs_dim] * num_agents, obs_dim), _mask(act_dims or [act_dim] * num_agents, act_dim)], -1)[:, 0]
        norm_members = num_agents if shared_norm else 2 * num_agents
        self.net = EnsembleMLP(
            obs_dim + act_dim, 1, hidden_dim, 2 * num_agents, input_norm,
            feature_mask=mask.repeat(norm_members // num_agents, 1), norm_members=norm_members,
        )

    def _normalized(self, x: Tensor, twins: int) -> Tensor:
        """The first layer's input of members 0 .. twins * A - 1 from the agents' inputs x [A, N, d]."""
        norm = self.net.norm
        if norm is not None and self.shared_norm:
            x = norm(x)
        if twins == 1:
            return x if norm is None or self.shared_norm else norm(x, slice(0, self.num_agents))
        a, n, d = x.shape
        x = x.expand(twins, a, n, d).reshape(twins * a, n, d)
        return x if norm is None or self.shared_norm else norm(x)

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        x = self._normalized(torch.cat([obs, act], dim=-1), 2)
        return self.net.trunk(x).view(2, self.num_agents, -1)

    def q1(self, obs: Tensor, act: Tensor) -> Tensor:
        x = self._normalized(torch.cat([obs, act], dim=-1), 1)
        return self.net.trunk(x, slice(0, self.num_agents)).squeeze(-1)

    def sample_q(self, obs: Tensor, act: Tensor, twins: int = 2, per_sample: bool | None = None) -> Tensor:
        """Q-values of K sampled actions per observation: obs [A, B, Do], act [A, K, B, Da] -> [twins, A, K, B].

        Equal to ``forward`` on the observations repeated K times (``twins=1``: Q1 only), BatchNorm
        statistics and running-statistic updates included, without materialising the repeated
        input: the observation part of the input norm and of the first layer is computed once per
        observation and broadcast over the K samples.

        ``per_sample`` runs the hidden layers one sample at a time. The default does so on CPU
        when gradients are recorded (the CQL samples): each ``[members, B, hidden]`` activation and
        its gradient then stays in cache, and with one thread per process (as ``omar reproduce``
        runs) the OMAR update is about 1.3x faster than one pass over all K * B rows. Without
        gradients (the refinement's scores) nothing is kept for a backward pass and one pass is
        faster, as it is on a GPU (fewer kernel launches); docs/performance.md has the figures.
        Both paths give the same values.
        """
        a, k, b, da = act.shape
        do, m, net = obs.shape[-1], twins * a, self.net
        flat = act.reshape(a, k * b, da)
        if net.norm is not None:
            obs = _shared_input_norm(net.norm, obs, 0, twins, k * b)
            flat = _shared_input_norm(net.norm, flat, do, twins, k * b)
        if obs.shape[0] != m:  # one norm per agent (or none): the same input for every twin
            obs, flat = obs.repeat(twins, 1, 1), flat.repeat(twins, 1, 1)
        w1 = net.fc1.weight[:m]
        w_obs, w_act = w1[:, :do], w1[:, do:]
        h_obs = torch.baddbmm(net.fc1.bias[:m], obs, w_obs)  # [m, b, H]
        members = slice(0, m)
        if per_sample is None:
            per_sample = flat.device.type == "cpu" and torch.is_grad_enabled()
        # in-place ReLU only on whole tensors, never on views (autograd would copy them back)
        if per_sample:
            q = []
            for x in flat.view(m, k, b, da).transpose(0, 1):  # x: [m, b, da]
                h = torch.relu_(torch.baddbmm(h_obs, x, w_act))
                q.append(net.fc3(torch.relu_(net.fc2(h, members)), members))  # [m, b, 1]
            return torch.stack(q, 1).view(twins, a, k, b)
        h = torch.relu_(torch.bmm(flat, w_act).view(m, k, b, -1) + h_obs.unsqueeze(1))
        h = torch.relu_(net.fc2(h.view(m, k * b, -1), members))
        return net.fc3(h, members).view(twins, a, k, b)


def _shared_input_norm(norm: MemberBatchNorm, x: Tensor, lo: int, twins: int, count: int) -> Tensor:
    """Input BatchNorm of features [lo, lo + d) of agent i's x [A, N, d], statistics taken as over
    ``count`` rows of which x's N rows are each repeated count / N times (the mean and biased
    variance are x's own).

    With one norm per agent (``norm.members == A``, shared by the twins) returns [A, N, d] and
    updates each agent's running statistics once; with one per twin (``2 * A`` members, member
    ``t * A + i`` for twin t of agent i) returns [twins * A, N, d] for members 0 .. twins * A - 1
    and updates theirs."""
    a, _, d = x.shape
    m, width = (a if norm.members == a else twins * a), norm.features
    weight, bias = norm.affine_terms()
    weight = weight.view(-1, width)[:m, lo:lo + d].unsqueeze(1)
    bias = bias.view(-1, width)[:m, lo:lo + d].unsqueeze(1)
    copies = m // a
    # ``.data``: update the statistics in place the way F.batch_norm does, without bumping the
    # version counter of buffers that earlier batch_norm calls saved for their backward pass.
    running_mean = norm.running_mean.data.view(-1, width)[:m, lo:lo + d]
    running_var = norm.running_var.data.view(-1, width)[:m, lo:lo + d]
    if norm.training:
        var, mean = torch.var_mean(x, dim=1, correction=0)
        x_hat = (x - mean.unsqueeze(1)) * torch.rsqrt(var + norm.eps).unsqueeze(1)
        with torch.no_grad():
            running_mean.lerp_(mean.repeat(copies, 1), norm.momentum)
            running_var.lerp_(var.repeat(copies, 1) * (count / max(count - 1, 1)), norm.momentum)
            norm.num_batches_tracked.add_(1)
        return x_hat.repeat(copies, 1, 1) * weight + bias
    scale = torch.rsqrt(running_var + norm.eps).unsqueeze(1) * weight
    return (x.repeat(copies, 1, 1) - running_mean.unsqueeze(1)) * scale + bias


def parameter_members(module: nn.Module) -> list[int]:
    """The member count of every parameter of ``module``, in ``module.parameters()`` order (a
    twin critic's layers have 2 * A members, its shared input norm A)."""
    count: dict[nn.Parameter, int] = {}
    for m in module.modules():
        if isinstance(m, (VectorizedLinear, MemberBatchNorm)):
            for p in m.parameters(recurse=False):
                count[p] = m.members
    return [count[p] for p in module.parameters()]


def clip_grad_norm_per_member_(params: Sequence[nn.Parameter], members: int | Sequence[int], groups: int, max_norm: float) -> Tensor:
    """Clip gradients to ``max_norm`` separately for each of ``groups`` agents.

    Every parameter stores its members' slices member-major (``[members, ...]``, or
    ``[members * features]`` for BatchNorm); member ``m`` belongs to agent ``m % groups``, so the
    twin critics of one agent share its group. ``members`` is the member count of every
    parameter, or one count per parameter (:func:`parameter_members`; a norm shared by the twins
    has A members, the layers 2 * A). Equivalent to one ``clip_grad_norm_`` per agent's
    network(s). Returns the per-agent gradient norms before clipping, ``[groups]``.
    """
    counts = [members] * len(params) if isinstance(members, int) else list(members)
    if len(counts) != len(params):
        raise ValueError(f"members: {len(counts)} counts for {len(params)} parameters")
    views = [p.grad.view(c // groups, groups, -1) for p, c in zip(params, counts) if p.grad is not None]
    if not views:
        return torch.zeros(groups)
    norms = torch.stack([v.pow(2).sum((0, 2)) for v in views]).sum(0).sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for v in views:
        v.mul_(coef.view(1, groups, 1))
    return norms


@torch.no_grad()
def soft_update_(targets: Sequence[Tensor], onlines: Sequence[Tensor], rho: float) -> None:
    """theta' <- theta' + rho * (theta - theta') for every (target, online) tensor pair, in one
    fused call (the same values as one ``lerp_`` per tensor)."""
    torch._foreach_lerp_(list(targets), list(onlines), rho)


class JointContext(nn.Module):
    """Centralized critic context of every agent (MATD3 style): all observations and the other
    agents' actions of the same joint transition.

    ``forward(obs [A, B, Do_max], act [A, B, Da_max]) -> [A, B, sum(obs_dims) + max_i(sum(act_dims) - act_dims[i])]``:
    row i is ``[o_1, ..., o_A, a_j for j != i in order, zero padding]``. With agent i's own
    action appended by the critic this is the joint input (o, a) in a fixed per-agent order.
    Feature selection uses precomputed index buffers, no loop over agents. ``dims[i]``: the
    real (unpadded) width of row i, ``sum(obs_dims) + sum(act_dims) - act_dims[i]``.

    With ``state_dim`` the environment's global state takes the observations' place:
    ``forward(state [B, state_dim], act) -> [A, B, state_dim + max_i(sum(act_dims) - act_dims[i])]``,
    row i ``[s, a_j for j != i, zero padding]`` (the critic input ``(s, a)``), and
    ``dims[i] = state_dim + sum(act_dims) - act_dims[i]``.
    """

    def __init__(self, obs_dims: Sequence[int], act_dims: Sequence[int], state_dim: int | None = None) -> None:
        super().__init__()
        n, do, da = len(obs_dims), max(obs_dims), max(act_dims)
        obs_index = [i * do + f for i in range(n) for f in range(obs_dims[i])]
        others = [[j * da + f for j in range(n) if j != i for f in range(act_dims[j])] for i in range(n)]
        width = max(len(o) for o in others)
        pad = n * da  # index of an appended zero column
        others_index = [o + [pad] * (width - len(o)) for o in others]
        self.register_buffer("obs_index", torch.tensor(obs_index, dtype=torch.long), persistent=False)
        self.register_buffer("others_index", torch.tensor(others_index, dtype=torch.long), persistent=False)
        self.state_dim = state_dim
        joint = len(obs_index) if state_dim is None else int(state_dim)
        self.dim = joint + width
        self.dims = [joint + len(o) for o in others]

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        a, b, _ = act.shape
        if self.state_dim is None:
            joint_obs = obs.transpose(0, 1).reshape(b, -1).index_select(1, self.obs_index)  # [B, sum o]
        else:
            joint_obs = obs  # the global state [B, state_dim]
        joint_act = torch.cat([act.transpose(0, 1).reshape(b, -1), act.new_zeros(b, 1)], 1)
        others = joint_act[:, self.others_index].permute(1, 0, 2)  # [A, B, W]
        return torch.cat([joint_obs.unsqueeze(0).expand(a, -1, -1), others], -1)
