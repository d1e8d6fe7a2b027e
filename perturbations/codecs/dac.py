"""DAC (Descript Audio Codec, the 16 kHz model) through ``transformers.DacModel``, by codebooks.

The 16 kHz model codes 50 frames per second (hop 320) with up to 12 residual codebooks of 1024
entries (10 bits), i.e. 0.5 kb/s per codebook and 6 kb/s with all of them. A level keeps the first
``n_codebooks`` (DAC is trained with quantiser dropout, so fewer codebooks is a lower bitrate of the
same model) and records the resulting ``kbps``. See ``_neural.py`` for weights, rates, alignment and
devices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from foundation.weights import FolderCard
from perturbations.base import register
from perturbations.codecs._neural import CODEC_WEIGHTS, CodebookCodec

LEVELS = (
    {"n_codebooks": 12, "kbps": 6.0},
    {"n_codebooks": 8, "kbps": 4.0},
    {"n_codebooks": 4, "kbps": 2.0},
    {"n_codebooks": 2, "kbps": 1.0},
    {"n_codebooks": 1, "kbps": 0.5},
)

#: the 16 kHz model's framing: 16000 / 320 frames per second x 10 bits per codebook
KBPS_PER_CODEBOOK = 16000 / 320 * 10 / 1000

# The revision is the repository's default branch and the digests are not pinned: they could not be
# read from the build machine (no network). A download logs each file's sha256; pin them here.
WEIGHTS = FolderCard(
    name="dac", folder="dac_16khz", repo="descript/dac_16khz", revision="main",
    files=(("config.json", None), ("model.safetensors", None)), licence="MIT",
    description="Descript Audio Codec 16 kHz (Kumar et al. 2023), transformers DacModel")
CODEC_WEIGHTS["dac"] = WEIGHTS


@register
@dataclass(frozen=True)
class Dac(CodebookCodec):
    """Descript Audio Codec 16 kHz round trip with the first ``n_codebooks`` codebooks."""

    family: ClassVar[str] = "dac"
    LEVELS: ClassVar[tuple] = LEVELS
    WEIGHTS: ClassVar[FolderCard] = WEIGHTS
    MODEL_CLASS: ClassVar[str] = "DacModel"
    DELAY: ClassVar[int] = 0

    n_codebooks: int = 12
    #: the bitrate those codebooks give (recorded; None: computed for the 16 kHz model's framing)
    kbps: float | None = None

    KBPS_PER_CODEBOOK: ClassVar[float] = KBPS_PER_CODEBOOK

    @staticmethod
    def model_codebooks(model) -> int:
        return int(model.config.n_codebooks)

    @staticmethod
    def hop(model) -> int:
        return int(model.config.hop_length)

    def _codes(self, model, x):
        enc = model.encode(x, n_quantizers=int(self.n_codebooks))
        return enc.audio_codes[:, :int(self.n_codebooks)], None

    def _decode(self, model, codes, extra):
        return model.decode(audio_codes=codes)[0]
