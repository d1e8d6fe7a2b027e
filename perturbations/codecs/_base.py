"""The base class of the codec families: resampling, level, tandem passes and delay removal.

A family subclasses :class:`CodecPerturbation`, declares its codec's sample rates (``RATES``)
and measured delay (``DELAY``: samples at the codec's rate, removed after decoding), and
implements :meth:`CodecPerturbation._roundtrip`: one encode/decode of a waveform already at the
codec's rate, returning the payload bytes and the untrimmed decoded waveform.

Two generic knobs are shared by every codec family (and used by the fixed-rate ones for their
severity ladders):

- ``passes``: tandem transcoding, i.e. the round trip repeated (each pass through the codec's
  rate, as in a chain of telephone network hops); the reported payload is the mean per pass;
- ``input_level_dbov``: the level (RMS over the whole clip, dB re. full scale, so a full-scale
  square is 0 dBov) at which the clip enters the codec. The decoded signal is scaled back by the
  inverse gain, as a receiver's gain control would, so only the codec's level-dependent
  distortion (e.g. G.711's quantisation at low levels) remains. ``None`` leaves the level as is.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from math import isfinite
from typing import Callable, ClassVar

import numpy as np

from foundation.audio import resample as _resample
from perturbations.base import Context, Perturbation, ResourceUnavailable

log = logging.getLogger(__name__)


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Zero-delay polyphase resampling, float64 (:func:`foundation.audio.resample`, ``polyphase``)."""
    return _resample(x, sr_from, sr_to, method="polyphase")


def fit_length(y: np.ndarray, start: int, n: int) -> np.ndarray:
    """``y[start:start + n]``, zero-padded where ``y`` does not reach (``start`` may be negative)."""
    if start < 0:
        y = np.concatenate([np.zeros(-start, dtype=y.dtype), y])
        start = 0
    y = y[start:start + n]
    if y.size < n:
        y = np.concatenate([y, np.zeros(n - y.size, dtype=y.dtype)])
    return y


def hit_bitrate(run: Callable[[float], tuple[int, np.ndarray, int]], target: float, duration: float,
                start: float, lo: float, hi: float, slope: float, tol: float = 0.04,
                max_iter: int = 8) -> tuple[int, np.ndarray, int]:
    """Closed-loop rate control for codecs without exact bitrate control (a two-pass encoder).

    ``run(control)`` encodes with one value of the encoder's control (a quality, or a requested
    bitrate) and returns ``(payload_bytes, decoded, rate)``. The control is searched in
    ``[lo, hi]`` until the payload's bitrate is within ``tol`` of ``target``: a first step from
    ``slope`` (the prior d ln(bitrate) / d control), then regula falsi on ln(bitrate / target).
    Returns the closest result seen (deterministic: the same input gives the same steps).
    """
    seen: list[tuple[float, float, tuple[int, np.ndarray, int]]] = []
    c = min(max(start, lo), hi)
    for _ in range(max_iter):
        res = run(c)
        err = float(np.log(max(res[0] * 8.0 / duration, 1e-9) / target))
        seen.append((c, err, res))
        if abs(err) <= np.log1p(tol):
            break
        above = [s for s in seen if s[1] > 0]
        below = [s for s in seen if s[1] < 0]
        if above and below:
            a = min(above, key=lambda s: s[1])
            b = max(below, key=lambda s: s[1])
            nxt = a[0] + (0.0 - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
        elif len(seen) >= 2 and seen[-1][1] != seen[-2][1]:
            (c1, e1, _), (c2, e2, _) = seen[-2], seen[-1]
            nxt = c2 - e2 * (c2 - c1) / (e2 - e1)
        else:
            nxt = c - err / slope
        nxt = min(max(nxt, lo), hi)
        if any(abs(nxt - s[0]) <= 1e-9 * max(1.0, abs(nxt)) for s in seen):
            break  # at a bound already tried, or converged as far as the control resolves
        c = nxt
    return min(seen, key=lambda s: abs(s[1]))[2]


@dataclass(frozen=True)
class Encoded:
    """What one encoding produced: the payload bytes (mean per tandem pass) and the decoded,
    aligned waveform at the input's rate and length."""

    payload_bytes: int
    duration_s: float
    decoded: np.ndarray
    codec_rate: int

    @property
    def bitrate(self) -> float:
        """Payload bits per second of input (INTERFACE.md: payload bytes x 8 / duration)."""
        return self.payload_bytes * 8.0 / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(frozen=True)
class CodecPerturbation(Perturbation):
    """Base of the codec families (not registered itself)."""

    #: sample rates the codec accepts (the input's rate is used when listed)
    RATES: ClassVar[tuple[int, ...]] = ()
    #: the codec's delay, in samples at the codec's rate (measured; see each family's file)
    DELAY: ClassVar[float] = 0.0
    #: whether the encoder takes 16-bit integers (so input beyond full scale saturates)
    INTEGER_INPUT: ClassVar[bool] = True

    passes: int = 1
    input_level_dbov: float | None = None

    # --- what a family provides ------------------------------------------------------------
    def _roundtrip(self, x: np.ndarray, rate: int) -> tuple[int, np.ndarray, int]:
        """Encode and decode ``x`` (float64 at ``rate``): ``(payload_bytes, decoded, decoded_rate)``."""
        raise NotImplementedError

    def codec_rate(self, sr: int) -> int:
        """The rate the codec runs at for input at ``sr``: ``sr`` itself when supported, else the
        lowest supported rate above it, else the highest."""
        if not self.RATES:
            return int(sr)
        if sr in self.RATES:
            return int(sr)
        above = [r for r in self.RATES if r > sr]
        return min(above) if above else max(self.RATES)

    def delay(self, rate: int) -> float:
        """Codec delay in samples at ``rate`` (the codec's rate)."""
        return float(self.DELAY)

    # --- validation ------------------------------------------------------------------------
    def validate(self) -> None:
        if isinstance(self.passes, bool) or not isinstance(self.passes, (int, np.integer)) \
                or not 1 <= self.passes <= 10:
            raise ValueError(f"{self.family}: passes must be an integer in 1..10, got {self.passes!r}")
        lvl = self.input_level_dbov
        if lvl is not None and (not isinstance(lvl, (int, float)) or not isfinite(lvl)
                                or not -100.0 <= lvl <= 0.0):
            raise ValueError(f"{self.family}: input_level_dbov must be None or a number of dB in "
                             f"[-100, 0], got {lvl!r}")

    @staticmethod
    def _check_choice(family: str, name: str, value, allowed) -> None:
        if value not in allowed:
            raise ValueError(f"{family}: {name} must be one of {', '.join(map(str, allowed))}, "
                             f"got {value!r}")

    # --- resources -------------------------------------------------------------------------
    def check_resources(self) -> None:
        """The codec's encoder and decoder are there (PyAV's FFmpeg build, or a system library such as
        AMR-WB's libvo-amrwbenc): one real round trip of a short tone at 16 kHz, before any audio is read,
        so that a family that cannot run is refused up front instead of failing on every clip."""
        t = np.arange(8000) / 16000.0
        try:
            self.encode(0.1 * np.sin(2 * np.pi * 440.0 * t), 16000)
        except ResourceUnavailable as e:   # any other error is a bug and raised as it is
            raise ResourceUnavailable(f"{self.family} cannot run here: {e}") from e

    # --- behaviour -------------------------------------------------------------------------
    def encode(self, wav: np.ndarray, sr: int, context: Context | None = None) -> Encoded:
        """Encode and decode ``wav`` (mono, at ``sr``); the decoded waveform is aligned with the
        input and has its length. Deterministic: codecs draw no randomness."""
        x = np.asarray(wav, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"{self.family}: expected a mono waveform [T], got shape {x.shape}")
        if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
            raise ValueError(f"{self.family}: sample rate must be a positive integer, got {sr!r}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{self.family}: the waveform has NaN or infinite samples")
        sr = int(sr)
        n = x.size
        rate = self.codec_rate(sr)
        if n == 0:
            return Encoded(0, 0.0, np.zeros(0, np.float32), rate)
        gain = 1.0
        if self.input_level_dbov is not None:
            level = float(np.sqrt(np.mean(x * x)))
            if level > 0:
                gain = 10.0 ** (self.input_level_dbov / 20.0) / level
        shift = int(np.floor(self.delay(rate) * sr / rate + 0.5))
        y = x * gain
        payloads = []
        for _ in range(self.passes):
            z = resample(y, sr, rate)
            peak = float(np.max(np.abs(z)))
            if self.INTEGER_INPUT and peak > 1.0 and context is not None:
                context.report.append(f"{self.family}: input peaks {20 * np.log10(peak):.1f} dB above "
                                      "full scale and saturates the codec's 16-bit input")
            payload, decoded, out_rate = self._roundtrip(z, rate)
            payloads.append(payload)
            y = fit_length(resample(decoded, out_rate, sr), shift, n)
        out = y / gain
        enc = Encoded(int(round(float(np.mean(payloads)))), n / sr, out.astype(np.float32), rate)
        nominal = getattr(self, "bitrate", None)
        if isinstance(nominal, (int, np.integer)) and nominal > 0 and abs(enc.bitrate / nominal - 1) > 0.1:
            note = (f"{self.family}: this clip's payload is {enc.bitrate / 1000:.1f} kb/s, not the "
                    f"nominal {nominal / 1000:.1f} kb/s (a variable-rate codec on silence or a very "
                    "short clip)")
            log.debug(note)
            if context is not None:
                context.report.append(note)
        return enc

    def apply(self, wav: np.ndarray, sr: int, rng: np.random.Generator,
              context: Context | None = None) -> np.ndarray:
        return self.encode(wav, sr, context).decoded
