"""G.722 (ITU-T sub-band ADPCM, 16 kHz) in its 64, 56 and 48 kb/s modes.

The 56 and 48 kb/s modes drop one or two bits of each lower-band code, as the standard does for
its auxiliary data channel: the encoder runs at 64 kb/s and the decoder reads 7 or 6 bits per
code, so the payload counted is 7 or 6 bits per 8. Below 48 kb/s the ladder lowers the level at
which speech enters the codec (``input_level_dbov``, RMS over the clip; the output is scaled
back), where ADPCM's quantisation shows; tandem passes would not do (G.722 is nearly idempotent:
four passes cost less than 1 dB of SNR).
Delay: 22 samples at 16 kHz (the QMF filter banks; measured, see tests/test_codecs.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import register
from perturbations.codecs import _pyav
from perturbations.codecs._base import CodecPerturbation

LEVELS = (
    {"bitrate": 64000, "input_level_dbov": None},
    {"bitrate": 56000, "input_level_dbov": None},
    {"bitrate": 48000, "input_level_dbov": None},
    {"bitrate": 48000, "input_level_dbov": -46.0},
    {"bitrate": 48000, "input_level_dbov": -56.0},
)

DELAY = 22  # samples at 16 kHz

MODES = (48000, 56000, 64000)


@register
@dataclass(frozen=True)
class G722(CodecPerturbation):
    family: ClassVar[str] = "g722"
    LEVELS: ClassVar[tuple] = LEVELS
    DELAY: ClassVar[float] = DELAY
    RATES: ClassVar[tuple[int, ...]] = (16000,)

    bitrate: int = 64000

    def validate(self) -> None:
        super().validate()
        self._check_choice(self.family, "bitrate", self.bitrate, MODES)

    def _roundtrip(self, x: np.ndarray, rate: int):
        bits = self.bitrate // 8000
        payload, decoded, out_rate = _pyav.roundtrip(
            x, rate, "g722", family=self.family, decoder_options={"bits_per_codeword": str(bits)})
        return payload * bits // 8, decoded, out_rate
