"""Measurements that the calibration of perturbations is checked against (INTERFACE.md).

- :func:`snr_db`: ``10·log10(Σx² / Σ(y−x)²)`` over the whole clip, ``x`` the input and ``y`` the
  time-aligned output.
- :func:`rt60_t20`: T20 of an impulse response: Schroeder backward integration from the
  direct-path peak, a least-squares line through the energy decay curve between −5 and −25 dB,
  extrapolated to −60 dB.
- :func:`alignment_lag`: the lag that maximises the cross-correlation of input and output
  (0 = aligned; positive = the output is late).

Also the small signal helpers that several families share (RMS, FFT convolution aligned on the
direct path, level matching).
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

_TINY = 1e-20
#: how far after the direct path reverberation may place its cut (see convolve_aligned)
ALIGN_SEARCH_S = 0.05


def rms(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def snr_db(x: np.ndarray, y: np.ndarray) -> float:
    """SNR of the output ``y`` against the input ``x`` (same length, aligned), in dB."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"snr_db: input {x.shape} and output {y.shape} differ in shape")
    noise = float(np.sum((y - x) ** 2))
    signal = float(np.sum(x * x))
    if noise == 0.0:
        return float("inf")
    return 10.0 * np.log10(max(signal, _TINY) / noise)


def direct_path_index(h: np.ndarray) -> int:
    """Index of the direct path: the absolute peak of the impulse response."""
    return int(np.argmax(np.abs(np.asarray(h))))


def schroeder_edc_db(h: np.ndarray, start: int | None = None) -> np.ndarray:
    """Energy decay curve in dB (0 dB at ``start``, default the direct-path peak)."""
    h = np.asarray(h, dtype=np.float64)
    if start is None:
        start = direct_path_index(h)
    e = h[start:] ** 2
    edc = np.cumsum(e[::-1])[::-1]
    if edc.size == 0 or edc[0] <= 0:
        raise ValueError("schroeder_edc_db: the impulse response has no energy")
    return 10.0 * np.log10(np.maximum(edc / edc[0], _TINY))


def rt60_t20(h: np.ndarray, sr: int, lo_db: float = -5.0, hi_db: float = -25.0) -> float:
    """RT60 of an impulse response as T20 (see the module docstring).

    Raises ValueError when the decay curve does not reach ``hi_db`` (the response is too short
    to measure).
    """
    edc = schroeder_edc_db(h)
    below_lo = np.nonzero(edc <= lo_db)[0]
    below_hi = np.nonzero(edc <= hi_db)[0]
    if below_lo.size == 0 or below_hi.size == 0:
        raise ValueError(f"rt60_t20: the energy decay curve never reaches {hi_db:g} dB "
                         "(impulse response too short or not decaying)")
    i0, i1 = int(below_lo[0]), int(below_hi[0])
    if i1 - i0 < 2:
        # a decay faster than a couple of samples: fall back to the two end points
        i1 = i0 + 2
    t = np.arange(i0, i1 + 1) / float(sr)
    slope, _ = np.polyfit(t, edc[i0:i1 + 1], 1)
    if slope >= 0:
        raise ValueError("rt60_t20: the energy decay curve does not decay")
    return float(-60.0 / slope)


def alignment_lag(x: np.ndarray, y: np.ndarray, max_lag: int | None = None) -> int:
    """Lag (samples) maximising the cross-correlation of ``y`` with ``x``; >0 means ``y`` is late."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.size + y.size - 1
    nfft = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(y, nfft) * np.conj(np.fft.rfft(x, nfft)), nfft)
    # xc[k] = sum_t y[t + k] x[t]; negative lags wrap to the end
    lags = np.concatenate([np.arange(0, y.size), np.arange(-(x.size - 1), 0)])
    vals = np.concatenate([xc[:y.size], xc[nfft - (x.size - 1):]]) if x.size > 1 else xc[:y.size]
    if max_lag is not None:
        keep = np.abs(lags) <= max_lag
        lags, vals = lags[keep], vals[keep]
    return int(lags[int(np.argmax(vals))])


def convolve_aligned(wav: np.ndarray, h: np.ndarray, start: int | None = None,
                     search: int = 0) -> np.ndarray:
    """Convolve with ``h`` (FFT) and cut the input's length out of the result, aligned.

    The cut begins at the direct path (``start``, default ``h``'s absolute peak), or, with
    ``search`` > 0, at the lag within ``start .. start + search`` where the cross-correlation of
    the input with the convolved signal peaks (the contract's alignment). For white input the
    two coincide; for speech, a dense cluster of early reflections a few ms after the direct
    sound can outweigh it, and the cross-correlation then peaks there. Pre-ringing before the
    cut and the tail beyond the clip are dropped.
    """
    from scipy.signal import fftconvolve

    h = np.asarray(h, dtype=np.float64)
    x = np.asarray(wav, dtype=np.float64)
    d = direct_path_index(h) if start is None else int(start)
    y = fftconvolve(x, h, mode="full")
    if search > 0 and x.size and np.any(x):
        seg = y[d:d + x.size + search]
        seg = np.pad(seg, (0, x.size + search - seg.size))
        xc = fftconvolve(seg, x[::-1], mode="valid")  # xc[l] = sum_t seg[t + l] x[t]
        d += int(np.argmax(xc[:search + 1]))
    return y[d:d + x.size]


def match_rms(y: np.ndarray, reference: np.ndarray, context=None, family: str = "") -> np.ndarray:
    """Scale ``y`` to the RMS of ``reference``; if that would clip, scale down to a peak of 0.999
    and note it in ``context.report`` instead of clipping silently."""
    y = np.asarray(y, dtype=np.float64)
    r_in, r_out = rms(reference), rms(y)
    if r_out > 0:
        y = y * (r_in / r_out)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0.999:
        y = y * (0.999 / peak)
        note = f"{family}: output scaled down by {20 * np.log10(peak / 0.999):.1f} dB to avoid clipping"
        log.debug(note)
        if context is not None:
            context.report.append(note)
    return y


# --- user resources (noise and RIR folders) ---------------------------------------------------
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


def resource_dir(context, key: str, env: str, family: str, option: str, what: str):
    """The folder ``context.resources[key]`` or ``$env``; a clear error when neither names one."""
    import os
    from pathlib import Path

    value = (context.resources.get(key) if context is not None else None) or os.environ.get(env)
    if not value:
        raise FileNotFoundError(f"{family} needs {what}: pass {option} or set {env}")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{family}: {what} {str(path)!r} (from {key} / {env}) is not a folder")
    return path


def list_audio(folder) -> list:
    """Audio files (wav, flac, ogg) under ``folder``, recursively, in a stable order."""
    from pathlib import Path

    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def to_mono(data: np.ndarray) -> np.ndarray:
    data = np.asarray(data, dtype=np.float64)
    return data.mean(axis=1) if data.ndim == 2 else data


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Polyphase resampling, aligned (:func:`foundation.audio.resample`, ``polyphase``), float64."""
    from foundation.audio import resample as _resample

    return _resample(x, sr_from, sr_to, method="polyphase")
