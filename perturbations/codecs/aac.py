"""AAC-LC through FFmpeg's native encoder, at the input's rate, average bitrate.

FFmpeg's encoder overshoots its requested bitrate by up to 12% on short speech clips (its
priming frame counts too), so the request is corrected by closed-loop rate control over the
clip (:func:`perturbations.codecs._base.hit_bitrate`) until the payload is within 4% of the
level's bitrate.

Packets go from encoder to decoder without a container, so the decoder also outputs the
encoder's priming frame: the delay is one frame, 1024 samples at the codec's rate (measured for
every level; see tests/test_codecs.py), which is removed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import register
from perturbations.codecs import _pyav
from perturbations.codecs._base import CodecPerturbation, hit_bitrate

LEVELS = (
    {"bitrate": 64000},
    {"bitrate": 40000},
    {"bitrate": 24000},
    {"bitrate": 16000},
    {"bitrate": 12000},
)

DELAY = 1024  # samples at the codec's rate: the encoder's priming frame

RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


@register
@dataclass(frozen=True)
class Aac(CodecPerturbation):
    family: ClassVar[str] = "aac"
    LEVELS: ClassVar[tuple] = LEVELS
    DELAY: ClassVar[float] = DELAY
    RATES: ClassVar[tuple[int, ...]] = RATES
    INTEGER_INPUT: ClassVar[bool] = False

    bitrate: int = 64000

    def validate(self) -> None:
        super().validate()
        if isinstance(self.bitrate, bool) or not isinstance(self.bitrate, (int, np.integer)) \
                or not 8000 <= self.bitrate <= 288000:
            raise ValueError(f"{self.family}: bitrate must be an integer in 8000..288000 b/s, "
                             f"got {self.bitrate!r}")

    def codec_rate(self, sr: int) -> int:
        # AAC-LC carries at most 6144 bits per channel per 1024-sample frame (6 bits per sample)
        able = [r for r in RATES if 6 * r >= self.bitrate]
        if sr in able:
            return int(sr)
        above = [r for r in able if r > sr]
        return min(above) if above else max(RATES)

    def _roundtrip(self, x: np.ndarray, rate: int):
        cap = 6 * rate

        def run(log_request: float):
            return _pyav.roundtrip(x, rate, "aac", family=self.family,
                                   bit_rate=int(round(np.exp(log_request))))

        nominal = float(np.log(self.bitrate))
        return hit_bitrate(run, float(self.bitrate), len(x) / rate, start=nominal,
                           lo=nominal + np.log(0.5), hi=min(nominal + np.log(1.5), np.log(cap)),
                           slope=1.0, max_iter=4)
