"""AMR-NB (3GPP adaptive multi-rate narrowband) through opencore-amr, at 8 kHz.

The payload counts the speech bits of each frame (rounded up to whole bytes), not the one-byte
table of contents that AMR's storage format puts in front of each frame. Delay: 39.6 samples at
8 kHz (79 at 16 kHz), the same for every mode, measured in the 300-3400 Hz band: the encoder's
80 Hz high-pass leads the phase below that, which moves the full-band cross-correlation peak
2-4 samples (at 16 kHz) earlier on most speech (see tests/test_codecs.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import register
from perturbations.codecs import _pyav
from perturbations.codecs._base import CodecPerturbation

LEVELS = (
    {"bitrate": 12200},
    {"bitrate": 10200},
    {"bitrate": 7950},
    {"bitrate": 5900},
    {"bitrate": 4750},
)

DELAY = 39.6  # samples at 8 kHz (in the 300-3400 Hz band; speech moves it by about +-0.3)

MODES = (4750, 5150, 5900, 6700, 7400, 7950, 10200, 12200)


@register
@dataclass(frozen=True)
class AmrNb(CodecPerturbation):
    family: ClassVar[str] = "amr-nb"
    LEVELS: ClassVar[tuple] = LEVELS
    DELAY: ClassVar[float] = DELAY
    RATES: ClassVar[tuple[int, ...]] = (8000,)

    bitrate: int = 12200

    def validate(self) -> None:
        super().validate()
        self._check_choice(self.family, "bitrate", self.bitrate, MODES)

    def _roundtrip(self, x: np.ndarray, rate: int):
        return _pyav.roundtrip(x, rate, "libopencore_amrnb", family=self.family,
                               bit_rate=self.bitrate, options={"dtx": "0"}, decoder="amrnb",
                               header_bytes=1)
