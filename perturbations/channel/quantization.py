"""Bit-depth reduction: uniform mid-tread quantization to ``bits`` bits, without dither.

``full_scale``: ``peak`` (default) maps the clip's own peak to the largest code, so a level uses
exactly ``2**bits - 1`` codes whatever the recording's loudness (comparable across data sets);
``absolute`` uses the fixed range [-1, 1] as a real converter does (quiet clips then use fewer
codes and may vanish at low depths).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import Perturbation, register

LEVELS = (
    {"bits": 12, "full_scale": "peak"},
    {"bits": 10, "full_scale": "peak"},
    {"bits": 8, "full_scale": "peak"},
    {"bits": 6, "full_scale": "peak"},
    {"bits": 4, "full_scale": "peak"},
)

FULL_SCALES = ("peak", "absolute")


@register
@dataclass(frozen=True)
class Quantization(Perturbation):
    family: ClassVar[str] = "quantization"
    LEVELS: ClassVar[tuple] = LEVELS
    bits: int = 8
    full_scale: str = "peak"

    def validate(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, (int, np.integer)) \
                or not 2 <= self.bits <= 24:
            raise ValueError(f"quantization: bits must be an integer within 2..24, got {self.bits!r}")
        if self.full_scale not in FULL_SCALES:
            raise ValueError(f"quantization: full_scale must be one of {FULL_SCALES}, "
                             f"got {self.full_scale!r}")

    def apply(self, wav, sr, rng, context=None):
        x = np.asarray(wav, dtype=np.float64)
        scale = float(np.max(np.abs(x))) if self.full_scale == "peak" and x.size else 1.0
        if scale == 0.0:
            return x.astype(np.float32)
        top = 2 ** (int(self.bits) - 1) - 1  # codes -top..top
        codes = np.clip(np.round(x / scale * top), -top, top)
        return (codes * (scale / top)).astype(np.float32)

    def apply_torch(self, wav, sr, rng, context=None):
        x = wav.double()
        scale = float(x.abs().max()) if self.full_scale == "peak" and x.numel() else 1.0
        if scale == 0.0:
            return x.float()
        top = 2 ** (int(self.bits) - 1) - 1
        codes = (x / scale * top).round().clamp(-top, top)
        return (codes * (scale / top)).float()
