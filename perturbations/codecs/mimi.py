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
from typing import Any, ClassVar

import numpy as np

from foundation.weights import FolderCard
from perturbations.base import register
from perturbations.codecs._neural import CODEC_WEIGHTS, NeuralCodec

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
class Mimi(NeuralCodec):
    """Mimi 24 kHz neural codec round trip with the first ``n_codebooks`` codebooks."""

    family: ClassVar[str] = "mimi"
    LEVELS: ClassVar[tuple] = LEVELS
    WEIGHTS: ClassVar[FolderCard] = WEIGHTS
    MODEL_CLASS: ClassVar[str] = "MimiModel"
    DELAY: ClassVar[int] = 0

    n_codebooks: int = 8
    #: the bitrate those codebooks give (recorded; None: computed for the published model's framing)
    kbps: float | None = None

    @classmethod
    def at(cls, severity: int, **overrides: Any):
        if "n_codebooks" in overrides and "kbps" not in overrides:
            overrides["kbps"] = None  # recomputed from the overridden number of codebooks
        return super().at(severity, **overrides)

    def __post_init__(self):
        if self.kbps is None and isinstance(self.n_codebooks, (int, np.integer)):
            object.__setattr__(self, "kbps", round(float(self.n_codebooks) * KBPS_PER_CODEBOOK, 6))

    def validate(self) -> None:
        super().validate()
        k = self.n_codebooks
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 64:
            raise ValueError(f"mimi: n_codebooks must be an integer in 1..64, got {k!r}")
        if not isinstance(self.kbps, (int, float)) or isinstance(self.kbps, bool) or self.kbps <= 0:
            raise ValueError(f"mimi: kbps must be a positive number, got {self.kbps!r}")

    @staticmethod
    def hop(model) -> int:
        return int(round(model.config.sampling_rate / model.config.frame_rate))

    def check_model(self, model) -> None:
        if self.n_codebooks > model.config.num_quantizers:
            raise ValueError(f"mimi: n_codebooks {self.n_codebooks} exceeds the model's {model.config.num_quantizers}")
        got = self.n_codebooks * float(model.config.frame_rate) * self.bits_per_code(model) / 1000
        if abs(got - float(self.kbps)) > 1e-6 * max(1.0, got):
            raise ValueError(f"mimi: {self.n_codebooks} codebooks of this model are {got:g} kb/s, not the level's "
                             f"kbps {self.kbps:g}; give kbps={got:g} (or leave it out)")

    def _codes(self, model, x):
        enc = model.encode(x, num_quantizers=int(self.n_codebooks))
        return enc.audio_codes, None

    def _decode(self, model, codes, extra):
        return model.decode(codes)[0][:, 0]
