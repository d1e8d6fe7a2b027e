"""G.726 (ITU-T ADPCM, 8 kHz) at 40, 32, 24 and 16 kb/s (5, 4, 3 and 2 bits per sample).

The harshest level adds a second (tandem) pass at 16 kb/s, the asynchronous tandem condition
of the standard's own tests. Delay: 0 (sample-by-sample ADPCM; measured, see tests/test_codecs.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import register
from perturbations.codecs import _pyav
from perturbations.codecs._base import CodecPerturbation

LEVELS = (
    {"bitrate": 40000, "passes": 1},
    {"bitrate": 32000, "passes": 1},
    {"bitrate": 24000, "passes": 1},
    {"bitrate": 16000, "passes": 1},
    {"bitrate": 16000, "passes": 2},
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
