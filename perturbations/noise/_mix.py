"""Helpers shared by the noise families: exact-SNR mixing, coloured noise, fitting a noise
segment to the clip's length. Randomness only from the ``rng`` passed in."""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

#: below this frequency coloured noise is flat (1/f^beta would otherwise put most of a brown
#: noise's power into inaudible drift at 1/duration Hz)
F_MIN_HZ = 20.0


def noise_gain(x: np.ndarray, noise: np.ndarray, snr_db: float) -> float:
    """The gain g such that ``x + g·noise`` has exactly ``snr_db`` (contract definition)."""
    px = float(np.sum(np.asarray(x, dtype=np.float64) ** 2))
    pn = float(np.sum(np.asarray(noise, dtype=np.float64) ** 2))
    if pn <= 0:
        raise ValueError("the noise is silent: cannot scale it to an SNR")
    return float(np.sqrt(px / (pn * 10.0 ** (snr_db / 10.0))))


def add_at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float, context=None,
               family: str = "") -> np.ndarray:
    """``x + g·noise`` with ``10·log10(Σx²/Σ(g·noise)²) == snr_db``.

    A silent input has no defined SNR: it is returned unchanged (with a note). The sum is not
    clipped (a peak above 1 is noted in ``context.report``), since clipping would change the SNR.
    """
    x64 = np.asarray(x, dtype=np.float64)
    if not np.any(x64):
        _note(context, f"{family}: silent input, no noise added (SNR undefined)")
        return x64.astype(np.float32)
    n64 = np.asarray(noise, dtype=np.float64)
    if n64.shape != x64.shape:
        raise ValueError(f"{family}: noise shape {n64.shape} differs from the input's {x64.shape}")
    g = noise_gain(x64, n64, snr_db)
    # keep the noise exactly as added in float32: y - x (both float32) is then g*noise rounded once
    y = (x64 + g * n64).astype(np.float32)
    peak = float(np.max(np.abs(y)))
    if peak > 1.0:
        _note(context, f"{family}: peak {peak:.2f} above full scale after adding noise (not clipped)")
    return y


def colored_noise(n: int, beta: float, rng: np.random.Generator, sr: int,
                  f_min: float = F_MIN_HZ) -> np.ndarray:
    """Gaussian noise with power spectral density ∝ 1/f^beta (0 white, 1 pink, 2 brown).

    Shaped in the frequency domain over the whole clip, flat below ``f_min`` and without DC;
    unit RMS. Same slopes as audiomentations' ``AddColorNoise`` (−3.01 dB/octave pink,
    −6.02 brown), drawn from ``rng`` instead of the global numpy state.
    """
    if n <= 0:
        return np.zeros(0)
    noise = rng.standard_normal(n)
    if beta != 0:
        f = np.fft.rfftfreq(n, 1.0 / sr)
        shape = np.maximum(f, f_min) ** (-beta / 2.0)
        shape[0] = 0.0
        shaped = np.fft.irfft(np.fft.rfft(noise) * shape, n)
        if np.any(shaped):  # a clip of a sample or two has no band to shape
            noise = shaped
    return noise / float(np.sqrt(np.mean(noise ** 2)))


def fit_length(seg: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A stretch of ``n`` samples from ``seg`` at a random offset, looping ``seg`` if it is short."""
    seg = np.asarray(seg, dtype=np.float64)
    if seg.size == 0:
        raise ValueError("empty noise segment")
    if seg.size >= n:
        start = int(rng.integers(0, seg.size - n + 1))
        return seg[start:start + n]
    start = int(rng.integers(0, seg.size))
    reps = int(np.ceil((n + start) / seg.size))
    return np.tile(seg, reps)[start:start + n]


def _note(context, text: str) -> None:
    log.debug(text)
    if context is not None:
        context.report.append(text)
