"""G.711 (ITU-T PCM, 8 kHz, 8 bits per sample: always 64 kb/s), A-law and µ-law behind their two names.

G.711 has one mode, so its ladder lowers the level at which speech enters the codec
(``input_level_dbov``, RMS over the clip; the output is scaled back): the companders' quantisation noise
stays about 38 dB below the signal down to roughly -40 dBov and grows below that, as a quiet
talker or a lossy line would make it. Delay: 0 (measured; see tests/test_codecs.py). The two laws
share the ladder and the code; only the FFmpeg codec differs.
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


@dataclass(frozen=True)
class G711(CodecPerturbation):
    """G.711 PCM at 8 kHz through FFmpeg's ``CODEC``."""

    LEVELS: ClassVar[tuple] = LEVELS
    DELAY: ClassVar[float] = DELAY
    RATES: ClassVar[tuple[int, ...]] = (8000,)
    CODEC: ClassVar[str] = ""

    bitrate: int = 64000

    def validate(self) -> None:
        super().validate()
        self._check_choice(self.family, "bitrate", self.bitrate, (64000,))

    def _roundtrip(self, x: np.ndarray, rate: int):
        return _pyav.roundtrip(x, rate, self.CODEC, family=self.family, chunk=1600)


@register
@dataclass(frozen=True)
class G711Alaw(G711):
    """G.711 A-law (ITU-T PCM, 8 kHz, 8 bits per sample: always 64 kb/s)."""

    family: ClassVar[str] = "g711-alaw"
    CODEC: ClassVar[str] = "pcm_alaw"


@register
@dataclass(frozen=True)
class G711Mulaw(G711):
    """G.711 µ-law (ITU-T PCM, 8 kHz, 8 bits per sample: always 64 kb/s)."""

    family: ClassVar[str] = "g711-mulaw"
    CODEC: ClassVar[str] = "pcm_mulaw"
