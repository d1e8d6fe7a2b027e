"""HopSkipJump (Chen, Jordan and Wainwright, IEEE S&P 2020): a decision-based attack under an L2 budget.

It needs only the decision, so it also runs against a decision-only service (``--remote-output decision``,
whose scores are +1 / -1). The decision of a score is bona fide iff ``score >= threshold`` (default 0:
right for a decision-only service; for a local model set it to the operating point you attack, e.g.
the clean EER threshold of an earlier run). A spoof utterance is adversarial once judged bona fide, a
bona fide one once judged spoof.

Per utterance (the budget: ``||delta||_2 <= ||x||_2 * 10**(-snr_db/20)``, i.e. achieved SNR ``>= snr_db``):

1. one query: already adversarial? then it is returned unchanged;
2. initialisation: the utterance's starting clip when one is given and judged the other class (in ``bench
   run``: for a spoof, a bona fide clip of the data set, as an attacker owns genuine recordings; one query),
   else uniform noise at SNRs ``init_snrs`` dB (quietest first; one query each) until one is adversarial,
   else the utterance is returned unchanged (the attack failed);
3. a binary search (``bin_steps`` queries) on the segment to the clean clip puts the point on the boundary;
4. iterations: estimate the boundary's normal from ``n_evals`` decisions at random points of the
   sphere of radius ``probe * distance`` around the boundary point (``init_evals * sqrt(t)`` of them, at
   most ``max_evals``; the baseline-corrected Monte-Carlo estimate of the paper), step along it by
   ``distance / sqrt(t)`` (halved until adversarial), then binary-search back to the boundary; the
   closest adversarial point so far is kept;
5. when the query budget is spent: the closest adversarial point if it is within the SNR budget, else
   its projection onto the budget's L2 ball (usually no longer adversarial: a failure within budget).

Without a starting clip, noise initialisation rarely works for spoofs on AASIST-L (noise makes its scores
spoofier); hence the starting clips.

Randomness: the utterance's own generator. Utterances are attacked one after another; the probes of one
gradient estimate go to the detector as one batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch

from attacks import _budget
from attacks._blackbox import BlackBoxAttack, rand, randn
from attacks.base import register

LEVELS: tuple[Mapping[str, Any], ...] = (
    {"snr_db": 40.0, "queries": 200},
    {"snr_db": 30.0, "queries": 400},
    {"snr_db": 20.0, "queries": 800},
    {"snr_db": 15.0, "queries": 1400},
    {"snr_db": 10.0, "queries": 2000},
)


@register
@dataclass(frozen=True)
class HopSkipJump(BlackBoxAttack):
    name: ClassVar[str] = "hsja"
    LEVELS: ClassVar[tuple[Mapping[str, Any], ...]] = LEVELS
    version: ClassVar[int] = 1

    threshold: float = 0.0
    init_snrs: tuple[float, ...] = (20.0, 10.0, 5.0, 0.0, -5.0, -10.0)
    bin_steps: int = 10
    init_evals: int = 20
    max_evals: int = 100
    probe: float = 0.01
    batch: int = 32             # probes per detector call
    uses_starts: ClassVar[bool] = True

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.threshold, (int, float)) or isinstance(self.threshold, bool) \
                or not math.isfinite(self.threshold):
            raise ValueError(f"{self.name}: threshold must be a finite score, got {self.threshold!r}")
        if not isinstance(self.init_snrs, (list, tuple)) or not self.init_snrs \
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in self.init_snrs):
            raise ValueError(f"{self.name}: init_snrs must be a non-empty list of dB values, got {self.init_snrs!r}")
        object.__setattr__(self, "init_snrs", tuple(float(v) for v in self.init_snrs))
        for f in ("bin_steps", "init_evals", "max_evals", "batch"):
            self._positive(f, integer=True)
        if not (isinstance(self.probe, (int, float)) and 0 < self.probe < 1):
            raise ValueError(f"{self.name}: probe must be a fraction in (0, 1), got {self.probe!r}")

    def run(self, oracle, x, gens, starts=None):
        radius = _budget.radius(x, "l2", snr_db=self.snr_db)
        out = x.clone()
        for i, g in enumerate(gens):
            start = None if starts is None or starts[i] is None else torch.as_tensor(starts[i]).to(x)
            if start is not None and start.shape != x[i].shape:
                raise ValueError(f"attack {self.name}: starting point {i} has shape {tuple(start.shape)}, "
                                 f"the utterance {tuple(x[i].shape)}")
            out[i] = self._one(oracle, i, x[i], g, float(radius[i]), start)
        return out

    # ------------------------------------------------------------------------------------------
    def _adversarial(self, oracle, i: int, pts: torch.Tensor) -> torch.Tensor:
        """Decisions for points [n, T] of utterance i (n queries), True where judged the other class."""
        out = []
        for k in range(0, pts.shape[0], self.batch):
            s = oracle.scores(pts[k:k + self.batch], [i] * min(self.batch, pts.shape[0] - k))
            out.append(s >= self.threshold if oracle.sign[i] > 0 else s < self.threshold)
        return torch.cat(out)

    def _boundary(self, oracle, i, x, adv):
        """Binary search on the segment x -> adv (adv adversarial): the adversarial end after the search."""
        lo, hi = 0.0, 1.0
        for _ in range(min(self.bin_steps, oracle.left(i))):
            mid = (lo + hi) / 2
            if bool(self._adversarial(oracle, i, (x + mid * (adv - x))[None])[0]):
                hi = mid
            else:
                lo = mid
        return x + hi * (adv - x)

    def _one(self, oracle, i, x, gen, radius, start=None):
        if bool(self._adversarial(oracle, i, x[None])[0]):
            return x
        rms = float(x.double().pow(2).mean().sqrt())
        adv = None
        if start is not None and oracle.left(i) >= 1:
            start = start.clamp(-1, 1)
            if bool(self._adversarial(oracle, i, start[None])[0]):
                adv = start
        for snr in (() if adv is not None else self.init_snrs):
            if oracle.left(i) < 1:
                break
            amp = max(rms, 1e-4) * 10 ** (-snr / 20) * math.sqrt(3.0)   # uniform noise of that rms
            cand = (x + (2 * rand(gen, x.shape, x) - 1) * amp).clamp(-1, 1)
            if bool(self._adversarial(oracle, i, cand[None])[0]):
                adv = cand
                break
        if adv is None:
            return x
        best = self._boundary(oracle, i, x, adv)
        best_d = float((best - x).norm())
        cur, d, t = best, best_d, 0
        while True:
            t += 1
            n = min(int(self.init_evals * math.sqrt(t)), self.max_evals, oracle.left(i) - self.bin_steps - 2)
            if n < 2 or d == 0:
                break
            u = randn(gen, (n, x.shape[0]), x)
            u = u / u.norm(dim=1, keepdim=True)
            f = self._adversarial(oracle, i, (cur + self.probe * d * u).clamp(-1, 1)).float() * 2 - 1
            fbar = float(f.mean())
            grad = ((f - fbar) if abs(fbar) < 1 else f)[:, None].mul(u).mean(0)
            if float(grad.norm()) == 0:
                continue
            grad = grad / grad.norm()
            eps = d / math.sqrt(t)
            step = None
            while oracle.left(i) > self.bin_steps and eps > d * 1e-4:
                cand = (cur + eps * grad).clamp(-1, 1)
                if bool(self._adversarial(oracle, i, cand[None])[0]):
                    step = cand
                    break
                eps /= 2
            if step is None:
                break
            cur = self._boundary(oracle, i, x, step)
            d = float((cur - x).norm())
            if d < best_d:
                best, best_d = cur, d
        if best_d <= radius:
            return best
        return x + (best - x) * (radius * (1 - 1e-6) / best_d)


__all__ = ["HopSkipJump", "LEVELS"]
