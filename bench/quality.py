"""The measured quality of a condition's audio against its clean input: SNR, wide-band PESQ, STOI.

Computed per clip where the audio is made (the preparation workers for perturbations, the scorer for
attacks, whose audio exists only there) and stored next to the scores (store table ``quality``), so a
resumed run does not recompute it; ``results.csv`` carries the medians over a condition's clips.

- ``snr_db``: ``10·log10(Σx² / Σ(y−x)²)`` (INTERFACE.md), ``x`` the clean input and ``y`` the
  degraded audio, both time-aligned (every perturbation keeps length and alignment).
- ``pesq``: ITU-T P.862.2 wide band (the ``pesq`` package), MOS-LQO 1.04..4.64, at 16 kHz.
- ``stoi``: short-time objective intelligibility (``pystoi``, not extended), 0..1, at 16 kHz.

Both signals are brought to 16 kHz with the project's resampler when the run's rate differs. The
cost is bounded by measuring at most the first :data:`MAX_SECONDS` of a clip: measured here on a
3.5 s clip, PESQ took 40 ms and STOI 20 ms (a detector's score 300-800 ms on this CPU), and both grow
linearly with the length. A measure that cannot be taken (silence, a clip shorter than PESQ's
minimum) is NaN, and a median ignores NaNs. The clean condition is not measured (its audio is the
reference itself).
"""
from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger(__name__)

QUALITY_COLUMNS = ("snr_db", "pesq", "stoi")
RATE = 16000
MAX_SECONDS = 10.0


def snr_db(x: np.ndarray, y: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    noise = float(np.sum((y - x) ** 2))
    signal = float(np.sum(x * x))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def measure(clean: np.ndarray, degraded: np.ndarray, sr: int) -> tuple[float, float, float]:
    """``(snr_db, pesq, stoi)`` of ``degraded`` against ``clean`` (same length, aligned)."""
    x = np.asarray(clean, np.float64)
    y = np.asarray(degraded, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"quality: clean {x.shape} and degraded {y.shape} must be 1-D of one length")
    n = int(MAX_SECONDS * sr)
    x, y = x[:n], y[:n]
    snr = snr_db(x, y)
    if sr != RATE:
        from foundation.audio import resample

        x = resample(x, sr, RATE).astype(np.float64)
        y = resample(y, sr, RATE).astype(np.float64)
    return snr, _pesq(x, y), _stoi(x, y)


def _pesq(x: np.ndarray, y: np.ndarray) -> float:
    try:
        from pesq import pesq
    except ImportError as e:
        raise ImportError("the quality columns need the pesq package: pip install pesq") from e
    try:
        return float(pesq(RATE, x, y, "wb"))
    except Exception as e:  # noqa: BLE001 - pesq raises its own errors for silence and short clips
        log.debug("pesq not measurable: %s", e)
        return math.nan


def _stoi(x: np.ndarray, y: np.ndarray) -> float:
    try:
        from pystoi import stoi
    except ImportError as e:
        raise ImportError("the quality columns need pystoi: pip install pystoi") from e
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            v = float(stoi(x, y, RATE, extended=False))
        except Exception as e:  # noqa: BLE001 - pystoi fails on degenerate input
            log.debug("stoi not measurable: %s", e)
            return math.nan
    if caught:   # pystoi warns (and returns 1e-5) when fewer than 30 frames are not silent
        log.debug("stoi not measurable: %s", caught[0].message)
        return math.nan
    return v


def medians(rows) -> dict[str, float]:
    """Medians of (snr_db, pesq, stoi) rows, NaNs ignored (NaN where none is finite or a NaN-free inf)."""
    arr = np.asarray(list(rows), dtype=np.float64).reshape(-1, len(QUALITY_COLUMNS))
    out = {}
    for j, name in enumerate(QUALITY_COLUMNS):
        col = arr[:, j]
        col = col[~np.isnan(col)]
        out[name] = float(np.median(col)) if col.size else math.nan
    return out
