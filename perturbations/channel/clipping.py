"""Hard clipping at a fraction of the clip's peak (an overdriven input stage).

``threshold`` is relative to the input's absolute peak: samples beyond ``±threshold·peak`` are
cut to it. No make-up gain, so the output stays aligned and nothing else changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import Perturbation, register

# threshold: clip level as a fraction of the input's peak
LEVELS = (
    {"threshold": 0.5},
    {"threshold": 0.3},
    {"threshold": 0.2},
    {"threshold": 0.1},
    {"threshold": 0.05},
)


@register
@dataclass(frozen=True)
class Clipping(Perturbation):
    family: ClassVar[str] = "clipping"
    LEVELS: ClassVar[tuple] = LEVELS
    threshold: float = 0.3

    def validate(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"clipping: threshold must be within (0, 1] (a fraction of the peak), "
                             f"got {self.threshold}")

    def apply(self, wav, sr, rng, context=None):
        x = np.asarray(wav, dtype=np.float32)
        limit = np.float32(self.threshold) * np.max(np.abs(x)) if x.size else np.float32(0)
        return np.clip(x, -limit, limit)

    def apply_torch(self, wav, sr, rng, context=None):
        import torch

        x = wav.float()
        if not x.numel():
            return x
        limit = float(np.float32(self.threshold) * np.float32(x.abs().max().item()))
        return torch.clamp(x, -limit, limit)
