"""A level change (a quiet recording, a distant microphone): multiply by ``10**(gain_db/20)``.

The ladder attenuates (a boost would clip, which is the ``clipping`` family's job).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import Perturbation, register

LEVELS = (
    {"gain_db": -6.0},
    {"gain_db": -12.0},
    {"gain_db": -20.0},
    {"gain_db": -30.0},
    {"gain_db": -40.0},
)


@register
@dataclass(frozen=True)
class Gain(Perturbation):
    family: ClassVar[str] = "gain"
    LEVELS: ClassVar[tuple] = LEVELS
    gain_db: float = -12.0

    def validate(self) -> None:
        if not -120.0 <= self.gain_db <= 40.0:
            raise ValueError(f"gain: gain_db must be within -120..40 dB, got {self.gain_db}")

    def apply(self, wav, sr, rng, context=None):
        y = np.asarray(wav, dtype=np.float64) * 10.0 ** (self.gain_db / 20.0)
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        if peak > 1.0 and context is not None:
            context.report.append(f"gain: peak {peak:.2f} above full scale (not clipped)")
        return y.astype(np.float32)

    def apply_torch(self, wav, sr, rng, context=None):
        y = wav.double() * 10.0 ** (self.gain_db / 20.0)
        peak = float(y.abs().max()) if y.numel() else 0.0
        if peak > 1.0 and context is not None:
            context.report.append(f"gain: peak {peak:.2f} above full scale (not clipped)")
        return y.float()
