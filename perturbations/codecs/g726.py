"""G.726 (ITU-T ADPCM, 8 kHz) at 40, 32, 24 and 16 kb/s (5, 4, 3 and 2 bits per sample).

The harshest level feeds the 16 kb/s codec at a low level (``input_level_dbov`` -56, RMS over
the clip; the output is scaled back), where its adaptive quantiser runs out of resolution;
tandem passes would not do (G.726 re-encodes its own output almost unchanged).
Delay: 0 (sample-by-sample ADPCM; measured, see tests/test_codecs.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import register
from perturbations.codecs import _pyav
from perturbations.codecs._base import CodecPerturbation

LEVELS = (
    {"bitrate": 40000, "input_level_dbov": None},
    {"bitrate": 32000, "input_level_dbov": None},
    {"bitrate": 24000, "input_level_dbov": None},
    {"bitrate": 16000, "input_level_dbov": None},
    {"bitrate": 16000, "input_level_dbov": -56.0},
)

DELAY = 0  # samples at 8 kHz

MODES = (16000, 24000, 32000, 40000)


@register
@dataclass(frozen=True)
class G726(CodecPerturbation):
    family: ClassVar[str] = "g726"
    LEVELS: ClassVar[tuple] = LEVELS
    DELAY: ClassVar[float] = DELAY
    RATES: ClassVar[tuple[int, ...]] = (8000,)

    bitrate: int = 32000

    def validate(self) -> None:
        super().validate()
        self._check_choice(self.family, "bitrate", self.bitrate, MODES)

    def _roundtrip(self, x: np.ndarray, rate: int):
        bits = str(self.bitrate // 8000)
        return _pyav.roundtrip(x, rate, "g726", family=self.family, options={"code_size": bits},
                               decoder_options={"bits_per_coded_sample": bits}, chunk=1600)
