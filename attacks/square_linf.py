"""Square Attack under an L-inf budget (Andriushchenko et al., ECCV 2020), adapted to waveforms.

Score-based random search: it needs only the detector's score (a remote service's ``{"score": ...}``).
Per utterance, with amplitude ``a = rms(x) * 10**(-snr_db/20)`` (so the achieved SNR is ``>= snr_db``):

1. one query for the clean score (the starting best);
2. initialisation at the corners of the L-inf ball, the waveform analogue of the paper's vertical
   stripes: ``delta`` is ``+-a`` in contiguous blocks of ``init_block`` samples, each sign random; one query;
3. each further query redraws one contiguous time window (the paper's square): window length
   ``p_k * T`` with the paper's schedule (``p_init`` halved at 1%, 5%, 20%, 50%, 100%, ... of the
   budget's iterations, rescaled from its 10,000), start uniform, values ``+-a`` (``proposal: constant``,
   one sign for the window, as the paper's per-channel square; ``blocks``: one sign per ``init_block``
   samples, like the initialisation; ``noise``: one sign per sample);
   the candidate is kept when the loss ``s * score`` improved.

Every utterance spends exactly ``queries`` queries (there is no success test: a score-only attacker
does not know the service's threshold, so it keeps improving). Randomness: the utterance's own generator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch

from attacks import _budget
from attacks._blackbox import BlackBoxAttack, rand, randint
from attacks.base import register

LEVELS: tuple[Mapping[str, Any], ...] = (
    {"snr_db": 40.0, "queries": 100},
    {"snr_db": 30.0, "queries": 200},
    {"snr_db": 20.0, "queries": 400},
    {"snr_db": 15.0, "queries": 700},
    {"snr_db": 10.0, "queries": 1000},
)

PROPOSALS = ("constant", "blocks", "noise")


def p_schedule(p_init: float, it: int, n_iters: int) -> float:
    """The paper's window fraction at iteration ``it`` of ``n_iters`` (its schedule is for 10,000)."""
    i = int(it / max(1, n_iters) * 10000)
    for bound, div in ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64),
                       (6000, 128), (8000, 256)):
        if i <= bound:
            return p_init / div
    return p_init / 512


@register
@dataclass(frozen=True)
class SquareLinf(BlackBoxAttack):
    name: ClassVar[str] = "square-linf"
    LEVELS: ClassVar[tuple[Mapping[str, Any], ...]] = LEVELS
    version: ClassVar[int] = 1

    p_init: float = 0.05          # first window: this fraction of the clip
    init_block: int = 16          # initialisation: sign blocks of this many samples
    proposal: str = "constant"    # or "noise"

    def validate(self) -> None:
        super().validate()
        if not (isinstance(self.p_init, (int, float)) and 0 < self.p_init <= 1):
            raise ValueError(f"{self.name}: p_init must be a fraction in (0, 1], got {self.p_init!r}")
        self._positive("init_block", integer=True)
        if self.proposal not in PROPOSALS:
            raise ValueError(f"{self.name}: proposal must be one of {', '.join(PROPOSALS)}, got {self.proposal!r}")

    def _signs(self, gen, n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.where(rand(gen, (n,), like) < 0.5, -1.0, 1.0).to(like.dtype)

    def run(self, oracle, x, gens):
        B, T = x.shape
        a = _budget.amplitude(x, snr_db=self.snr_db)[:, None]
        rows = list(range(B))
        best_loss = oracle.loss(x, rows)
        best = torch.zeros_like(x)
        blocks = -(-T // self.init_block)
        delta = torch.stack([self._signs(g, blocks, x).repeat_interleave(self.init_block)[:T] for g in gens]) * a
        loss = oracle.loss((x + delta).clamp(-1, 1), rows)
        better = loss > best_loss
        best = torch.where(better[:, None], delta, best)
        best_loss = torch.where(better, loss, best_loss)
        n_iters = self.queries - 2
        for it in range(n_iters):
            w = max(1, min(T, round(p_schedule(self.p_init, it, n_iters) * T)))
            cand = best.clone()
            for i, g in enumerate(gens):
                start = randint(g, T - w + 1)
                if self.proposal == "blocks":
                    vals = self._signs(g, -(-w // self.init_block), x).repeat_interleave(self.init_block)[:w]
                else:
                    vals = self._signs(g, 1 if self.proposal == "constant" else w, x)
                cand[i, start:start + w] = vals * a[i]
            loss = oracle.loss((x + cand).clamp(-1, 1), rows)
            better = loss > best_loss
            best = torch.where(better[:, None], cand, best)
            best_loss = torch.where(better, loss, best_loss)
        return (x + best).clamp(-1, 1)


__all__ = ["SquareLinf", "LEVELS", "p_schedule"]
