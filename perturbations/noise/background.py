"""Recorded background noise (MUSAN, ESC-50, DEMAND, ... style folders) at an exact SNR.

The folder comes from ``context.resources["noise_dir"]`` (the CLI's ``--noise-dir``, a suite's
resources) or the environment variable ``BENCH_NOISE_DIR``; every wav/flac/ogg file under it,
recursively, is a candidate. The rng picks the file and the offset; a file shorter than the
clip is looped; multichannel files are averaged to mono and resampled to the clip's rate.
Only the needed stretch of a long file is read.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations import _measure
from perturbations.base import Perturbation, register
from perturbations.noise import _mix

log = logging.getLogger(__name__)

# snr_db: 10·log10(Σx² / Σ(y−x)²) over the whole clip
LEVELS = (
    {"snr_db": 30.0},
    {"snr_db": 20.0},
    {"snr_db": 10.0},
    {"snr_db": 5.0},
    {"snr_db": 0.0},
)

MAX_TRIES = 8  # draws before giving up on a folder whose picks are all silent


@functools.lru_cache(maxsize=16)
def _catalog(folder: str) -> tuple:
    files = tuple(str(p) for p in _measure.list_audio(folder))
    if not files:
        raise FileNotFoundError(f"background-noise: no wav/flac/ogg files under {folder!r} "
                                "(the noise folder from --noise-dir / BENCH_NOISE_DIR)")
    log.info("background-noise: %d noise files under %s", len(files), folder)
    return files


def read_noise(path: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples at ``sr`` from a random offset of ``path`` (looped if the file is short)."""
    import soundfile as sf

    try:
        info = sf.info(path)
    except Exception as exc:  # soundfile raises its own error types
        raise ValueError(f"background-noise: cannot read noise file {path!r}: {exc}") from exc
    # spare samples on both sides keep the resampler's edge transients out of the clip
    spare = 0 if info.samplerate == sr else 64
    need = int(np.ceil(n * info.samplerate / sr)) + 2 * spare
    if info.frames > need:
        start = int(rng.integers(0, info.frames - need + 1))
        data, _ = sf.read(path, start=start, frames=need, always_2d=True, dtype="float64")
        seg = _measure.resample(_measure.to_mono(data), info.samplerate, sr)
        seg = seg[int(spare * sr / info.samplerate):]
        return seg[:n] if seg.size >= n else _mix.fit_length(seg, n, rng)
    data, _ = sf.read(path, always_2d=True, dtype="float64")
    seg = _measure.resample(_measure.to_mono(data), info.samplerate, sr)
    return _mix.fit_length(seg, n, rng)


@register
@dataclass(frozen=True)
class BackgroundNoise(Perturbation):
    family: ClassVar[str] = "background-noise"
    LEVELS: ClassVar[tuple] = LEVELS
    snr_db: float = 20.0

    def validate(self) -> None:
        if not -20.0 <= self.snr_db <= 80.0:
            raise ValueError(f"{self.family}: snr_db must be within -20..80 dB, got {self.snr_db}")

    def apply(self, wav, sr, rng, context=None):
        return _mix.add_at_snr(wav, self.noise(len(wav), sr, rng, context), self.snr_db, context, self.family)

    def apply_torch(self, wav, sr, rng, context=None):
        from perturbations import _torch

        noise = _torch.tensor(self.noise(wav.numel(), sr, rng, context), wav)
        return _torch.add_at_snr(wav, noise, self.snr_db, context, self.family)

    def noise(self, n: int, sr: int, rng, context) -> np.ndarray:
        """A non-silent stretch of ``n`` samples of a noise file drawn from the folder."""
        folder = _measure.resource_dir(context, "noise_dir", "BENCH_NOISE_DIR", self.family,
                                       "--noise-dir", "a noise folder")
        files = _catalog(str(folder.resolve()))
        for _ in range(MAX_TRIES):
            path = files[int(rng.integers(len(files)))]
            noise = read_noise(path, n, sr, rng)
            if np.any(noise):
                return noise
            log.debug("background-noise: silent stretch of %s, drawing again", path)
        raise ValueError(f"background-noise: {MAX_TRIES} draws from {folder} were all silent; "
                         "remove silent files from the noise folder")
