"""Coloured noise added at an exact SNR: white, pink and brown, one parametrised family behind three names.

The noise has power spectral density ∝ 1/f^BETA (white 0, pink 1, brown 2) and is generated from the
rng passed in (``_mix.colored_noise``), not with audiomentations' ``AddColorNoise``, which draws from
the global numpy state. The three names share the ladder below; ``BETA`` is a class constant, not a
parameter, so each name's ``to_dict`` (and so its seeds and cache keys) is what it always was.
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


@dataclass(frozen=True)
class ColoredNoise(Perturbation):
    """Noise with power spectral density ∝ 1/f^BETA added at an exact SNR."""

    LEVELS: ClassVar[tuple] = LEVELS
    BETA: ClassVar[float] = 0.0   # spectral exponent: PSD ∝ 1/f^BETA
    snr_db: float = 20.0

    def validate(self) -> None:
        if not -20.0 <= self.snr_db <= 80.0:
            raise ValueError(f"{self.family}: snr_db must be within -20..80 dB, got {self.snr_db}")

    def apply(self, wav, sr, rng, context=None):
        noise = _mix.colored_noise(len(wav), self.BETA, rng, sr)
        return _mix.add_at_snr(wav, noise, self.snr_db, context, self.family)

    def apply_torch(self, wav, sr, rng, context=None):
        from perturbations import _torch

        white = _torch.tensor(rng.standard_normal(wav.numel()), wav)   # the CPU path's draw
        noise = _torch.shape_colored(white, self.BETA, sr, _mix.F_MIN_HZ)
        return _torch.add_at_snr(wav, noise, self.snr_db, context, self.family)


@register
@dataclass(frozen=True)
class WhiteNoise(ColoredNoise):
    """White noise (power spectral density ∝ 1/f^0) added at an exact SNR."""

    family: ClassVar[str] = "white-noise"
    BETA: ClassVar[float] = 0


@register
@dataclass(frozen=True)
class PinkNoise(ColoredNoise):
    """Pink noise (power spectral density ∝ 1/f^1) added at an exact SNR."""

    family: ClassVar[str] = "pink-noise"
    BETA: ClassVar[float] = 1


@register
@dataclass(frozen=True)
class BrownNoise(ColoredNoise):
    """Brown noise (power spectral density ∝ 1/f^2) added at an exact SNR."""

    family: ClassVar[str] = "brown-noise"
    BETA: ClassVar[float] = 2
