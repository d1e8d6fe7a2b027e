"""The measured quality of a condition's audio against its clean input: SNR, wide-band PESQ, STOI.

Computed per clip where the audio is made (the preparation workers for perturbations, the scorer for
attacks, whose audio exists only there) and stored next to the scores (store table ``quality``), so a
resumed run does not recompute it; ``results.csv`` carries the medians over a condition's clips.

- ``snr_db``: ``10·log10(Σx² / Σ(y−x)²)`` (INTERFACE.md), ``x`` the clean input and ``y`` the
  degraded audio, both time-aligned (every perturbation keeps length and alignment).
- ``pesq``: ITU-T P.862.2 wide band (the ``pesq`` package), MOS-LQO 1.04..4.64, at 16 kHz.
- ``stoi``: short-time objective intelligibility (``pystoi``, not extended), 0..1, at 16 kHz.

Both signals are brought to 16 kHz with the project's resampler when the run's rate differs.

Cost, measured on this 2-core machine over 8 demo clips (2.9-4.7 s) x 4 conditions (white noise 10 dB,
mp3 8 kb/s, replay 5, room 0.7 s): wide-band PESQ takes 0.12 s per clip (median; up to 0.27 s on badly
degraded audio, its time-alignment search), STOI 0.04 s, both growing with the length. Two bounds keep it below a detector's score (0.3-0.8 s per clip on this CPU): every measure
uses at most the first :data:`MAX_SECONDS` of a clip (the detectors' official input is the first
4.04 s, so that is also what they hear), and ``$BENCH_PESQ_EVERY=N`` (default 1: every clip) computes
PESQ only on the deterministic subset of clips with ``crc32(utt_id) % N == 0`` (the others get NaN,
which the medians skip). A measure that cannot be taken (silence, a clip shorter than PESQ's minimum)
is NaN. The clean condition is not measured (its audio is the reference itself).
"""
from __future__ import annotations

import logging
import math
import os
import zlib

import numpy as np

log = logging.getLogger(__name__)

QUALITY_COLUMNS = ("snr_db", "pesq", "stoi")
RATE = 16000
MAX_SECONDS = 4.0


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


def pesq_every() -> int:
    raw = os.environ.get("BENCH_PESQ_EVERY", "1").strip() or "1"
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"BENCH_PESQ_EVERY must be a positive integer (PESQ on 1 clip in N), got {raw!r}") from None
    if n < 1:
        raise ValueError(f"BENCH_PESQ_EVERY must be a positive integer (PESQ on 1 clip in N), got {raw!r}")
    return n


def measure(clean: np.ndarray, degraded: np.ndarray, sr: int, utt_id: str = "") -> tuple[float, float, float]:
    """``(snr_db, pesq, stoi)`` of ``degraded`` against ``clean`` (same length, aligned); PESQ is NaN for
    clips outside the ``$BENCH_PESQ_EVERY`` subset."""
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
    every = pesq_every()
    with_pesq = every == 1 or zlib.crc32(utt_id.encode("utf-8")) % every == 0
    return snr, (_pesq(x, y) if with_pesq else math.nan), _stoi(x, y)


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
