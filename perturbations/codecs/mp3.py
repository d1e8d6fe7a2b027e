"""MP3 (MPEG-1/2/2.5 Layer III) through LAME, constant bitrate.

The codec runs at the input's rate when that rate allows the level's bitrate (16 kHz: MPEG-2,
8-160 kb/s), else at the nearest rate that does. Packets go from encoder to decoder without a
container; FFmpeg's decoder drops LAME's encoder delay itself (the packets carry it as side
data), so the remaining delay is 0 (measured at 16 kHz for every level; see tests/test_codecs.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import register
from perturbations.codecs import _pyav
from perturbations.codecs._base import CodecPerturbation

LEVELS = (
    {"bitrate": 64000},
    {"bitrate": 40000},
    {"bitrate": 24000},
    {"bitrate": 16000},
    {"bitrate": 8000},
)

DELAY = 0  # samples at the codec's rate (FFmpeg's decoder removes LAME's 1105 itself)

#: MPEG version -> (sample rates, allowed constant bitrates in b/s)
_MPEG = (
    ((32000, 44100, 48000), (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)),
    ((16000, 22050, 24000), (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)),
    ((8000, 11025, 12000), (8, 16, 24, 32, 40, 48, 56, 64)),
)
BITRATES = tuple(sorted({k * 1000 for _, rates in _MPEG for k in rates}))


@register
@dataclass(frozen=True)
class Mp3(CodecPerturbation):
    family: ClassVar[str] = "mp3"
    LEVELS: ClassVar[tuple] = LEVELS
    DELAY: ClassVar[float] = DELAY
    INTEGER_INPUT: ClassVar[bool] = False

    bitrate: int = 64000

    def validate(self) -> None:
        super().validate()
        self._check_choice(self.family, "bitrate", self.bitrate, BITRATES)

    def codec_rate(self, sr: int) -> int:
        valid = sorted(r for rates, kbps in _MPEG for r in rates if self.bitrate // 1000 in kbps)
        if sr in valid:
            return int(sr)
        above = [r for r in valid if r > sr]
        return min(above) if above else max(valid)

    def _roundtrip(self, x: np.ndarray, rate: int):
        return _pyav.roundtrip(x, rate, "libmp3lame", family=self.family, bit_rate=self.bitrate,
                               options={"reservoir": "1"}, decoder="mp3float")
