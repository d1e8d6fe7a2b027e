"""Tempo change without pitch change (phase vocoder, ``librosa.effects.time_stretch``).

``rate`` < 1 slows speech down (the ladder only slows down). The output keeps the input's
length: the stretched signal is cut at the input's length (its end is lost), or, for a rate
above 1, padded with zeros. Slowing down means no artificial silence is appended, which
matters because trailing silence is a known shortcut cue in ASVspoof data.

Alignment: time-stretch is anchored at the start (output time t holds input time t·rate), so
it is *not* aligned in the contract's sense and is exempt from the alignment check; apart
from the tempo it adds no delay.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import Perturbation, register

# rate: tempo factor (output duration = input duration / rate, then cut to the input's length)
LEVELS = (
    {"rate": 0.95},
    {"rate": 0.9},
    {"rate": 0.85},
    {"rate": 0.8},
    {"rate": 0.7},
)


def stft_size(sr: int) -> int:
    """Phase-vocoder window: the power of two nearest 32 ms (512 at 16 kHz), a speech-sized
    window (librosa's default 2048 smears speech by up to ~10 ms)."""
    return int(2 ** round(np.log2(0.032 * sr)))


@register
@dataclass(frozen=True)
class TimeStretch(Perturbation):
    family: ClassVar[str] = "time-stretch"
    LEVELS: ClassVar[tuple] = LEVELS
    rate: float = 0.9

    def validate(self) -> None:
        if not 0.25 <= self.rate <= 4.0:
            raise ValueError(f"time-stretch: rate must be within 0.25..4, got {self.rate}")

    def apply(self, wav, sr, rng, context=None):
        try:
            import librosa
        except ImportError as exc:  # pragma: no cover - librosa comes with audiomentations
            raise ImportError("time-stretch needs librosa: pip install librosa") from exc
        n = len(wav)
        if self.rate == 1.0 or n == 0:
            return np.asarray(wav, dtype=np.float32).copy()
        n_fft = stft_size(sr)
        y = librosa.effects.time_stretch(np.asarray(wav, dtype=np.float32), rate=float(self.rate),
                                         n_fft=n_fft, hop_length=n_fft // 4)
        if y.size < n and context is not None:
            context.report.append(f"time-stretch: padded {n - y.size} samples of silence at the end")
        return np.pad(y, (0, max(0, n - y.size)))[:n]
