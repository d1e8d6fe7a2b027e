"""GSM 06.10 full rate (RPE-LTP, 8 kHz, 13 kb/s) through libsndfile (``soundfile``).

GSM-FR has one mode, so its ladder adds tandem passes (transcoding hops, as in a mobile-to-mobile
call through the fixed network), each through 8 kHz and back. The payload is the WAV ``data``
chunk (Microsoft's GSM framing: 65 bytes per 320 samples, i.e. 13 kb/s), counted per pass.
Delay: 0 (measured; see tests/test_codecs.py).
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import register
from perturbations.codecs._base import CodecPerturbation

LEVELS = (
    {"bitrate": 13000, "passes": 1},
    {"bitrate": 13000, "passes": 2},
    {"bitrate": 13000, "passes": 3},
    {"bitrate": 13000, "passes": 4},
    {"bitrate": 13000, "passes": 5},
)

DELAY = 0  # samples at 8 kHz


def _data_chunk_size(wav_bytes: bytes) -> int:
    """Size of the ``data`` chunk of a RIFF/WAVE file."""
    pos = 12
    while pos + 8 <= len(wav_bytes):
        tag, size = struct.unpack_from("<4sI", wav_bytes, pos)
        if tag == b"data":
            return min(size, len(wav_bytes) - pos - 8)
        pos += 8 + size + (size & 1)
    raise RuntimeError("gsm: libsndfile wrote a WAV file without a data chunk")


@register
@dataclass(frozen=True)
class Gsm(CodecPerturbation):
    family: ClassVar[str] = "gsm"
    LEVELS: ClassVar[tuple] = LEVELS
    DELAY: ClassVar[float] = DELAY
    RATES: ClassVar[tuple[int, ...]] = (8000,)

    bitrate: int = 13000

    def validate(self) -> None:
        super().validate()
        self._check_choice(self.family, "bitrate", self.bitrate, (13000,))

    def _roundtrip(self, x: np.ndarray, rate: int):
        try:
            import soundfile as sf
        except ImportError as e:  # pragma: no cover - soundfile is a core dependency
            raise ImportError("gsm needs soundfile (`pip install soundfile`)") from e
        if "GSM610" not in sf.available_subtypes("WAV"):
            raise RuntimeError("gsm: this libsndfile has no GSM 6.10 support; install a soundfile "
                               "wheel (`pip install -U soundfile`) or a libsndfile built with GSM")
        pcm = np.round(np.clip(x, -1.0, 32767 / 32768) * 32768.0).astype(np.int16)
        buf = io.BytesIO()
        sf.write(buf, pcm, rate, format="WAV", subtype="GSM610")
        data = buf.getvalue()
        decoded, _ = sf.read(io.BytesIO(data), dtype="float64")
        return _data_chunk_size(data), decoded, rate
