"""G.711 A-law (ITU-T PCM, 8 kHz, 8 bits per sample: always 64 kb/s).

G.711 has one mode, so its ladder lowers the level at which speech enters the codec
(``input_level_dbov``, RMS over the clip; the output is scaled back): A-law's quantisation noise
stays about 38 dB below the signal down to roughly -40 dBov and grows below that, as a quiet
talker or a lossy line would make it. Delay: 0 (measured; see tests/test_codecs.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import register
from perturbations.codecs import _pyav
from perturbations.codecs._base import CodecPerturbation

LEVELS = (
    {"bitrate": 64000, "input_level_dbov": -26.0},
    {"bitrate": 64000, "input_level_dbov": -46.0},
    {"bitrate": 64000, "input_level_dbov": -52.0},
    {"bitrate": 64000, "input_level_dbov": -58.0},
    {"bitrate": 64000, "input_level_dbov": -64.0},
)

DELAY = 0  # samples at 8 kHz


@register
@dataclass(frozen=True)
class G711Alaw(CodecPerturbation):
    family: ClassVar[str] = "g711-alaw"
    LEVELS: ClassVar[tuple] = LEVELS
    DELAY: ClassVar[float] = DELAY
    RATES: ClassVar[tuple[int, ...]] = (8000,)

    bitrate: int = 64000

    def validate(self) -> None:
        super().validate()
        self._check_choice(self.family, "bitrate", self.bitrate, (64000,))

    def _roundtrip(self, x: np.ndarray, rate: int):
        return _pyav.roundtrip(x, rate, "pcm_alaw", family=self.family, chunk=1600)
