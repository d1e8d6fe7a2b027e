"""Reverberation with measured room impulse responses from a folder the user names.

The folder comes from ``context.resources["rir_dir"]`` (the CLI's ``--rir-dir``, a suite's
resources) or ``BENCH_RIR_DIR``; every wav/flac/ogg under it, recursively, is a candidate
(first channel of multichannel files). Each response's RT60 is measured once per process as T20
(``_measure.rt60_t20``, the contract's definition). Severity k picks, with the rng, among the
responses whose T20 lies in the level's band ``[rt60_min, rt60_max)`` (bands meet at the
geometric means of neighbouring rungs, so each response belongs to one level). When a band is
empty the response nearest to ``rt60`` (in log time) is used and ``context.report`` says so.

Alignment and level as for ``room``: the output starts at the direct path (the absolute peak)
or up to 50 ms later where the input/output cross-correlation peaks; it keeps the input's length
and RMS (scaled down, with a note, only if that would clip).
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations import _measure
from perturbations.base import Perturbation, register

log = logging.getLogger(__name__)

# rt60: nominal T20 (s); the level uses responses with rt60_min <= T20 < rt60_max
LEVELS = (
    {"rt60": 0.2, "rt60_min": 0.0, "rt60_max": 0.28},
    {"rt60": 0.4, "rt60_min": 0.28, "rt60_max": 0.53},
    {"rt60": 0.7, "rt60_min": 0.53, "rt60_max": 0.84},
    {"rt60": 1.0, "rt60_min": 0.84, "rt60_max": 1.22},
    {"rt60": 1.5, "rt60_min": 1.22, "rt60_max": 10.0},
)


def _read_rir(path: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        data, sr = sf.read(path, always_2d=True, dtype="float64")
    except Exception as exc:  # soundfile raises its own error types
        raise ValueError(f"rir: cannot read impulse response {path!r}: {exc}") from exc
    return data[:, 0], int(sr)


@functools.lru_cache(maxsize=8)
def catalog(folder: str) -> tuple[tuple[str, float], ...]:
    """(path, measured T20) of every usable impulse response under ``folder`` (measured once)."""
    entries = []
    for path in _measure.list_audio(folder):
        try:
            h, sr = _read_rir(str(path))
            t20 = _measure.rt60_t20(h, sr)
        except ValueError as exc:
            log.warning("rir: skipping %s: %s", path, exc)
            continue
        entries.append((str(path), t20))
    if not entries:
        raise FileNotFoundError(f"rir: no usable impulse responses (wav/flac/ogg whose decay "
                                f"reaches -25 dB) under {folder!r} (the folder from --rir-dir / "
                                "BENCH_RIR_DIR)")
    log.info("rir: %d impulse responses under %s, T20 %.2f..%.2f s", len(entries), folder,
             min(t for _, t in entries), max(t for _, t in entries))
    return tuple(entries)


@functools.lru_cache(maxsize=64)
def _load_at(path: str, sr: int) -> np.ndarray:
    h, file_sr = _read_rir(path)
    return _measure.resample(h, file_sr, sr)


@register
@dataclass(frozen=True)
class Rir(Perturbation):
    """Convolution with a measured impulse response whose T20 falls in the level's band."""

    family: ClassVar[str] = "rir"
    LEVELS: ClassVar[tuple] = LEVELS
    rt60: float = 0.4
    rt60_min: float = 0.28
    rt60_max: float = 0.53

    def validate(self) -> None:
        if not self.rt60 > 0:
            raise ValueError(f"rir: rt60 must be positive, got {self.rt60}")
        if not 0 <= self.rt60_min < self.rt60_max:
            raise ValueError(f"rir: need 0 <= rt60_min < rt60_max, got rt60_min={self.rt60_min} "
                             f"rt60_max={self.rt60_max}")

    def choose(self, rng: np.random.Generator, context=None) -> tuple[str, float]:
        """The (path, T20) of the response used for this draw."""
        folder = _measure.resource_dir(context, "rir_dir", "BENCH_RIR_DIR", self.family,
                                       "--rir-dir", "a folder of room impulse responses")
        entries = catalog(str(folder.resolve()))
        band = [e for e in entries if self.rt60_min <= e[1] < self.rt60_max]
        if not band:
            nearest = min(entries, key=lambda e: abs(np.log(e[1] / self.rt60)))
            note = (f"rir: no impulse response with T20 in [{self.rt60_min}, {self.rt60_max}) s "
                    f"under {folder}; using the nearest ({nearest[1]:.2f} s)")
            log.debug(note)
            if context is not None:
                context.report.append(note)
            return nearest
        return band[int(rng.integers(len(band)))]

    def apply(self, wav, sr, rng, context=None):
        path, _ = self.choose(rng, context)
        h = _load_at(path, int(sr))
        y = _measure.convolve_aligned(wav, h, search=int(_measure.ALIGN_SEARCH_S * sr))
        return _measure.match_rms(y, wav, context, self.family)

    def apply_torch(self, wav, sr, rng, context=None):
        from perturbations import _torch

        path, _ = self.choose(rng, context)
        y = _torch.convolve_aligned(wav, _torch.tensor(_load_at(path, int(sr)), wav),
                                    search=int(_measure.ALIGN_SEARCH_S * sr))
        return _torch.match_rms(y, wav, context, self.family)
