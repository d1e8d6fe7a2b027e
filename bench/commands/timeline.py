"""``bench score --timeline``: the options it adds to ``bench score`` and its handler.

Scores of sliding windows over each file (:mod:`bench.scoring.timeline`), printed as CSV (``path``, ``start_s``,
``end_s``, ``score``; ``decision`` with a threshold) or, with ``--json``, one object per file with ``path`` and
``timeline`` (a list of ``{"start_s", "end_s", "score"}``); ``--figures DIR`` draws each file's score against
time with the threshold (:mod:`bench.commands.timeline_plot`). The threshold is ``--threshold`` (a score) or, from a
calibration file (``bench score``'s ``--calibration CAL.json``, see ``bench calibrate``), the score whose calibrated
llr is the Bayes threshold of the file's application (:func:`bench.run.calibrated.score_threshold`).
"""
from __future__ import annotations

import argparse

from bench.terminal import finite_float
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("bench")


def add_options(s: argparse.ArgumentParser) -> None:
    """The timeline options of ``bench score`` (its ``--calibration`` is calibrate_cli's, read here too)."""
    g = s.add_argument_group("timeline (where in a long recording the detector hears a fake)")
    g.add_argument("--timeline", action="store_true", help="score sliding windows over each whole file and print "
                   "one row per window (CSV: path,start_s,end_s,score) or, with --json, one object per file with "
                   "path and timeline [{start_s, end_s, score}]; with --threshold or --calibration, a decision per "
                   "window (--calibration: at the score whose llr is the calibration's Bayes threshold)")
    g.add_argument("--window", type=finite_float, metavar="SECONDS",
                   help="with --timeline: window length (default: the detector's input length, 4.04 s for AASIST)")
    g.add_argument("--hop", type=finite_float, default=0.5, metavar="SECONDS",
                   help="with --timeline: time between window starts (default 0.5)")
    g.add_argument("--figures", metavar="DIR", help="with --timeline: write DIR/<file stem>.timeline.png, the score "
                   "against time with the threshold")
    g.add_argument("--threshold", type=finite_float, help="with --timeline: decision threshold on the score "
                   "(bona fide iff score >= it): adds a decision column and a line in the figure")


def calibration_threshold(path: str | Path, model: str) -> float:
    """The score threshold of a calibration file for ``model``: the score whose llr is the Bayes threshold."""
    from bench.run.calibrate import load_calibration
    from bench.run.calibrated import score_threshold

    cal = load_calibration(path)
    if cal.get("kind") == "calibration" and cal.get("model") != model:
        raise ValueError(f"--calibration {path} is for model {cal.get('model')!r}, not {model!r}")
    try:
        return score_threshold(cal)
    except ValueError as e:
        raise ValueError(f"--calibration {path}: {e}") from None


def cmd_timeline(a: argparse.Namespace) -> int:
    from bench import api
    from bench.run.options import max_seconds
    from bench.terminal import print_json

    if a.policy:
        log.warning("--policy does not apply to --timeline: its windows are the full policy's, every --hop seconds")
    threshold = getattr(a, "threshold", None)
    calibration = getattr(a, "calibration", None)
    if threshold is not None and calibration:
        raise ValueError("give --threshold or --calibration, not both")
    if calibration:   # the calibration names the model as `bench run` named it (its --model)
        threshold = calibration_threshold(calibration, a.model)
        log.info("threshold %.6g from %s", threshold, calibration)
    df = api.score_timeline(a.model, a.files, window=a.window, hop=a.hop, checkpoint=a.checkpoint,
                            device=a.device, batch_size=a.batch_size, label_map=a.label_map,
                            precision=a.precision, compile=a.compile, threshold=threshold,
                            max_seconds=max_seconds(getattr(a, "max_seconds", 600.0)))
    failed = df[df["error"].notna()]
    for err in dict.fromkeys(failed["error"]):   # each names its file
        log.error("%s", err)
    if a.json:
        print_json(by_file(df, a.files))
    else:
        cols = ["path", "start_s", "end_s", "score"] + (["decision"] if threshold is not None else [])
        df[df["start_s"].notna()].to_csv(sys.stdout, columns=cols, index=False, float_format="%.6g")
    if a.figures:
        from bench.commands.timeline_plot import save_timeline_figures

        for p in save_timeline_figures(df, a.figures, threshold=threshold, model=str(df["model"].iloc[0])
                                       if len(df) else a.model):
            log.info("wrote %s", p)
    return 1 if len(failed) else 0


def by_file(df, files) -> list[dict[str, Any]]:
    """``[{"path", "timeline": [{"start_s", "end_s", "score"[, "decision"]}], "error"}]``, one per file in order."""
    out = []
    for f in dict.fromkeys(str(x) for x in files):
        sub = df[df["path"] == f]
        errors = [e for e in sub["error"] if isinstance(e, str) and e]
        keep = [c for c in ("start_s", "end_s", "score", "decision") if c in sub.columns]
        rows = sub[sub["start_s"].notna()][keep].to_dict(orient="records")
        out.append({"path": f, "timeline": rows, "error": errors[0] if errors else None})
    return out
