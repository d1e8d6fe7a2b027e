"""PGD under an L2 budget (torchattacks' PGDL2), with restarts and best-iterate.

Each restart: a random start ``delta_0 = r * u * z / ||z||`` (``z`` Gaussian, ``u ~ U(0, 1)``, both from the
passed generator), then ``steps`` times ``adv <- clamp(x + P(adv + alpha_k * r * g / ||g|| - x), -1, 1)``,
``P`` scaling the perturbation back onto the ball when it leaves it. The loss ``s * score`` (``s = +1``
spoof, ``-1`` bona fide) is evaluated at every iterate; each utterance keeps its best over all steps
and restarts.

Budget (see attacks/_budget.py): with ``snr_db``, ``||delta_i||_2 <= r_i = ||x_i||_2 * 10**(-snr_db/20)``,
i.e. achieved SNR ``>= snr_db``, and when the best iterate is on the sphere (nothing clipped) equal to it within
1e-5 dB; with ``eps`` (an RMS amplitude), ``||delta_i||_2 <= eps * sqrt(T)``. Steps ``alpha_k`` are
fractions of ``r``: ``schedule="cosine"`` (the default) gives ``alpha_k = step * (1 + cos(pi k / steps)) / 2``,
``step`` defaulting to ``5 / steps``; ``"constant"`` gives ``alpha_k = step``, default ``2.5 / steps``.
With the constant step the best iterate is often inside the ball on AASIST-L (SNR up to ~3 dB above
the target at 10 steps); with the cosine decay it ended on the sphere and reached a higher loss.
Cost: ``restarts * (steps + 1)`` forwards and ``restarts * steps`` backwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from attacks import _budget
from attacks._gradient import GradientAttack, Tracker, best_of, normal, step_sizes, uniform
from attacks.base import register

LEVELS: tuple[Mapping[str, Any], ...] = (
    {"snr_db": 50.0, "steps": 10, "restarts": 1, "schedule": "cosine"},
    {"snr_db": 40.0, "steps": 10, "restarts": 1, "schedule": "cosine"},
    {"snr_db": 30.0, "steps": 10, "restarts": 1, "schedule": "cosine"},
    {"snr_db": 20.0, "steps": 10, "restarts": 1, "schedule": "cosine"},
    {"snr_db": 10.0, "steps": 10, "restarts": 1, "schedule": "cosine"},
)


@register
@dataclass(frozen=True)
class PGDL2(GradientAttack):
    name: ClassVar[str] = "pgd-l2"
    LEVELS: ClassVar[tuple[Mapping[str, Any], ...]] = LEVELS
    version: ClassVar[int] = 1

    steps: int = 10
    restarts: int = 1
    step: float | None = None          # fraction of the budget radius per step; None: 2.5 / steps
    schedule: str = "cosine"           # or "constant"
    random_start: bool = True

    def budget_norm(self) -> str:
        return "l2"

    def validate(self) -> None:
        super().validate()
        self._check_loop()

    def run(self, obj, x, bound, generator):
        alphas = step_sizes(self.steps, self.step, self.schedule)
        r = bound[:, None]

        def one_run():
            if self.random_start:
                z = normal(generator, x.shape, x, self.name)
                u = uniform(generator, (x.shape[0], 1), x, self.name)
                delta = z / _budget.l2norm(z).clamp_min(1e-30) * r * u
            else:
                delta = 0.0 * x
            adv = _budget.to_wave(x, delta, bound, "l2")
            track = None
            for alpha in alphas:
                loss, grad = obj.loss_and_grad(adv)
                track = Tracker(adv, loss) if track is None else track
                track.update(adv, loss)
                direction = grad / _budget.l2norm(grad).clamp_min(1e-30)
                adv = _budget.to_wave(x, adv + alpha * r * direction - x, bound, "l2")
            track.update(adv, obj.loss(adv))
            return track.adv, track.loss

        return best_of(self.restarts, one_run)


__all__ = ["PGDL2", "LEVELS"]
