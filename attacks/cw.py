"""C&W-style L2 attack (Carlini & Wagner, 2017) inside an L2 budget ball.

Minimises, per utterance, ``||delta||^2 / r^2 + c * max(kappa - m, 0)`` with the margin
``m = s * (score - threshold)`` (``s = +1`` spoof, ``-1`` bona fide: ``m > 0`` means the score is on the
other side of ``threshold``), by Adam in C&W's tanh space (``adv = tanh(w)``, which keeps the waveform
inside (-1, 1) by construction). After every Adam step the iterate is projected onto the budget ball
(and ``w`` re-synced), so every iterate is feasible. ``search_steps`` rounds of binary search on ``c``
per utterance (x10 until the first success, then bisection), as in C&W. Returned per utterance: the
smallest-distortion iterate that reached ``m >= kappa``; if none did, the one with the largest margin.

The distance is normalised by the budget radius ``r``, so ``c`` has the same meaning at every level;
Adam's learning rate is ``lr`` times the budget's RMS amplitude ``r / sqrt(T)`` per step.
``threshold`` is the detector's decision threshold on its score (0.0 by default: set it to the
detector's clean EER threshold for a calibrated attack); ``kappa`` is C&W's confidence margin.

Budget (see attacks/_budget.py): ``snr_db``: ``||delta_i||_2 <= r_i = ||x_i||_2 * 10**(-snr_db/20)``,
achieved SNR ``>= snr_db`` (higher when success needs less); ``eps`` (an RMS amplitude):
``||delta_i||_2 <= eps * sqrt(T)``. Deterministic: the generator is ignored.
Cost: ``1 + search_steps * (steps + 1)`` forwards and ``search_steps * steps`` backwards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch

from attacks import _budget
from attacks._gradient import GradientAttack, is_number
from attacks.base import register

LEVELS: tuple[Mapping[str, Any], ...] = (
    {"snr_db": 50.0, "steps": 20, "search_steps": 1, "c": 1.0},
    {"snr_db": 40.0, "steps": 20, "search_steps": 1, "c": 1.0},
    {"snr_db": 30.0, "steps": 20, "search_steps": 1, "c": 1.0},
    {"snr_db": 20.0, "steps": 20, "search_steps": 1, "c": 1.0},
    {"snr_db": 10.0, "steps": 20, "search_steps": 1, "c": 1.0},
)
BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
_EDGE = 1.0 - 1e-6  # atanh(+-1) is infinite


@register
@dataclass(frozen=True)
class CW(GradientAttack):
    name: ClassVar[str] = "cw"
    LEVELS: ClassVar[tuple[Mapping[str, Any], ...]] = LEVELS
    version: ClassVar[int] = 1

    steps: int = 20
    search_steps: int = 1
    c: float = 1.0
    lr: float = 0.1
    kappa: float = 0.0
    threshold: float = 0.0

    def budget_norm(self) -> str:
        return "l2"

    def validate(self) -> None:
        super().validate()
        self._check_loop()
        self._positive("search_steps", integer=True)
        for f in ("c", "lr"):
            self._positive(f)
        self._positive("kappa", allow_zero=True)
        if not (is_number(self.threshold) and math.isfinite(self.threshold)):
            raise ValueError(f"{self.name}: threshold must be a finite score, got {self.threshold!r}")

    def run(self, obj, x, bound, generator):
        r = bound[:, None]
        lr = self.lr * r / math.sqrt(x.shape[1])
        r = r.clamp_min(1e-12)  # a silent utterance has a zero budget (lr = 0): keep the maths finite
        margin0 = obj.loss(x) - obj.sign * self.threshold
        # best so far: success (m >= kappa) with the least distortion, else the largest margin
        best, best_ok = x.clone(), margin0 >= self.kappa
        best_l2 = torch.where(best_ok, torch.zeros_like(margin0), torch.full_like(margin0, math.inf))
        best_m = margin0.clone()
        c = torch.full_like(margin0, float(self.c))
        lo, hi = torch.zeros_like(c), torch.full_like(c, math.inf)

        def consider(adv, m):
            nonlocal best, best_ok, best_l2, best_m
            l2 = _budget.l2norm(adv - x)[:, 0]
            ok = m >= self.kappa
            take = (ok & (l2 < best_l2)) | (~ok & ~best_ok & (m > best_m))
            best = torch.where(take[:, None], adv, best)
            best_l2 = torch.where(take & ok, l2, best_l2)
            best_m = torch.where(take, m, best_m)
            best_ok = best_ok | ok
            return ok

        for _ in range(self.search_steps):
            w = torch.atanh(x.clamp(-_EDGE, _EDGE))
            m1, m2 = torch.zeros_like(w), torch.zeros_like(w)
            succeeded = torch.zeros_like(best_ok)
            for t in range(1, self.steps + 1):
                adv = torch.tanh(w)
                s_loss, g_s = obj.loss_and_grad(adv)
                m = s_loss - obj.sign * self.threshold
                succeeded |= consider(adv, m)
                active = (m < self.kappa).float()[:, None]
                g_adv = 2.0 * (adv - x) / (r * r) - c[:, None] * active * g_s
                g = g_adv * (1.0 - adv * adv)
                m1 = BETAS[0] * m1 + (1 - BETAS[0]) * g
                m2 = BETAS[1] * m2 + (1 - BETAS[1]) * g * g
                mh, vh = m1 / (1 - BETAS[0] ** t), m2 / (1 - BETAS[1] ** t)
                w = w - lr * mh / (vh.sqrt() + ADAM_EPS)
                adv = _budget.to_wave(x, torch.tanh(w) - x, bound, "l2")
                w = torch.atanh(adv.clamp(-_EDGE, _EDGE))
            adv = torch.tanh(w)
            succeeded |= consider(adv, obj.loss(adv) - obj.sign * self.threshold)
            hi = torch.where(succeeded, torch.minimum(hi, c), hi)
            lo = torch.where(succeeded, lo, torch.maximum(lo, c))
            c = torch.where(torch.isinf(hi), c * 10.0, (lo + hi) / 2.0)
        return best


__all__ = ["CW", "LEVELS"]
