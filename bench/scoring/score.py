"""Scoring clips, in one direction: a clip becomes windows (:mod:`bench.scoring.windows`, the input policy),
windows of one length become batches that the engine scores on the device (:class:`bench.scoring.engine.Engine`),
and each clip's window scores become its one score (the policy's aggregation). The rest of the harness enters
the scoring part here: :func:`score_batch` (a run's scorer, the service), :func:`score_clips` (``bench score``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from bench.scoring.engine import Engine, InferenceOptions
from bench.scoring.windows import Policy

if TYPE_CHECKING:
    from models.base import Detector


def score_batch(detector: "Detector", wavs: Sequence[np.ndarray], policy: "str | Policy" = "official",
                batch_size: "int | str" = 16, device: Any = None, engine: Any = None) -> np.ndarray:
    """Scores utterances of any lengths: policy -> windows -> batches of ``batch_size`` windows ->
    ``detector.score`` -> one aggregated score per utterance (float64 array, in input order).

    ``wavs`` are mono float arrays at ``detector.sample_rate``. ``device`` defaults to the device of
    the detector's parameters. Windows of several utterances (of one length) share a batch; results do
    not depend on ``batch_size`` beyond floating-point noise. ``batch_size`` may be ``auto``; an
    ``engine`` (:class:`bench.scoring.engine.Engine`, kept across calls by a run) brings its own batch size,
    precision and compilation instead.
    """
    policy = Policy.parse(policy)
    owners, windows = policy.cut(wavs, policy.window_for(detector))           # 1. clips -> windows
    if engine is None:
        engine = Engine(detector, InferenceOptions(batch_size=batch_size), device)
    values = engine.score_windows(windows)  # 2. windows -> batches -> scores
    return _aggregate(policy, owners, values, len(wavs))                      # 3. window scores -> clip scores


def score_clips(detector: "Detector", wavs: Sequence[np.ndarray], policy: "str | Policy", *,
                batch_size: "int | str" = "auto", precision: str = "fp32", compile: str = "off",
                device: Any = None, name: str | None = None) -> tuple[np.ndarray, Policy]:
    """``bench score``'s path: the clips scored under ``policy`` by a new engine with these options.
    Returns the scores (one per clip, in order) and the policy they were scored under."""
    pol = Policy.parse(policy)
    owners, windows = pol.cut(wavs, pol.window_for(detector))
    if not windows:
        return np.zeros(0), pol
    engine = Engine(detector, InferenceOptions(batch_size, precision, compile), device, name)
    values = engine.score_windows(windows)
    return _aggregate(pol, owners, values, len(wavs)), pol


def _aggregate(policy: Policy, owners: list[int], values: list[float], n: int) -> np.ndarray:
    per_utt: list[list[float]] = [[] for _ in range(n)]
    for i, v in zip(owners, values, strict=True):
        per_utt[i].append(v)
    return np.array([policy.aggregate(v) for v in per_utt], dtype=np.float64)
