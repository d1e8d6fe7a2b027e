"""Brown noise (power spectral density ∝ 1/f^2) added at an exact SNR.

The noise is generated from the rng passed in (``_mix.colored_noise``), not with
audiomentations' ``AddColorNoise``, which draws from the global numpy state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from perturbations.base import Perturbation, register
from perturbations.noise import _mix

# snr_db: 10·log10(Σx² / Σ(y−x)²) over the whole clip
LEVELS = (
    {"snr_db": 30.0},
    {"snr_db": 20.0},
    {"snr_db": 10.0},
    {"snr_db": 5.0},
    {"snr_db": 0.0},
)

BETA = 2  # spectral exponent: PSD ∝ 1/f^BETA


@register
@dataclass(frozen=True)
class BrownNoise(Perturbation):
    family: ClassVar[str] = "brown-noise"
    LEVELS: ClassVar[tuple] = LEVELS
    snr_db: float = 20.0

    def validate(self) -> None:
        if not -20.0 <= self.snr_db <= 80.0:
            raise ValueError(f"{self.family}: snr_db must be within -20..80 dB, got {self.snr_db}")

    def apply(self, wav, sr, rng, context=None):
        noise = _mix.colored_noise(len(wav), BETA, rng, sr)
        return _mix.add_at_snr(wav, noise, self.snr_db, context, self.family)
