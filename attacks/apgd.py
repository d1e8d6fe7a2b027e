"""APGD (Croce & Hein, 2020, "auto-PGD", the APGD-CE schedule) under an L-inf or L2 budget.

Momentum PGD whose step size starts at twice the budget and halves per utterance at checkpoints
``w_j`` (the first after ``0.22 * steps`` iterations, then spacing shrinking by ``0.03 * steps`` down
to ``0.06 * steps``) when either fewer than 75% of the steps since the last checkpoint raised the
loss, or the step was not reduced at the last checkpoint and the best loss has not improved since;
on a halving the iterate restarts from the best point found. Momentum 0.75 (none on the first step).
The loss is the generic ``s * score`` (``s = +1`` spoof, ``-1`` bona fide) rather than the two-class
cross-entropy, so any ``[B]``-score detector fits; each utterance returns its highest-loss iterate,
best over ``restarts`` random starts (from the passed generator: a random corner direction of the
L-inf ball scaled to touch it, or a random point on the L2 sphere, as in the reference code).

Budget (see attacks/_budget.py), ``norm="linf"``: ``max|delta_i| <= a_i = rms(x_i) * 10**(-snr_db/20)``
(SNR ``>= snr_db``) or ``<= eps``. ``norm="l2"``: ``||delta_i||_2 <= ||x_i||_2 * 10**(-snr_db/20)``
(SNR ``>= snr_db``, equal on the sphere) or ``<= eps * sqrt(T)`` (``eps`` an RMS amplitude).
Cost: ``restarts * (steps + 1)`` forwards and ``restarts * steps`` backwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch

from attacks import _budget
from attacks._gradient import GradientAttack, best_of, normal, uniform
from attacks.base import register

LEVELS: tuple[Mapping[str, Any], ...] = (
    {"snr_db": 50.0, "norm": "linf", "steps": 20, "restarts": 1},
    {"snr_db": 40.0, "norm": "linf", "steps": 20, "restarts": 1},
    {"snr_db": 30.0, "norm": "linf", "steps": 20, "restarts": 1},
    {"snr_db": 20.0, "norm": "linf", "steps": 20, "restarts": 1},
    {"snr_db": 10.0, "norm": "linf", "steps": 20, "restarts": 1},
)
MOMENTUM = 0.75   # weight of the new step (alpha in the paper)
RHO = 0.75        # fraction of loss-raising steps below which the step size halves
P1, DECR, MIN_GAP = 0.22, 0.03, 0.06


@register
@dataclass(frozen=True)
class APGD(GradientAttack):
    name: ClassVar[str] = "apgd"
    LEVELS: ClassVar[tuple[Mapping[str, Any], ...]] = LEVELS
    version: ClassVar[int] = 1

    norm: str = "linf"
    steps: int = 20
    restarts: int = 1
    random_start: bool = True

    def validate(self) -> None:
        super().validate()
        self._check_loop()

    def _direction(self, grad: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return grad.sign()
        return grad / _budget.l2norm(grad).clamp_min(1e-30)

    def _start(self, x, b, generator):
        if not self.random_start:
            return torch.zeros_like(x)
        if self.norm == "linf":
            t = 2.0 * uniform(generator, x.shape, x, self.name) - 1.0
            return b * t / t.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
        t = normal(generator, x.shape, x, self.name)
        return b * t / _budget.l2norm(t).clamp_min(1e-30)

    def run(self, obj, x, bound, generator):
        n = self.steps
        gap, gap_min, decr = max(int(P1 * n), 1), max(int(MIN_GAP * n), 1), max(int(DECR * n), 1)
        b = bound[:, None]

        def feasible(adv):
            return _budget.to_wave(x, adv - x, bound, self.norm)

        def one_run():
            adv = feasible(x + self._start(x, b, generator))
            loss, grad = obj.loss_and_grad(adv)
            best, best_loss, best_grad = adv.clone(), loss.clone(), grad.clone()
            losses = [loss]
            eta = 2.0 * b
            adv_old = adv
            since_check, next_check = 0, gap
            best_at_check = best_loss.clone()
            reduced_at_check = torch.ones_like(loss, dtype=torch.bool)
            for i in range(n):
                a = MOMENTUM if i > 0 else 1.0
                z = feasible(adv + eta * self._direction(grad))
                new = feasible(adv + a * (z - adv) + (1.0 - a) * (adv - adv_old))
                adv_old, adv = adv, new
                if i < n - 1:
                    loss, grad = obj.loss_and_grad(adv)
                else:  # the last iterate needs its loss only
                    loss = obj.loss(adv)
                losses.append(loss)
                better = loss > best_loss
                best = torch.where(better[:, None], adv, best)
                best_grad = torch.where(better[:, None], grad, best_grad)
                best_loss = torch.where(better, loss, best_loss)
                since_check += 1
                if since_check == next_check and i < n - 1:
                    rises = sum((losses[-j] > losses[-j - 1]).float() for j in range(1, next_check + 1))
                    halve = (rises <= RHO * next_check) | (~reduced_at_check & (best_at_check >= best_loss))
                    reduced_at_check, best_at_check = halve, best_loss.clone()
                    eta = torch.where(halve[:, None], eta / 2.0, eta)
                    adv = torch.where(halve[:, None], best, adv)
                    grad = torch.where(halve[:, None], best_grad, grad)
                    since_check, next_check = 0, max(next_check - decr, gap_min)
            return best, best_loss

        return best_of(self.restarts, one_run)


__all__ = ["APGD", "LEVELS"]
