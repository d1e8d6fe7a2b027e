"""Tandem coding: one lossy codec after another (by default MP3, then AAC), as when a compressed
file is re-encoded for upload or streaming.

Each hop is a calibrated, aligned codec family of this package, so the chain stays aligned;
``passes`` repeats the whole chain and ``input_level_dbov`` applies to every hop.
:meth:`Tandem.hops` reports every hop's payload; :meth:`Tandem.encode` reports the last one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import PERTURBATIONS, Context, register
from perturbations.codecs._base import CodecPerturbation, Encoded

LEVELS = (
    {"first": "mp3", "first_bitrate": 64000, "second": "aac", "second_bitrate": 64000},
    {"first": "mp3", "first_bitrate": 40000, "second": "aac", "second_bitrate": 40000},
    {"first": "mp3", "first_bitrate": 24000, "second": "aac", "second_bitrate": 24000},
    {"first": "mp3", "first_bitrate": 16000, "second": "aac", "second_bitrate": 16000},
    {"first": "mp3", "first_bitrate": 8000, "second": "aac", "second_bitrate": 12000},
)


@register
@dataclass(frozen=True)
class Tandem(CodecPerturbation):
    family: ClassVar[str] = "tandem"
    LEVELS: ClassVar[tuple] = LEVELS

    first: str = "mp3"
    first_bitrate: int = 64000
    second: str = "aac"
    second_bitrate: int = 64000

    def _hop(self, which: str) -> CodecPerturbation:
        name, bitrate = ((self.first, self.first_bitrate) if which == "first"
                         else (self.second, self.second_bitrate))
        if name not in PERTURBATIONS:
            raise ValueError(f"{self.family}: {which} names an unknown codec {name!r}")
        cls = PERTURBATIONS.get(name)
        if not (isinstance(cls, type) and issubclass(cls, CodecPerturbation)) or cls is Tandem \
                or "bitrate" not in cls.__dataclass_fields__:
            raise ValueError(f"{self.family}: {which} must name a codec family with a bitrate "
                             f"(e.g. mp3, aac, opus, vorbis), got {name!r}")
        try:
            return cls.from_params(self.severity, {"bitrate": bitrate,
                                                   "input_level_dbov": self.input_level_dbov})
        except ValueError as e:
            raise ValueError(f"{self.family}: {which}_bitrate: {e}") from None

    def validate(self) -> None:
        super().validate()
        self._hop("first")
        self._hop("second")

    def hops(self, wav: np.ndarray, sr: int, context: Context | None = None) -> list[Encoded]:
        """Every hop's encoding, in order (each decoded output feeds the next hop)."""
        out = []
        y = wav
        for _ in range(self.passes):
            for which in ("first", "second"):
                enc = self._hop(which).encode(y, sr, context)
                out.append(enc)
                y = enc.decoded
        return out

    def encode(self, wav: np.ndarray, sr: int, context: Context | None = None) -> Encoded:
        return self.hops(wav, sr, context)[-1]
