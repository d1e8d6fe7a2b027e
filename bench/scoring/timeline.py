"""Score timelines: where in a long recording the detector hears a fake.

A timeline scores sliding windows over a whole clip: windows of ``window`` samples (by default the
detector's input length ``nb_samp``) starting every ``hop`` samples (by default 0.5 s), placed exactly as
the ``full`` input policy places them (:meth:`bench.scoring.windows.Policy.starts`): starts 0, hop, 2*hop,
... while a window fits, plus one window ending at the last sample when the last of them stops short; a clip
shorter than the window is one window, tiled as ``official`` tiles it. So where a timeline window and a
``full:hop=H`` window start at the same sample they are the same input and get the same score.

:class:`StreamWindower` cuts the same windows from audio that arrives in chunks of any size (the service's
``/stream``), holding at most about one window of samples: a stream's windows are the offline timeline's
windows of the same audio, one for one, the end-aligned last window given when the stream ends.

May import: numpy, torch (through the engine); no pandas, nothing else of ``bench``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from bench.scoring.windows import Policy, as_mono, fix_length

DEFAULT_HOP_S = 0.5


def window_samples(detector: Any, window_s: float | None) -> int:
    """The window in samples: ``window_s`` seconds at the detector's rate, or its ``nb_samp`` when None."""
    if window_s is None:
        return int(detector.nb_samp)
    return seconds_to_samples(window_s, int(detector.sample_rate), "--window")


def seconds_to_samples(seconds: float, sr: int, name: str) -> int:
    """A positive, finite number of seconds as whole samples (at least 1), else a ValueError naming ``name``."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or seconds <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {seconds!r}")
    return max(1, int(round(float(seconds) * sr)))


def starts(length: int, window: int, hop: int) -> list[int]:
    """Window starts of a clip of ``length`` samples: the ``full`` policy's with this hop (``[0]`` when short)."""
    return Policy("full", hop=int(hop)).starts(int(length), int(window))


@dataclass(frozen=True)
class Timeline:
    """Window scores of one clip: ``start``/``end`` in samples at ``sample_rate``, ``scores`` one per window."""

    start: np.ndarray
    end: np.ndarray
    scores: np.ndarray
    sample_rate: int

    def __len__(self) -> int:
        return len(self.scores)

    def rows(self) -> list[dict[str, float]]:
        """``[{"start_s", "end_s", "score"}, ...]`` in time order (the CLI's and the stream's fields)."""
        sr = float(self.sample_rate)
        return [{"start_s": int(s) / sr, "end_s": int(e) / sr, "score": float(v)}
                for s, e, v in zip(self.start, self.end, self.scores)]


def cut(wav: np.ndarray, window: int, hop: int) -> tuple[list[int], list[int], list[np.ndarray]]:
    """``(starts, ends, windows)`` of one clip (views where possible); a short clip is one tiled window whose
    end is the clip's last sample."""
    wav = as_mono(wav)
    if len(wav) <= window:
        return [0], [len(wav)], [fix_length(wav, window)]
    st = starts(len(wav), window, hop)
    return st, [s + window for s in st], [wav[s:s + window] for s in st]


def score_timeline(detector: Any, wav: np.ndarray, window: int | None = None, hop: int | None = None,
                   engine: Any = None, batch_size: int = 8, device: Any = None) -> Timeline:
    """Scores every window of ``wav`` (mono float at ``detector.sample_rate``). ``window``/``hop`` in samples
    (defaults: ``nb_samp`` and 0.5 s). ``engine``: a :class:`bench.scoring.engine.Engine` to reuse."""
    from bench.scoring.engine import Engine, InferenceOptions

    sr = int(detector.sample_rate)
    window = int(window or detector.nb_samp)
    hop = int(hop or round(DEFAULT_HOP_S * sr))
    st, en, windows = cut(wav, window, hop)
    if engine is None:
        engine = Engine(detector, InferenceOptions(batch_size=batch_size), device)
    scores = engine.score_windows(windows)
    return Timeline(np.asarray(st, np.int64), np.asarray(en, np.int64), np.asarray(scores, np.float64), sr)


class StreamWindower:
    """Cuts a stream's windows as its samples arrive: :meth:`push` chunks of any size, then :meth:`finish`.

    Each window comes out as ``(start, end, samples)`` (samples: a float32 copy of ``window`` samples). The
    windows, in order, are exactly :func:`cut`'s for the concatenated stream. At most ``window + hop`` samples
    plus the current chunk are held.
    """

    def __init__(self, window: int, hop: int):
        if int(window) < 1 or int(hop) < 1:
            raise ValueError(f"window and hop must be at least one sample, got {window} and {hop}")
        self.window, self.hop = int(window), int(hop)
        self._buf = np.zeros(0, np.float32)
        self._base = 0          # stream index of self._buf[0]
        self.received = 0       # samples pushed so far
        self._next = 0          # start of the next window
        self._last_end = 0      # end of the last window given (0: none yet)
        self.finished = False

    def push(self, samples: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """Adds samples; yields the windows they complete."""
        if self.finished:
            raise RuntimeError("the stream has ended; no more samples can be added")
        x = np.asarray(samples, np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, x]) if len(self._buf) else x.copy()
        self.received += len(x)
        out = []
        while self._next + self.window <= self.received:
            i = self._next - self._base
            out.append((self._next, self._next + self.window, self._buf[i:i + self.window].copy()))
            self._last_end = self._next + self.window
            self._next += self.hop
        # keep what a later window can still need: from the next start, and the last `window` samples for the
        # end-aligned window (or every sample while the stream is shorter than a window, for tiling)
        keep_from = max(self._base, min(self._next, self.received - self.window))
        if keep_from > self._base:
            self._buf = self._buf[keep_from - self._base:]
            self._base = keep_from
        return iter(out)

    def finish(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """Ends the stream; yields the last window(s): the end-aligned one, or the tiled window of a stream
        shorter than a window. Raises ValueError for an empty stream."""
        if self.finished:
            return iter(())
        self.finished = True
        n = self.received
        if n == 0:
            raise ValueError("the stream ended before any audio arrived; there is nothing to score")
        if self._last_end == 0 and n < self.window:
            return iter([(0, n, fix_length(self._buf[:n], self.window).astype(np.float32, copy=True))])
        if self._last_end < n:
            i = n - self.window - self._base
            return iter([(n - self.window, n, self._buf[i:i + self.window].copy())])
        return iter(())
