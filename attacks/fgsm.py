"""FGSM (Goodfellow et al., 2015): one signed-gradient step of the whole L-inf budget.

``adv = clamp(x + a * sign(grad_x(s * score)), -1, 1)`` with ``s = +1`` for spoof, ``-1`` for bona fide.

Budget (see attacks/_budget.py): ``snr_db`` gives each utterance ``a_i = rms(x_i) * 10**(-snr_db/20)``
and ``max|delta_i| <= a_i``, so its SNR is ``>= snr_db`` (about ``snr_db`` exactly where nothing clips
and no gradient sample is zero); ``eps`` gives every utterance ``max|delta| <= eps`` (full scale 1.0).
Deterministic: no randomness, the generator is ignored. Cost: one forward and backward.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from attacks import _budget
from attacks._gradient import GradientAttack
from attacks.base import register

LEVELS: tuple[Mapping[str, Any], ...] = (
    {"snr_db": 50.0},
    {"snr_db": 40.0},
    {"snr_db": 30.0},
    {"snr_db": 20.0},
    {"snr_db": 10.0},
)


@register
@dataclass(frozen=True)
class FGSM(GradientAttack):
    name: ClassVar[str] = "fgsm"
    LEVELS: ClassVar[tuple[Mapping[str, Any], ...]] = LEVELS
    version: ClassVar[int] = 1

    def run(self, obj, x, bound, generator):
        _, grad = obj.loss_and_grad(x)
        return _budget.to_wave(x, bound[:, None] * grad.sign(), bound, "linf")


__all__ = ["FGSM", "LEVELS"]
