"""Ogg Vorbis through libvorbis (in libsndfile, via ``soundfile``), at the input's rate.

libsndfile drives Vorbis by quality only, so the level's bitrate is met by closed-loop rate
control over the clip (:func:`perturbations.codecs._base.hit_bitrate`, within 4%): the
quality is searched until the payload, the Vorbis audio packets (Ogg page headers and the
three Vorbis header packets are not counted), matches. Decoded with FFmpeg's Vorbis decoder
through PyAV; the Ogg granule positions trim priming and tail, so the delay is 0 (measured; see
tests/test_codecs.py). At 16 kHz mono libvorbis spans about 25-75 kb/s on speech; a level
outside what the clip allows gets the nearest reachable bitrate, noted in the run's report
(``Context.report``).
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import register
from perturbations.codecs import _pyav
from perturbations.codecs._base import CodecPerturbation, hit_bitrate

log = logging.getLogger(__name__)

LEVELS = (
    {"bitrate": 64000},
    {"bitrate": 48000},
    {"bitrate": 40000},
    {"bitrate": 32000},
    {"bitrate": 28000},
)

DELAY = 0  # samples at the input's rate

# prior of the rate control: ln(bitrate) ~ ln(75 kb/s) - 1.1 x compression level (16 kHz speech)
_PRIOR_TOP, _PRIOR_SLOPE = 75000.0, -1.1


@register
@dataclass(frozen=True)
class Vorbis(CodecPerturbation):
    family: ClassVar[str] = "vorbis"
    LEVELS: ClassVar[tuple] = LEVELS
    DELAY: ClassVar[float] = DELAY
    INTEGER_INPUT: ClassVar[bool] = False

    bitrate: int = 64000

    def validate(self) -> None:
        super().validate()
        if isinstance(self.bitrate, bool) or not isinstance(self.bitrate, (int, np.integer)) \
                or not 8000 <= self.bitrate <= 500000:
            raise ValueError(f"{self.family}: bitrate must be an integer in 8000..500000 b/s, "
                             f"got {self.bitrate!r}")

    def _encode_at(self, x: np.ndarray, rate: int, level: float):
        try:
            import soundfile as sf
        except ImportError as e:  # pragma: no cover - soundfile is a core dependency
            raise ImportError("vorbis needs soundfile (`pip install soundfile`)") from e
        buf = io.BytesIO()
        try:
            with sf.SoundFile(buf, "w", samplerate=rate, channels=1, format="OGG", subtype="VORBIS",
                              compression_level=float(level)) as f:
                f.write(x)
        except (TypeError, sf.LibsndfileError) as e:
            raise RuntimeError(f"vorbis: libsndfile could not encode Ogg Vorbis at {rate} Hz ({e}); "
                               "install a soundfile >= 0.12 wheel (`pip install -U soundfile`)") from e
        return _pyav.decode_bytes(buf.getvalue(), "ogg", family=self.family)

    def _roundtrip(self, x: np.ndarray, rate: int):
        start = float(np.log(_PRIOR_TOP / self.bitrate) / -_PRIOR_SLOPE)
        return hit_bitrate(lambda c: self._encode_at(x, rate, c), float(self.bitrate),
                           len(x) / rate, start=start, lo=0.0, hi=1.0, slope=_PRIOR_SLOPE)
