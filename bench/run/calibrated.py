"""A CAL.json applied to a run: the calibrated (or fused) llrs of every condition, the per-condition table
``results_calibrated.csv``, and the score threshold of the calibration's Bayes decision (the ``bayes``
operating point). Fitting and the file itself: :mod:`bench.run.calibrate`.

``results_calibrated.csv``: one row per model x family x severity of the llrs (a fusion's rows are model
``fuse:M1+M2...``): ``n_bonafide``, ``n_spoof``, ``cllr`` and ``min_cllr`` (bits; min by PAV, the floor any
monotone calibration reaches), ``actdcf`` (at the Bayes threshold of the calibration's application) and
``min_dcf`` (normalised, at that application's costs), ``eer`` of the llrs (the fused EER for a fusion),
``level_label`` and ``calibration`` (the CAL.json's file name), in the run's row order.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from bench.metrics import calibration as C
from bench.run.calibrate import _member_matrix, check_scores, cost_args, load_calibration, validate_calibration

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["model", "family", "severity", "n_bonafide", "n_spoof", "cllr", "min_cllr", "actdcf", "min_dcf",
                  "eer"]
FILE = "results_calibrated.csv"


def fusion_name(cal: dict) -> str:
    return "fuse:" + "+".join(cal["members"])


def apply_calibration(scores: pd.DataFrame, cal: dict) -> pd.DataFrame:
    """Rows ``model, family, severity, utt_id, label, llr``: the map applied to its model's rows, or the fusion
    (model ``fuse:M1+M2...``) to every condition, which must have each utterance scored by every member (else
    refused). Non-finite scores are left out (as in results.csv), so for a fusion they count as missing."""
    cal = validate_calibration(cal)
    df = check_scores(scores)
    df = df[np.isfinite(df["score"].to_numpy())]
    cols = ["model", "family", "severity", "utt_id", "label", "llr"]
    if cal["kind"] == "calibration":
        sub = df[df["model"] == cal["model"]]
        if sub.empty:
            raise ValueError(f"the calibration is for model {cal['model']!r}, which the scores do not hold "
                             f"(they have {sorted(df['model'].unique())})")
        out = sub.assign(llr=cal["map"]["a"] * sub["score"] + cal["map"]["b"])
        return out[cols].reset_index(drop=True)
    members, w = cal["members"], np.asarray(cal["weights"], dtype=np.float64)
    if missing := [m for m in members if m not in set(df["model"])]:
        raise ValueError(f"the fusion's member(s) {missing} are not in the scores")
    parts = []
    for family, severity in dict.fromkeys(zip(df["family"], df["severity"])):
        wide = _member_matrix(df, members, family, severity)
        parts.append(pd.DataFrame({"model": fusion_name(cal), "family": family,
                                   "severity": severity, "utt_id": wide.index, "label": wide["label"].to_numpy(),
                                   "llr": wide[members].to_numpy(dtype=np.float64) @ w + cal["bias"]}))
    return pd.concat(parts, ignore_index=True)[cols]


def calibrated_results(scores: pd.DataFrame, cal: dict) -> pd.DataFrame:
    """Per model x family x severity of the calibrated (or fused) llrs: ``cllr``, ``min_cllr`` (bits),
    ``actdcf``, ``min_dcf`` (normalised, at the calibration's own costs), ``eer``, ``n_bonafide``, ``n_spoof``.
    A condition lacking a class gets NaN metrics."""
    from bench.metrics import eer as official_eer

    llr = apply_calibration(scores, cal)
    costs = cost_args(cal["costs"])
    rows = []
    for (model, family, severity), g in llr.groupby(["model", "family", "severity"], sort=False):
        lab = g["label"].to_numpy()
        v = g["llr"].to_numpy(dtype=np.float64)
        b, s = v[lab == "bonafide"], v[lab == "spoof"]
        row = {"model": model, "family": family, "severity": int(severity), "n_bonafide": int(b.size),
               "n_spoof": int(s.size), "cllr": np.nan, "min_cllr": np.nan, "actdcf": np.nan, "min_dcf": np.nan,
               "eer": np.nan}
        if b.size and s.size:
            row.update(cllr=C.cllr(b, s), min_cllr=C.min_cllr(b, s), actdcf=C.act_dcf(b, s, **costs),
                       min_dcf=C.min_dcf(b, s, **costs), eer=float(official_eer(b, s)[0]))
        rows.append(row)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def calibrated_table(scores: pd.DataFrame, cals: Sequence[tuple[str, dict]],
                     results: pd.DataFrame | None = None) -> pd.DataFrame:
    """``results_calibrated.csv`` of several ``(name, cal)``: each calibration's rows, in ``results``' condition
    order with its ``level_label`` when given, plus ``calibration`` (the name)."""
    parts = [calibrated_results(scores, cal).assign(calibration=name) for name, cal in cals]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=RESULT_COLUMNS + ["calibration"])
    seen = out.duplicated(["model", "family", "severity"])
    if seen.any():
        r = out.loc[seen].iloc[0]
        raise ValueError(f"two calibrations give rows for model {r['model']!r} ({r['calibration']} and another): "
                         "give one calibration per model")
    out["level_label"] = ""
    if results is not None and len(results):
        order = {(f, int(s)): i for i, (f, s) in enumerate(dict.fromkeys(zip(results["family"],
                                                                             results["severity"].astype(int))))}
        if "level_label" in results:
            labels = {(f, int(s)): lab for f, s, lab in zip(results["family"], results["severity"],
                                                            results["level_label"])}
            out["level_label"] = [labels.get((f, int(s)), "") for f, s in zip(out["family"], out["severity"])]
        key = [order.get((f, int(s)), len(order)) for f, s in zip(out["family"], out["severity"])]
        models = {m: i for i, m in enumerate(dict.fromkeys(out["model"]))}
        out = out.assign(_m=out["model"].map(models), _o=key).sort_values(["_m", "_o"], kind="stable")
        out = out.drop(columns=["_m", "_o"]).reset_index(drop=True)
    return out[RESULT_COLUMNS + ["level_label", "calibration"]]


def load_calibrations(paths: Sequence[str | Path]) -> list[tuple[str, dict]]:
    """Each CAL.json read and validated, as ``(file name, content)``; the same file twice is refused."""
    out, seen = [], set()
    for p in paths:
        key = str(Path(p).resolve())
        if key in seen:
            raise ValueError(f"--calibration {p} is given twice")
        seen.add(key)
        out.append((Path(p).name, load_calibration(p)))
    return out


def check_models(cals: Sequence[tuple[str, dict]], models: Sequence[str], where: str = "the run") -> None:
    """Each calibration's model (or every fusion member) must be among ``models``; one model per calibration."""
    owner: dict[str, str] = {}
    for name, cal in cals:
        need = [cal["model"]] if cal["kind"] == "calibration" else list(cal["members"])
        what = "model" if cal["kind"] == "calibration" else "the members"
        if missing := [m for m in need if m not in models]:
            raise ValueError(f"--calibration {name}: it is for {what} {missing}, which {where} does not score "
                             f"(its models: {list(models)})")
        key = cal["model"] if cal["kind"] == "calibration" else fusion_name(cal)
        if key in owner:
            raise ValueError(f"--calibration {name} and {owner[key]} are both for {key}: give one per model")
        owner[key] = name


def write_calibrated(run_dir: str | Path, cals: Sequence[tuple[str, dict]], out: str | Path) -> pd.DataFrame:
    """Reads the run's scores.csv (and results.csv for the order and labels), writes ``out`` atomically."""
    from bench.run.results import read_scores_csv

    run_dir = Path(run_dir)
    scores = read_scores_csv(run_dir / "scores.csv")
    results = pd.read_csv(run_dir / "results.csv") if (run_dir / "results.csv").is_file() else None
    table = calibrated_table(scores[["utt_id", "model", "family", "severity", "label", "score"]], cals, results)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(out)
    return table


def bayes_threshold(cal: dict) -> float:
    """The llr threshold of the calibration's Bayes decision: accept (bona fide) an llr at or above it."""
    return C.bayes_threshold(**cost_args(validate_calibration(cal)["costs"]))


def score_threshold(cal: dict) -> float:
    """The Bayes decision as a threshold on the model's own scores: ``(t - b) / a`` for a map with ``a > 0``
    (accept a score at or above it); a map that inverts the scores (``a <= 0``) is refused."""
    cal = validate_calibration(cal)
    if cal["kind"] != "calibration":
        raise ValueError("a fusion file gives thresholds on fused llrs, not on one model's scores; use "
                         "--model fuse:...@FILE, whose scores are those llrs")
    a, b = cal["map"]["a"], cal["map"]["b"]
    if not a > 0:
        raise ValueError(f"the calibration of {cal['model']!r} has slope {a:g} <= 0: it turns higher scores into "
                         "lower llrs (an inverted detector), so no score threshold gives its Bayes decision")
    return float((bayes_threshold(cal) - b) / a)


def fusion_bayes_threshold(spec: str) -> float:
    """The Bayes llr threshold of a ``fuse:`` model's file (its scores are those llrs)."""
    from bench.run.calibrate import application
    from models.fusion import parse_spec, read_fusion

    doc = read_fusion(parse_spec(spec)[1])
    costs = doc.get("costs")
    if not isinstance(costs, dict):
        raise ValueError(f"{spec}: its fusion file has no 'costs' (p_spoof, c_miss, c_fa), so it has no Bayes "
                         "threshold; fit it again with `bench calibrate --fuse`")
    try:
        costs = application(costs.get("p_spoof"), costs.get("c_miss"), costs.get("c_fa"))
    except ValueError as e:
        raise ValueError(f"{spec}: its fusion file's 'costs': {e}") from None
    return C.bayes_threshold(**cost_args(costs))


def deployment(operating_point: str | None, calibrations: Sequence[str | Path], models: Sequence[str]):
    """``bench run``'s ``--operating-point`` and ``--calibration``, checked against the run's models before any
    work: ``(operating, cals)``, ``operating`` = ``(OperatingPoint, {model: Bayes score threshold})`` or None,
    ``cals`` = ``[(file name, content)]``. ``bayes`` needs, for every model, its calibration or a ``fuse:`` spec."""
    from bench.metrics.thresholds import OperatingPoint

    cals = load_calibrations(calibrations or ())
    check_models(cals, models)
    if not operating_point:
        return None, cals
    point = OperatingPoint.parse(operating_point)
    bayes: dict[str, float] = {}
    if point.kind == "bayes":
        own = {cal["model"]: cal for _, cal in cals if cal["kind"] == "calibration"}
        for m in models:
            if m in own:
                bayes[m] = score_threshold(own[m])
            elif m.lower().startswith("fuse:"):
                bayes[m] = fusion_bayes_threshold(m)
            else:
                raise ValueError(f"--operating-point bayes: model {m} has no calibration; give --calibration FILE "
                                 f"from `bench calibrate RUN --model {m}` (or choose far=, frr=, eer or threshold=)")
    return (point, bayes), cals


def write_calibrated_tables(out: Path, cals, operating, results: pd.DataFrame, paths: Sequence[str | Path]) -> dict:
    """After a run's tables: ``results_calibrated.csv`` from its ``cals`` (a stale one removed when none was
    given); returns run.json's record of the calibrations (file, sha256, kind, model) and operating point."""
    import hashlib

    target = Path(out) / FILE
    record: dict = {}
    if cals:
        write_calibrated(out, cals, target)
        record["calibration"] = [{"file": str(Path(p).resolve()), "sha256": hashlib.sha256(Path(p).read_bytes())
                                  .hexdigest(), "kind": cal["kind"],
                                  "for": cal["model"] if cal["kind"] == "calibration" else fusion_name(cal)}
                                 for p, (_, cal) in zip(paths, cals)]
    elif target.exists():
        target.unlink()
        log.info("removed %s: this command gave no --calibration", target)
    if operating is not None:
        clean = results[(results["family"] == "clean") & (results["severity"] == 0)]
        record["operating_point"] = {"spec": str(operating[0]),
                                     "thresholds": {m: float(t) for m, t in zip(clean["model"], clean["op_threshold"])}}
    return record
