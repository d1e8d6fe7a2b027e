"""Mimi (Kyutai, the codec of Moshi) through ``transformers.MimiModel``, by number of codebooks.

Mimi codes 24 kHz audio at 12.5 frames per second (hop 1920) with a split residual quantiser of up to
32 codebooks of 2048 entries (11 bits; the first codebook is distilled from a self-supervised speech
model), i.e. 137.5 b/s per codebook: 32 codebooks are 4.4 kb/s, Moshi's 8 are 1.1 kb/s. A level keeps
the first ``n_codebooks`` and records the resulting ``kbps``. Its convolutions are causal and its
transformers attend to the past only, so its delay is 0 by construction. See ``_neural.py`` for
weights, rates, alignment and devices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from foundation.weights import FolderCard
from perturbations.base import register
from perturbations.codecs._neural import CODEC_WEIGHTS, CodebookCodec

LEVELS = (
    {"n_codebooks": 32, "kbps": 4.4},
    {"n_codebooks": 16, "kbps": 2.2},
    {"n_codebooks": 8, "kbps": 1.1},
    {"n_codebooks": 4, "kbps": 0.55},
    {"n_codebooks": 2, "kbps": 0.275},
)

#: the published model's framing: 12.5 frames per second x 11 bits per codebook
KBPS_PER_CODEBOOK = 12.5 * 11 / 1000

# The revision is the repository's default branch and the digests are not pinned: they could not be
# read from the build machine (no network). A download logs each file's sha256; pin them here.
WEIGHTS = FolderCard(
    name="mimi", folder="mimi", repo="kyutai/mimi", revision="main",
    files=(("config.json", None), ("model.safetensors", None)), licence="CC-BY-4.0",
    description="Mimi (Defossez et al. 2024, Moshi), transformers MimiModel")
CODEC_WEIGHTS["mimi"] = WEIGHTS


@register
@dataclass(frozen=True)
class Mimi(CodebookCodec):
    """Mimi 24 kHz neural codec round trip with the first ``n_codebooks`` codebooks."""

    family: ClassVar[str] = "mimi"
    LEVELS: ClassVar[tuple] = LEVELS
    WEIGHTS: ClassVar[FolderCard] = WEIGHTS
    MODEL_CLASS: ClassVar[str] = "MimiModel"
    DELAY: ClassVar[int] = 0

    n_codebooks: int = 8
    #: the bitrate those codebooks give (recorded; None: computed for the published model's framing)
    kbps: float | None = None

    KBPS_PER_CODEBOOK: ClassVar[float] = KBPS_PER_CODEBOOK

    @staticmethod
    def hop(model) -> int:
        return int(round(model.config.sampling_rate / model.config.frame_rate))

    @staticmethod
    def model_codebooks(model) -> int:
        return int(model.config.num_quantizers)

    @classmethod
    def frames_per_second(cls, model) -> float:
        return float(model.config.frame_rate)

    def _codes(self, model, x):
        enc = model.encode(x, num_quantizers=int(self.n_codebooks))
        return enc.audio_codes, None

    def _decode(self, model, codes, extra):
        return model.decode(codes)[0][:, 0]
