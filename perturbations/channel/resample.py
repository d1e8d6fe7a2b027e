"""Down-sampling to a lower rate and back (a low-rate recording or link).

Polyphase resampling (``scipy.signal.resample_poly``: linear phase, delay compensated), so the
output stays aligned; everything above ``rate/2`` is removed. When the input's rate is already
at or below ``rate`` the clip is returned unchanged (with a note).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations import _measure
from perturbations.base import Perturbation, register

LEVELS = (
    {"rate": 12000},
    {"rate": 8000},
    {"rate": 6000},
    {"rate": 4000},
    {"rate": 3000},
)


@register
@dataclass(frozen=True)
class Resample(Perturbation):
    family: ClassVar[str] = "resample"
    LEVELS: ClassVar[tuple] = LEVELS
    rate: int = 8000

    def validate(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, np.integer)) \
                or self.rate < 1000:
            raise ValueError(f"resample: rate must be an integer >= 1000 Hz, got {self.rate!r}")

    def apply(self, wav, sr, rng, context=None):
        n = len(wav)
        if int(self.rate) >= int(sr):
            if context is not None:
                context.report.append(f"resample: input rate {sr} Hz <= {self.rate} Hz, unchanged")
            return np.asarray(wav, dtype=np.float32).copy()
        low = _measure.resample(wav, sr, int(self.rate))
        y = _measure.resample(low, int(self.rate), sr)
        return np.pad(y, (0, max(0, n - y.size)))[:n].astype(np.float32)

    def apply_torch(self, wav, sr, rng, context=None):
        import torch

        from perturbations import _torch

        n = wav.numel()
        if int(self.rate) >= int(sr):
            if context is not None:
                context.report.append(f"resample: input rate {sr} Hz <= {self.rate} Hz, unchanged")
            return wav.clone()
        y = _torch.resample(_torch.resample(wav, sr, int(self.rate)), int(self.rate), sr)
        return torch.nn.functional.pad(y, (0, max(0, n - y.numel())))[:n].float()
