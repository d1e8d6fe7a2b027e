"""EnCodec (Meta, the 24 kHz model) through ``transformers.EncodecModel``, by target bandwidth.

The 24 kHz model codes 75 frames per second (hop 320) with residual vector quantisation over
1024-entry codebooks (10 bits), so a bandwidth of B kb/s uses B / 0.75 codebooks: 1.5 kb/s is 2 of
them, 24 kb/s all 32. ASVspoof 5 uses it for its neural-codec conditions (alone, and after MP3: C07,
the ``mp3+encodec`` chain of the ``neural-codec`` suite). The payload of a clip is its codes
(codebooks x frames x 10 bits), so its bitrate is the level's bandwidth up to the frame padding at the
clip's end. See ``_neural.py`` for weights, rates, alignment and devices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from foundation.weights import FolderCard
from perturbations.base import register
from perturbations.codecs._neural import CODEC_WEIGHTS, NeuralCodec

LEVELS = (
    {"bandwidth_kbps": 24.0},
    {"bandwidth_kbps": 12.0},
    {"bandwidth_kbps": 6.0},
    {"bandwidth_kbps": 3.0},
    {"bandwidth_kbps": 1.5},
)

# The revision is the repository's default branch and the digests are not pinned: they could not be
# read from the build machine (no network). A download logs each file's sha256; pin them here.
WEIGHTS = FolderCard(
    name="encodec", folder="encodec_24khz", repo="facebook/encodec_24khz", revision="main",
    files=(("config.json", None), ("model.safetensors", None)), licence="MIT",
    description="EnCodec 24 kHz (Defossez et al. 2022), transformers EncodecModel")
CODEC_WEIGHTS["encodec"] = WEIGHTS


@register
@dataclass(frozen=True)
class Encodec(NeuralCodec):
    """EnCodec 24 kHz neural codec round trip at a target bandwidth (kb/s)."""

    family: ClassVar[str] = "encodec"
    LEVELS: ClassVar[tuple] = LEVELS
    WEIGHTS: ClassVar[FolderCard] = WEIGHTS
    MODEL_CLASS: ClassVar[str] = "EncodecModel"
    DELAY: ClassVar[int] = 0

    bandwidth_kbps: float = 24.0

    def validate(self) -> None:
        super().validate()
        bw = self.bandwidth_kbps
        if isinstance(bw, bool) or not isinstance(bw, (int, float)) or not bw > 0:
            raise ValueError(f"encodec: bandwidth_kbps must be a positive number (kb/s), got {bw!r}")

    def check_model(self, model) -> None:
        allowed = [float(b) for b in model.config.target_bandwidths]
        if float(self.bandwidth_kbps) not in allowed:
            raise ValueError(f"encodec: bandwidth_kbps {self.bandwidth_kbps} is not one of the model's target "
                             f"bandwidths {allowed}")

    def n_codebooks(self, model) -> int:
        return int(model.quantizer.get_num_quantizers_for_bandwidth(float(self.bandwidth_kbps)))

    @staticmethod
    def hop(model) -> int:
        return int(model.config.hop_length)

    def _codes(self, model, x):
        enc = model.encode(x, bandwidth=float(self.bandwidth_kbps))
        # audio_codes: [chunks, B, n_q, frames]
        return enc.audio_codes.transpose(0, 1), (enc.audio_codes, enc.audio_scales)

    def _decode(self, model, codes, extra):
        audio_codes, scales = extra
        return model.decode(audio_codes, scales, None)[0][:, 0]
