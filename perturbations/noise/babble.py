"""Babble: the sum of several other bona fide talkers of the same set, at an exact SNR.

The talkers come from ``context.pool(rng, n, exclude=utt_id)`` (the runner builds it from the
data set's bona fide utterances). Each talker gets a random offset (looped if shorter than the
clip) and unit RMS before summing, so no voice dominates; the sum is scaled to ``snr_db``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import Perturbation, register
from perturbations.noise import _mix

# snr_db: 10·log10(Σx² / Σ(y−x)²) over the whole clip; talkers: voices in the babble
LEVELS = (
    {"snr_db": 30.0, "talkers": 3},
    {"snr_db": 20.0, "talkers": 4},
    {"snr_db": 10.0, "talkers": 5},
    {"snr_db": 5.0, "talkers": 6},
    {"snr_db": 0.0, "talkers": 7},
)


@register
@dataclass(frozen=True)
class Babble(Perturbation):
    family: ClassVar[str] = "babble"
    LEVELS: ClassVar[tuple] = LEVELS
    needs_pool: ClassVar[bool] = True
    snr_db: float = 20.0
    talkers: int = 4

    def validate(self) -> None:
        if not -20.0 <= self.snr_db <= 80.0:
            raise ValueError(f"babble: snr_db must be within -20..80 dB, got {self.snr_db}")
        if isinstance(self.talkers, bool) or not isinstance(self.talkers, (int, np.integer)) \
                or not 1 <= self.talkers <= 64:
            raise ValueError(f"babble: talkers must be an integer within 1..64, got {self.talkers!r}")

    def apply(self, wav, sr, rng, context=None):
        return _mix.add_at_snr(wav, self.babble(len(wav), rng, context), self.snr_db, context, self.family)

    def apply_torch(self, wav, sr, rng, context=None):
        from perturbations import _torch

        noise = _torch.tensor(self.babble(wav.numel(), rng, context), wav)
        return _torch.add_at_snr(wav, noise, self.snr_db, context, self.family)

    def babble(self, n: int, rng, context) -> np.ndarray:
        """The sum of ``talkers`` other bona fide utterances, each at unit RMS, ``n`` samples."""
        if context is None or context.pool is None:
            raise ValueError("babble needs other bona fide utterances: the runner passes them as "
                             "Context(pool=...); when calling apply() directly, pass a Context "
                             "whose pool(rng, n, exclude=utt_id) returns waveforms at the same rate")
        voices = context.pool(rng, int(self.talkers), exclude=context.utt_id)
        babble = np.zeros(n)
        used = 0
        for v in voices:
            v = np.asarray(v, dtype=np.float64).reshape(-1)
            if v.size == 0 or not np.any(v):
                continue
            seg = _mix.fit_length(v, n, rng)
            r = float(np.sqrt(np.mean(seg ** 2)))
            if r > 0:
                babble += seg / r
                used += 1
        if used == 0:
            raise ValueError("babble: the pool returned no usable (non-silent) utterance")
        if used < self.talkers:
            context.report.append(f"babble: {used} of {self.talkers} talkers available")
        return babble
