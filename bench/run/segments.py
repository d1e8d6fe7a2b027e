"""Segment-level EER of partially spoofed data: does the detector find WHERE a clip is fake, under each condition?

A manifest marks the spoofed parts of its clips in a ``spoof_segments`` column: ``START-END`` pairs in seconds
separated by ``;`` (e.g. ``2.5-4.1;7-7.8``). A ``spoof`` row with an empty cell is spoofed throughout; a
``bonafide`` row must leave it empty. For every utterance of such a manifest the scorer also scores the clip's
timeline (:mod:`bench.scoring.timeline`: windows of the detector's input length every :data:`HOP_S` seconds, the
audio of the condition, i.e. after its codec or noise) and stores each window with its label: spoof when it
overlaps a spoofed segment by more than zero seconds, else bona fide. The segment EER of a condition is the EER
of all its windows' scores against those labels; results.csv gains ``segment_eer``, ``segment_n_bonafide`` and
``segment_n_spoof`` (windows) when the data has the column. Attack conditions craft a detector-length crop and
have no timeline: their segment columns stay empty.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

COLUMN = "spoof_segments"
HOP_S = 0.5
RESULT_COLUMNS = ["segment_eer", "segment_n_bonafide", "segment_n_spoof"]

Segments = tuple[tuple[float, float], ...]


def parse_segments(cell: str, where: str = COLUMN) -> Segments:
    """``"2.5-4.1;7-7.8"`` -> ``((2.5, 4.1), (7.0, 7.8))`` (sorted); ``""`` -> ``()``. Errors name ``where``."""
    out = []
    for part in filter(None, (p.strip() for p in str(cell).split(";"))):
        start, sep, end = part.partition("-")
        try:
            a, b = float(start), float(end)
        except ValueError:
            a = b = float("nan")
        if not sep or not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b <= a:
            raise ValueError(f"{where}: {part!r} is not a segment START-END in seconds with 0 <= START < END "
                             "(pairs separated by ';', e.g. 2.5-4.1;7-7.8)")
        out.append((a, b))
    return tuple(sorted(out))


def segments_of(utt: Any) -> Segments | None:
    """An utterance's spoofed segments: None when its manifest has no ``spoof_segments`` column; ``((0, inf),)``
    for a spoof clip with an empty cell (spoofed throughout)."""
    attrs = getattr(utt, "attrs", None) or {}
    if COLUMN not in attrs:
        return None
    where = f"utterance {utt.utt_id}, column {COLUMN!r}"
    segs = parse_segments(attrs[COLUMN], where)
    if utt.label == "bonafide":
        if segs:
            raise ValueError(f"{where}: a bona fide utterance has spoofed segments {attrs[COLUMN]!r}; label it "
                             "spoof (partially spoofed) or empty the cell")
        return ()
    return segs or ((0.0, math.inf),)


def check_dataset(utterances: Iterable[Any]) -> int:
    """Parses every utterance's segments before any work (a bad cell stops the run naming the utterance);
    returns how many utterances carry segment labels."""
    return sum(segments_of(u) is not None for u in utterances)


def window_labels(start_s: Sequence[float], end_s: Sequence[float], segments: Segments) -> np.ndarray:
    """1 for a window overlapping any segment by more than zero seconds, else 0."""
    st, en = np.asarray(start_s, float), np.asarray(end_s, float)
    lab = np.zeros(len(st), np.int64)
    for a, b in segments:
        lab |= (np.minimum(en, b) - np.maximum(st, a) > 0).astype(np.int64)
    return lab


def segment_rows(model: str, cond: Any, utt_ids: Sequence[str], wavs: Mapping[str, np.ndarray],
                 segments: Mapping[str, Segments | None], detector: Any, engine: Any) -> list[tuple]:
    """Store rows ``(model, family, severity, utt_id, start_s, end_s, spoofed, score)`` of the utterances that carry
    segment labels (finite window scores only)."""
    from bench.scoring.timeline import score_timeline

    if getattr(cond, "kind", "") == "attack":
        return []
    rows: list[tuple] = []
    hop = max(1, int(round(HOP_S * int(detector.sample_rate))))
    for u in utt_ids:
        segs = segments.get(u)
        if segs is None or u not in wavs:
            continue
        tl = score_timeline(detector, wavs[u], hop=hop, engine=engine)
        sr = float(tl.sample_rate)
        labels = window_labels(tl.start / sr, tl.end / sr, segs)
        rows.extend((model, cond.family, int(cond.severity), u, float(s) / sr, float(e) / sr, int(lab), float(v))
                    for s, e, lab, v in zip(tl.start, tl.end, labels, tl.scores) if np.isfinite(v))
    return rows


def with_segment_eer(results: Any, store: Any) -> Any:
    """results.csv with the segment columns, when the store holds segment windows (else unchanged)."""
    from bench import metrics

    groups = store.segment_groups()
    if not groups:
        return results
    values = {}
    for (model, family, severity), (labels, scores) in groups.items():
        bona, spoof = scores[labels == 0], scores[labels == 1]
        eer = metrics.eer(bona, spoof)[0] if len(bona) and len(spoof) else float("nan")
        values[(model, family, int(severity))] = (float(eer), len(bona), len(spoof))
    out = results.copy()
    keys = list(zip(out["model"], out["family"], out["severity"].astype(int)))
    for i, col in enumerate(RESULT_COLUMNS):
        default = float("nan") if i == 0 else 0
        out[col] = [values.get(k, (float("nan"), 0, 0))[i] if k in values else default for k in keys]
    return out
