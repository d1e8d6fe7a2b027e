"""A telephone channel: band-limited to the voice band at an 8 kHz rate, optionally μ-law
companded (G.711-like), then back to the input's rate.

Steps: resample to ``rate`` (polyphase, delay-compensated), zero-phase Butterworth band-pass
``low_hz``..``high_hz`` (``sosfiltfilt``), μ-law companding with ``mulaw_bits`` bits
(0 = none; 8 = G.711), resample back, and the same zero-phase band-pass again (the receive
filter, which also removes quantization noise outside the band). Every step is zero-phase or
delay-compensated, so the output stays aligned with the input.

It has a device path (``apply_torch``, ``--prepare-on device``): the same steps in torch, float64, with
scipy's polyphase filter applied by FFT (``_torch.resample``) and the zero-phase band-pass as two FFT
convolutions with the filter's (truncated) impulse response (``_torch.sosfiltfilt``), matching the numpy
path to rounding. One exception: μ-law here is mid-rise (no zero level), so in digital silence (exact zeros
in the input, e.g. zero padding) each sample becomes ± half a step by the sign of ~1e-17 rounding residue,
which the two paths do not share; there they differ by up to a few 1e-4 (an idle pattern near -70 dBFS).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations import _measure
from perturbations.base import Perturbation, register

LEVELS = (
    {"low_hz": 300.0, "high_hz": 3400.0, "rate": 8000, "mulaw_bits": 0},
    {"low_hz": 300.0, "high_hz": 3400.0, "rate": 8000, "mulaw_bits": 8},
    {"low_hz": 400.0, "high_hz": 3000.0, "rate": 8000, "mulaw_bits": 8},
    {"low_hz": 500.0, "high_hz": 2700.0, "rate": 8000, "mulaw_bits": 7},
    {"low_hz": 600.0, "high_hz": 2400.0, "rate": 8000, "mulaw_bits": 6},
)

FILTER_ORDER = 4  # per pass; sosfiltfilt doubles the slope
MU = 255.0


def mulaw(x: np.ndarray, bits: int) -> np.ndarray:
    """μ-law compress, quantize to ``bits`` bits (mid-rise, as G.711), expand; full scale 1."""
    x = np.clip(x, -1.0, 1.0)
    c = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    half = 2 ** (bits - 1)
    q = (np.floor(c * half) + 0.5) / half
    q = np.clip(q, -1.0, 1.0)
    return np.sign(q) * np.expm1(np.abs(q) * np.log1p(MU)) / MU


def mulaw_torch(x, bits: int):
    """:func:`mulaw` on a tensor (float64, the same formula and rounding)."""
    import torch

    x = torch.clamp(x.double(), -1.0, 1.0)
    log_mu = float(np.log1p(MU))
    c = torch.sign(x) * torch.log1p(MU * torch.abs(x)) / log_mu
    half = 2 ** (bits - 1)
    q = torch.clamp((torch.floor(c * half) + 0.5) / half, -1.0, 1.0)
    return torch.sign(q) * torch.expm1(torch.abs(q) * log_mu) / MU


@register
@dataclass(frozen=True)
class Telephone(Perturbation):
    family: ClassVar[str] = "telephone"
    LEVELS: ClassVar[tuple] = LEVELS
    low_hz: float = 300.0
    high_hz: float = 3400.0
    rate: int = 8000
    mulaw_bits: int = 0

    def validate(self) -> None:
        if not isinstance(self.rate, (int, np.integer)) or self.rate < 2000:
            raise ValueError(f"telephone: rate must be an integer >= 2000 Hz, got {self.rate!r}")
        if not 0 < self.low_hz < self.high_hz < self.rate / 2:
            raise ValueError(f"telephone: need 0 < low_hz < high_hz < rate/2, got low_hz={self.low_hz} "
                             f"high_hz={self.high_hz} rate={self.rate}")
        if self.mulaw_bits != 0 and not 2 <= int(self.mulaw_bits) <= 16:
            raise ValueError(f"telephone: mulaw_bits must be 0 (off) or 2..16, got {self.mulaw_bits}")

    def _sos(self, sr: int) -> np.ndarray:
        from scipy.signal import butter

        high = min(self.high_hz, 0.45 * sr)
        return butter(FILTER_ORDER, [self.low_hz, high], btype="bandpass", fs=sr, output="sos")

    def _bandpass(self, x: np.ndarray, sr: int) -> np.ndarray:
        from scipy.signal import sosfiltfilt

        return sosfiltfilt(self._sos(sr), x)

    def apply(self, wav, sr, rng, context=None):
        n = len(wav)
        rate = min(int(self.rate), int(sr))
        y = _measure.resample(wav, sr, rate)
        y = self._bandpass(y, rate)
        if self.mulaw_bits:
            y = mulaw(y, int(self.mulaw_bits))
        y = _measure.resample(y, rate, sr)
        y = np.pad(y, (0, max(0, n - y.size)))[:n]
        return self._bandpass(y, sr)

    def apply_torch(self, wav, sr, rng, context=None):
        import torch

        from perturbations import _torch

        n = wav.numel()
        rate = min(int(self.rate), int(sr))
        y = _torch.resample(wav, sr, rate)
        y = _torch.sosfiltfilt(y, self._sos(rate))
        if self.mulaw_bits:
            y = mulaw_torch(y, int(self.mulaw_bits))
        y = _torch.resample(y, rate, sr)
        y = torch.nn.functional.pad(y, (0, max(0, n - y.numel())))[:n]
        return _torch.sosfiltfilt(y, self._sos(sr)).float()
