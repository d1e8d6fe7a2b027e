"""Opus through libopus, constant bitrate, 20 ms frames.

The encoder takes 8, 12, 16, 24 or 48 kHz (the input's rate when listed, else the next rate
above); the decoder always outputs 48 kHz, which is resampled back. The decoder removes the
stream's pre-skip itself; the 1-4 samples (at 48 kHz) that remain depend on the audio bandwidth
that the packets signal, and are removed from a measured table (``RESIDUAL_DELAY_48K``; see
tests/test_codecs.py, which re-measures the alignment for every level).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import register
from perturbations.codecs import _pyav
from perturbations.codecs._base import CodecPerturbation

LEVELS = (
    {"bitrate": 32000},
    {"bitrate": 20000},
    {"bitrate": 12000},
    {"bitrate": 8000},
    {"bitrate": 6000},
)

DELAY = 0  # samples at the codec's rate (the decoder drops the pre-skip), but see below

# What remains after the pre-skip depends on the audio bandwidth the encoder chose (SILK's
# internal rate): samples of the 48 kHz decoder output, measured on speech at 8-48 kHz input.
# Narrowband is about 65 us late, every wider bandwidth about 42 us early.
RESIDUAL_DELAY_48K = {"nb": 3, "wider": -2}

RATES = (8000, 12000, 16000, 24000, 48000)
APPLICATIONS = ("voip", "audio", "lowdelay")


@register
@dataclass(frozen=True)
class Opus(CodecPerturbation):
    family: ClassVar[str] = "opus"
    LEVELS: ClassVar[tuple] = LEVELS
    DELAY: ClassVar[float] = DELAY
    RATES: ClassVar[tuple[int, ...]] = RATES
    INTEGER_INPUT: ClassVar[bool] = False

    bitrate: int = 32000
    application: str = "voip"

    def validate(self) -> None:
        super().validate()
        if isinstance(self.bitrate, bool) or not isinstance(self.bitrate, (int, np.integer)) \
                or not 6000 <= self.bitrate <= 510000:
            raise ValueError(f"{self.family}: bitrate must be an integer in 6000..510000 b/s, "
                             f"got {self.bitrate!r}")
        self._check_choice(self.family, "application", self.application, APPLICATIONS)

    def _roundtrip(self, x: np.ndarray, rate: int):
        configs: list[int] = []
        payload, decoded, out_rate = _pyav.roundtrip(
            x, rate, "libopus", family=self.family, bit_rate=self.bitrate,
            options={"vbr": "off", "application": self.application, "frame_duration": "20"},
            decoder="opus", packet_hook=lambda b: configs.append(b[0] >> 3) if b else None)
        # TOC configurations 0-3 (SILK) and 16-19 (CELT) are narrowband (RFC 6716, 3.1)
        narrow = sum(1 for c in configs if c < 4 or 16 <= c < 20)
        residual = RESIDUAL_DELAY_48K["nb" if narrow * 2 > len(configs) else "wider"]
        residual = int(round(residual * out_rate / 48000))
        if residual > 0:
            decoded = decoded[residual:]
        elif residual < 0:
            decoded = np.concatenate([np.zeros(-residual), decoded])
        return payload, decoded, out_rate
