"""Telephony transmission conditions in the manner of ASVspoof 2021 LA (whose evaluation data
went through real VoIP and PSTN links with G.722, Opus, A-law, mu-law and GSM).

Each level is one condition: the channel's band (a zero-phase Butterworth band-pass, so no
delay: 50-7000 Hz for wideband links, 300-3400 Hz for narrowband ones), then a calibrated codec
family of this package. Levels go from wideband to narrowband and then to lower bitrates; they
are distinct conditions rather than an SNR ladder (Opus keeps the spectrum but not the waveform,
so its SNR is below G.711's although it sounds better).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import PERTURBATIONS, Context, register
from perturbations.codecs._base import CodecPerturbation, Encoded

LEVELS = (
    {"codec": "g722", "bitrate": 64000, "low_hz": 50.0, "high_hz": 7000.0},
    {"codec": "opus", "bitrate": 16000, "low_hz": 50.0, "high_hz": 7000.0},
    {"codec": "g711-alaw", "bitrate": 64000, "low_hz": 300.0, "high_hz": 3400.0},
    {"codec": "g711-mulaw", "bitrate": 64000, "low_hz": 300.0, "high_hz": 3400.0},
    {"codec": "gsm", "bitrate": 13000, "low_hz": 300.0, "high_hz": 3400.0},
)

CODECS = ("g722", "opus", "g711-alaw", "g711-mulaw", "gsm", "g726", "amr-nb", "amr-wb")
ORDER = 4  # Butterworth order of the band-pass (applied forwards and backwards)


@register
@dataclass(frozen=True)
class LaTransmission(CodecPerturbation):
    family: ClassVar[str] = "la-transmission"
    LEVELS: ClassVar[tuple] = LEVELS

    codec: str = "g722"
    bitrate: int = 64000
    low_hz: float = 50.0
    high_hz: float = 7000.0

    def _codec(self) -> CodecPerturbation:
        self._check_choice(self.family, "codec", self.codec, CODECS)
        try:
            return PERTURBATIONS.get(self.codec).from_params(
                self.severity, {"bitrate": self.bitrate, "passes": self.passes,
                                "input_level_dbov": self.input_level_dbov})
        except ValueError as e:
            raise ValueError(f"{self.family}: bitrate: {e}") from None

    def validate(self) -> None:
        super().validate()
        self._codec()
        for name in ("low_hz", "high_hz"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 24000:
                raise ValueError(f"{self.family}: {name} must be a frequency in 0..24000 Hz, got {v!r}")
        if self.low_hz >= self.high_hz:
            raise ValueError(f"{self.family}: low_hz ({self.low_hz}) must be below high_hz ({self.high_hz})")

    def _band(self, wav: np.ndarray, sr: int) -> np.ndarray:
        from scipy.signal import butter, sosfiltfilt

        nyq = sr / 2.0
        lo, hi = self.low_hz / nyq, min(self.high_hz / nyq, 0.99)
        x = np.asarray(wav, dtype=np.float64)
        if x.size <= 3 * (2 * ORDER + 1) or lo >= hi:
            return x
        sos = (butter(ORDER, [lo, hi], "bandpass", output="sos") if lo > 0
               else butter(ORDER, hi, "lowpass", output="sos"))
        return sosfiltfilt(sos, x)

    def encode(self, wav: np.ndarray, sr: int, context: Context | None = None) -> Encoded:
        codec = self._codec()
        x = np.asarray(wav)
        if x.ndim == 1 and x.size and np.all(np.isfinite(x)) and isinstance(sr, (int, np.integer)) \
                and sr > 0:
            x = self._band(x, int(sr))
        return codec.encode(x, sr, context)
