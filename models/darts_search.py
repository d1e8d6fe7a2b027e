"""The PC-DARTS search super-network of Raw PC-DARTS, and one first-order search step.

Facts from eurecom-asp/raw-pc-darts-anti-spoofing (MIT), ``models/model_search.py``, ``func/architect.py``,
``func/functions.py`` (``train``) and ``train_search.py``:

- Same front end, stem and back end as the derived network (:mod:`models._darts_parts`), the same cell
  skeleton (preprocessing, ``steps`` nodes, output max-pooled by 2, reduction cells at 1/3 and 2/3 of the
  depth doubling the channels), but every edge (node ``i`` has ``i + 2`` incoming edges) is a ``MixedOp``.
- ``MixedOp``, partial channel connections: only the first ``C / K`` channels (``K = 2`` in the release) go
  through every candidate operation (affine-free BN; pooling followed by an affine-free BN), weighted by
  ``softmax(alpha)`` of the edge; the other channels bypass, and a channel shuffle with ``K`` groups mixes
  the two parts.
- Edge normalisation: each node sums its incoming edges weighted by ``softmax(beta)`` over those edges.
- ``arch_parameters()`` = ``[alphas_normal, alphas_reduce, betas_normal, betas_reduce]`` (initialised
  ``1e-3 * N(0, 1)``, here from a generator seeded by ``alpha_seed``); ``weights()`` = everything else.
- ``genotype()``: for each node, ``W = softmax(alpha) * softmax(beta)`` per edge; the two edges with the
  largest non-``none`` weight (ties: the lower index), each with its strongest op other than ``none``.
- Search (first order, the release's default): per batch, an Adam step of the architecture parameters on a
  validation batch (lr 6e-4, betas (0.5, 0.999), weight decay 1e-3), then an Adam step of the weights on a
  training batch (lr 5e-5, weight decay 3e-4); architecture steps start after 10 warm-up epochs of 30.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models._darts_genotype import parse_genotype
from models._darts_ops import OPS, PRIMITIVES, align, preprocess_pair
from models._darts_parts import DEFAULTS, DARTSBase, merge_config

SEARCH_DEFAULTS: dict[str, Any] = {**DEFAULTS, "steps": 4, "multiplier": 4, "primitives": list(PRIMITIVES),
                                   "partial_k": 2, "alpha_seed": 0}

#: the release's search recipe (train_search.py defaults)
SEARCH_RECIPE: dict[str, Any] = {"batch_size": 14, "num_epochs": 30, "warm_up_epoch": 10, "lr": 5e-5,
                                 "weight_decay": 3e-4, "arch_learning_rate": 6e-4, "arch_betas": (0.5, 0.999),
                                 "arch_weight_decay": 1e-3}


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, t = x.shape
    return x.view(b, groups, c // groups, t).transpose(1, 2).contiguous().view(b, c, t)


class MixedOp(nn.Module):
    """Every candidate op on the first ``C / K`` channels, weighted; the rest bypass; channel shuffle."""

    def __init__(self, c: int, primitives: Sequence[str], k: int = 2):
        super().__init__()
        self.k = k
        self.mp = nn.MaxPool1d(2, ceil_mode=True)
        self._ops = nn.ModuleList()
        for name in primitives:
            op = OPS[name](c // k, 1, False)
            if "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm1d(c // k, affine=False))
            self._ops.append(op)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        part = x.shape[1] // self.k
        mixed = sum(w * op(x[:, :part]) for w, op in zip(weights, self._ops))
        rest = x[:, part:]
        if mixed.shape[2] != x.shape[2]:
            rest = self.mp(rest)
        return channel_shuffle(torch.cat([mixed, rest], dim=1), self.k)


class SearchCell(nn.Module):
    def __init__(self, steps: int, multiplier: int, c_prev_prev: int, c_prev: int, c: int, reduction: bool,
                 reduction_prev: bool, primitives: Sequence[str], k: int):
        super().__init__()
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = preprocess_pair(c_prev_prev, c_prev, c, reduction_prev)
        self._steps, self._multiplier = steps, multiplier
        self.pooling_layer = nn.MaxPool1d(2)
        self._ops = nn.ModuleList(MixedOp(c, primitives, k) for i in range(steps) for _ in range(2 + i))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_weights: torch.Tensor) -> torch.Tensor:
        states = list(align(self.preprocess0(s0), self.preprocess1(s1)))
        offset = 0
        for _ in range(self._steps):
            s = sum(edge_weights[offset + j] * self._ops[offset + j](h, weights[offset + j])
                    for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return self.pooling_layer(torch.cat(states[-self._multiplier:], dim=1))


class DARTSSearch(DARTSBase):
    """The search super-network. ``forward(wav) -> score[B]`` as the derived network's."""

    NAME = "darts-search"

    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__()
        cfg = merge_config(self.NAME, dict(config or {}), SEARCH_DEFAULTS)
        unknown = [p for p in cfg["primitives"] if p not in OPS]
        if unknown or not cfg["primitives"]:
            raise ValueError(f"{self.NAME} config: primitives {unknown or '[]'} unknown or empty; "
                             f"known: {', '.join(OPS)}")
        k = cfg["partial_k"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or cfg["init_channels"] % k:
            raise ValueError(f"{self.NAME} config: partial_k must be a positive integer dividing init_channels "
                             f"({cfg['init_channels']}), got {k!r}")
        if not 1 <= cfg["multiplier"] <= cfg["steps"]:
            raise ValueError(f"{self.NAME} config: multiplier must be in 1..steps ({cfg['steps']}), got "
                             f"{cfg['multiplier']}")
        self.config = cfg
        self.primitives = list(cfg["primitives"])
        self._steps, self._multiplier = cfg["steps"], cfg["multiplier"]
        def make(*sizes):
            return SearchCell(self._steps, self._multiplier, *sizes, self.primitives, k), self._multiplier

        self._build_back(self._build_cells(self._build_front(cfg), cfg["layers"], make), cfg)
        n_edges = sum(2 + i for i in range(self._steps))
        g = torch.Generator().manual_seed(int(cfg["alpha_seed"]))
        init = lambda *shape: nn.Parameter(1e-3 * torch.randn(*shape, generator=g))  # noqa: E731
        self.alphas_normal = init(n_edges, len(self.primitives))
        self.alphas_reduce = init(n_edges, len(self.primitives))
        self.betas_normal = init(n_edges)
        self.betas_reduce = init(n_edges)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DARTSSearch":
        return cls(config)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas_normal, self.alphas_reduce, self.betas_normal, self.betas_reduce]

    def weights(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def edge_weights(self, betas: torch.Tensor) -> torch.Tensor:
        """softmax(beta) over the incoming edges of each node, concatenated (length = number of edges)."""
        out, start = [], 0
        for i in range(self._steps):
            out.append(F.softmax(betas[start:start + 2 + i], dim=-1))
            start += 2 + i
        return torch.cat(out)

    def run_cells(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        w_normal, w_reduce = F.softmax(self.alphas_normal, dim=-1), F.softmax(self.alphas_reduce, dim=-1)
        e_normal, e_reduce = self.edge_weights(self.betas_normal), self.edge_weights(self.betas_reduce)
        for cell in self.cells:
            w, e = (w_reduce, e_reduce) if cell.reduction else (w_normal, e_normal)
            s0, s1 = s1, cell(s0, s1, w, e)
        return s1

    def _parse(self, weights: torch.Tensor, edge_weights: torch.Tensor) -> list[list[Any]]:
        none = self.primitives.index("none") if "none" in self.primitives else -1
        gene, start = [], 0
        for i in range(self._steps):
            n = i + 2
            w = (weights[start:start + n] * edge_weights[start:start + n, None]).tolist()
            strength = lambda j: max(v for k, v in enumerate(w[j]) if k != none)  # noqa: E731
            for j in sorted(range(n), key=lambda j: -strength(j))[:2]:
                best = max((k for k in range(len(w[j])) if k != none), key=lambda k: (w[j][k], -k))
                gene.append([self.primitives[best], j])
            start += n
        return gene

    @torch.no_grad()
    def genotype(self) -> dict[str, Any]:
        """The derived architecture as a validated genotype dict (JSON-serialisable)."""
        concat = list(range(2 + self._steps - self._multiplier, self._steps + 2))
        g = {"normal": self._parse(F.softmax(self.alphas_normal, dim=-1), self.edge_weights(self.betas_normal)),
             "normal_concat": concat,
             "reduce": self._parse(F.softmax(self.alphas_reduce, dim=-1), self.edge_weights(self.betas_reduce)),
             "reduce_concat": concat}
        return parse_genotype(g)

    def derived_config(self) -> dict[str, Any]:
        """The configuration of the ``darts`` detector with the searched genotype and this front/back end."""
        skip = set(SEARCH_DEFAULTS) - set(DEFAULTS)
        return {**{k: v for k, v in self.config.items() if k not in skip}, "genotype": self.genotype()}


def search_optimizers(model: DARTSSearch, recipe: Mapping[str, Any] = SEARCH_RECIPE
                      ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """``(weights optimiser, architecture optimiser)``: the release's two Adams."""
    w_opt = torch.optim.Adam(model.weights(), recipe["lr"], weight_decay=recipe["weight_decay"])
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=recipe["arch_learning_rate"],
                             betas=tuple(recipe["arch_betas"]), weight_decay=recipe["arch_weight_decay"])
    return w_opt, a_opt


def first_order_step(model: DARTSSearch, w_opt: torch.optim.Optimizer, a_opt: torch.optim.Optimizer,
                     batch_train: tuple[torch.Tensor, torch.Tensor], batch_val: tuple[torch.Tensor, torch.Tensor],
                     loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                     update_arch: bool = True) -> dict[str, float]:
    """One search step as the release's ``train``: (if ``update_arch``) the architecture on ``batch_val``,
    then the weights on ``batch_train``; each batch is ``(wav[B, T], target[B])`` with 1 = bona fide.
    ``loss_fn(class_scores, target)`` defaults to the head's criterion. Puts the model in train mode."""
    loss_fn = loss_fn or model.loss
    model.train()
    out: dict[str, float] = {}
    if update_arch:
        a_opt.zero_grad()
        wav, target = batch_val
        val_loss = loss_fn(model.class_scores(wav), target.to(model.stem[0].weight.device))
        val_loss.backward()
        a_opt.step()
        out["val_loss"] = float(val_loss.detach())
    wav, target = batch_train
    loss = loss_fn(model.class_scores(wav), target.to(model.stem[0].weight.device))
    w_opt.zero_grad()
    loss.backward()
    w_opt.step()
    out["train_loss"] = float(loss.detach())
    return out
