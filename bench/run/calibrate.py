"""Calibration and fusion of a finished run: fit on one condition of its ``scores.csv`` and save as CAL.json
(applying it to every condition is :mod:`bench.run.calibrated`). Reads files only; the math is
:mod:`bench.metrics.calibration`.

The prior, one convention everywhere: the user names the application as ASVspoof 5 does, ``p_spoof`` (the
spoof prior, ``bench calibrate --prior``, default 0.05) with the costs ``c_miss`` (a bona fide trial rejected,
default 1) and ``c_fa`` (a spoof accepted, default 10). The map is fitted at the bona fide *effective* prior
of that application, ``(1-p_spoof) Cmiss / ((1-p_spoof) Cmiss + p_spoof Cfa)`` (0.655 by default), whose Bayes
threshold is the one ASVspoof 5's actDCF uses (-ln 1.9); calibrated actDCF/minDCF and the ``bayes`` operating
point use the same three numbers, read back from the file.

Penalty: ``"auto"`` (default) fits BOSARIS's unpenalised objective unless the fitting condition separates the
classes perfectly (common on small clean sets), where that objective has no finite optimum; then it fits with
the small L2 penalty :data:`AUTO_PENALTY` on the standardised weights and says so (``penalty_auto: true``).

CAL.json (``format`` :data:`FORMAT`, ``version`` :data:`VERSION`), ``kind`` ``calibration`` or ``fusion``:

* ``run``: ``scores_sha256`` (the bytes of scores.csv) and ``identity`` (from run.json when present: data
  digest, seed, suite, models with their checkpoint digests);
* ``condition`` ``{family, severity}``; ``costs`` ``{p_spoof, c_miss, c_fa}`` (the application); ``prior`` (the
  objective's bona fide prior, the effective prior of ``costs``); ``penalty`` and ``penalty_auto``;
* calibration: ``model`` and ``map`` ``{a, b}`` (``llr = a * score + b``);
  fusion: ``members`` (in order), ``weights`` (one per member) and ``bias`` (``llr = sum w_i s_i + bias``);
* ``n_bonafide``, ``n_spoof``, ``n_trials``, ``cllr_before`` (the raw scores read as llrs; per member for a
  fusion), ``cllr_after``, ``min_cllr`` (bits, on the fitting condition).

Conditions are named ``clean`` (family clean, severity 0), a family label with one severity in the run, or
``FAMILY@SEVERITY``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from bench.metrics import calibration as C

log = logging.getLogger(__name__)

FORMAT, VERSION = "deepfake-bench/calibration", 1
COLUMNS = ("utt_id", "model", "family", "severity", "label", "score")
LABELS = ("bonafide", "spoof")
#: the small L2 penalty (on the standardised weights) a separable fitting condition falls back to: finite llrs
#: that still rank every clean trial right; the map's slope then grows like log(1 / AUTO_PENALTY)
AUTO_PENALTY = 1e-3


# ---------------------------------------------------------------- reading a run
def read_scores(run_dir) -> pd.DataFrame:
    """``scores.csv`` of a run folder, checked: the columns, the labels, one row per utterance and condition."""
    path = Path(run_dir) / "scores.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (is {run_dir} a finished run folder?)")
    df = pd.read_csv(path, dtype={"utt_id": str, "model": str, "family": str, "label": str})
    return check_scores(df, str(path))


def check_scores(df: pd.DataFrame, source: str = "scores table") -> pd.DataFrame:
    if missing := [c for c in COLUMNS if c not in df.columns]:
        raise ValueError(f"{source}: missing column(s) {missing} (needs {list(COLUMNS)})")
    if bad := sorted(set(df["label"].astype(str)) - set(LABELS)):
        raise ValueError(f"{source}: column 'label' has {bad[:5]}; only 'bonafide' and 'spoof' are allowed")
    df = df.copy()
    df["score"] = pd.to_numeric(df["score"], errors="coerce").astype(np.float64)
    try:
        df["severity"] = df["severity"].astype(int)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: column 'severity' must hold integers ({e})") from None
    dup = df.duplicated(["utt_id", "model", "family", "severity"])
    if dup.any():
        first = df.loc[dup, ["utt_id", "model", "family", "severity"]].iloc[0].tolist()
        raise ValueError(f"{source}: {int(dup.sum())} duplicate rows for one utterance, model and condition, "
                         f"e.g. {first}")
    return df


def run_digest(run_dir) -> dict:
    """What a CAL.json was fitted on: scores.csv's sha256 and run.json's identity fields that exist."""
    run_dir = Path(run_dir)
    h = hashlib.sha256()
    with open(run_dir / "scores.csv", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    ident: dict = {}
    rj = run_dir / "run.json"
    if rj.is_file():
        try:
            prov = json.loads(rj.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{rj}: not valid JSON ({e})") from None
        data, suite = prov.get("data") or {}, prov.get("suite") or {}
        if "sha256" in data:
            ident["data_sha256"] = data["sha256"]
        if "seed" in prov:
            ident["seed"] = prov["seed"]
        if isinstance(suite, dict) and suite.get("name") is not None:
            ident["suite"] = {k: suite[k] for k in ("name", "version") if k in suite}
        if isinstance(prov.get("models"), list):
            ident["models"] = [{"name": m.get("name"), "sha256": m.get("sha256")}
                               for m in prov["models"] if isinstance(m, dict)]
    return {"scores_sha256": h.hexdigest(), "identity": ident}


def _pick_model(df: pd.DataFrame, model: str | None) -> str:
    models = sorted(df["model"].unique())
    if model is None:
        if len(models) != 1:
            raise ValueError(f"the run holds several models {models}: name one (model=...)")
        return models[0]
    if model not in models:
        raise ValueError(f"model {model!r} is not in the run (it has {models})")
    return model


def _pick_condition(df: pd.DataFrame, condition: str) -> tuple[str, int]:
    conds = sorted(set(zip(df["family"], df["severity"])))
    if condition == "clean":
        if ("clean", 0) not in conds:
            raise ValueError("the run has no clean condition (family 'clean', severity 0)")
        return "clean", 0
    sev = [s for f, s in conds if f == condition]
    if len(sev) == 1:
        return condition, int(sev[0])
    if len(sev) > 1:
        raise ValueError(f"condition {condition!r} has severities {sev} in the run: name one as "
                         f"'{condition}@SEVERITY'")
    fam, _, s = condition.rpartition("@")
    if fam and s.lstrip("-").isdigit() and (fam, int(s)) in conds:
        return fam, int(s)
    names = [f"{f}@{s}" for f, s in conds]
    raise ValueError(f"condition {condition!r} is not in the run (it has {names[:20]})")


def _finite(sub: pd.DataFrame, what: str) -> None:
    bad = ~np.isfinite(sub["score"].to_numpy())
    if bad.any():
        raise ValueError(f"{what}: {int(bad.sum())} scores are missing or not finite (e.g. utterance "
                         f"{sub.loc[bad, 'utt_id'].iloc[0]!r}); a map cannot be fitted on them")


def _split(sub: pd.DataFrame, what: str) -> tuple[np.ndarray, np.ndarray]:
    lab = sub["label"].to_numpy()
    sc = sub["score"].to_numpy(dtype=np.float64)
    b, s = sc[lab == "bonafide"], sc[lab == "spoof"]
    if not (b.size and s.size):
        raise ValueError(f"{what}: needs bona fide and spoof scores, has {b.size} and {s.size}")
    return b, s


# ---------------------------------------------------------------- fitting
def application(p_spoof: float = C.DEFAULT_P_SPOOF, c_miss: float = 1.0, c_fa: float = 10.0) -> dict:
    """``{"p_spoof", "c_miss", "c_fa"}`` checked (the spoof prior in (0, 1), positive costs)."""
    for name, v in (("p_spoof", p_spoof), ("c_miss", c_miss), ("c_fa", c_fa)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if not 0 < p_spoof < 1:
        raise ValueError(f"the spoof prior (--prior) must lie strictly between 0 and 1, got {p_spoof}")
    if not (c_miss > 0 and c_fa > 0):
        raise ValueError(f"the costs must be positive, got c_miss={c_miss}, c_fa={c_fa}")
    return {"p_spoof": float(p_spoof), "c_miss": float(c_miss), "c_fa": float(c_fa)}


def cost_args(costs: dict) -> dict:
    """CAL.json's ``costs`` as the ``(p_target, c_miss, c_fa)`` keyword arguments of act_dcf/min_dcf."""
    return {"p_target": 1.0 - costs["p_spoof"], "c_miss": costs["c_miss"], "c_fa": costs["c_fa"]}


def _penalty(penalty, tar: np.ndarray, non: np.ndarray) -> tuple[float, bool]:
    """``(penalty, automatic)``: ``"auto"``/None -> 0, or :data:`AUTO_PENALTY` when the trials are separable."""
    if penalty is None or penalty == "auto":
        if C.separable(tar, non):
            return AUTO_PENALTY, True
        return 0.0, False
    try:
        value = float(penalty)
    except (TypeError, ValueError):
        raise ValueError(f"penalty must be 'auto' or a number >= 0, got {penalty!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"penalty must be 'auto' or a finite number >= 0, got {penalty!r}")
    return value, False


def _fitted(kind: str, run_dir, family: str, severity: int, costs: dict, pen: float, auto: bool, what: str) -> dict:
    if auto:
        log.warning("%s: the scores separate bona fide from spoof perfectly, so the unpenalised fit has no finite "
                    "optimum; fitted with the L2 penalty %g instead (recorded as penalty_auto)", what, pen)
    return {"format": FORMAT, "version": VERSION, "kind": kind, "run": run_digest(run_dir),
            "condition": {"family": family, "severity": int(severity)}, "costs": costs,
            "prior": C.effective_prior(**cost_args(costs)), "penalty": float(pen), "penalty_auto": bool(auto)}


def fit_calibration(run_dir, model: str | None = None, condition: str = "clean", p_spoof: float = C.DEFAULT_P_SPOOF,
                    c_miss: float = 1.0, c_fa: float = 10.0, penalty: float | str | None = "auto") -> dict:
    """Fit ``llr = a * score + b`` for one model on one condition of a finished run, at the application
    ``(p_spoof, c_miss, c_fa)`` (see the module); the CAL.json content."""
    costs = application(p_spoof, c_miss, c_fa)
    df = read_scores(run_dir)
    model = _pick_model(df, model)
    family, severity = _pick_condition(df, condition)
    what = f"model {model!r}, condition {family}@{severity}"
    sub = df[(df["model"] == model) & (df["family"] == family) & (df["severity"] == severity)]
    _finite(sub, what)
    b, s = _split(sub, what)
    try:
        pen, auto = _penalty(penalty, b, s)
        a, bias = C.train_calibration(b, s, prior=C.effective_prior(**cost_args(costs)), penalty=pen)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    return {**_fitted("calibration", run_dir, family, severity, costs, pen, auto, what),
            "model": model, "map": {"a": a, "b": bias},
            "n_bonafide": int(b.size), "n_spoof": int(s.size), "n_trials": int(b.size + s.size),
            "cllr_before": C.cllr(b, s), "cllr_after": C.cllr(a * b + bias, a * s + bias),
            "min_cllr": C.min_cllr(b, s)}


def _member_matrix(df: pd.DataFrame, members: list[str], family: str, severity: int) -> pd.DataFrame:
    """Utterances x members scores of one condition, joined on utt_id; refuses gaps and label conflicts."""
    what = f"condition {family}@{severity}"
    sub = df[(df["family"] == family) & (df["severity"] == severity) & df["model"].isin(members)]
    _finite(sub, what)
    wide = sub.pivot(index="utt_id", columns="model", values="score")
    wide = wide.reindex(columns=members)
    gaps = {m: int(wide[m].isna().sum()) for m in members if wide[m].isna().any()}
    if gaps:
        ex = wide.index[wide.isna().any(axis=1)][0]
        raise ValueError(f"{what}: not every utterance is scored by every member (missing per member: {gaps}; "
                         f"e.g. {ex!r}); a fusion needs the same utterances for all")
    labels = sub.groupby("utt_id")["label"].nunique()
    if (labels > 1).any():
        raise ValueError(f"{what}: utterance {labels.index[labels > 1][0]!r} has different labels in different "
                         "models' rows")
    wide["label"] = sub.drop_duplicates("utt_id").set_index("utt_id")["label"].reindex(wide.index)
    return wide


def fit_fusion(run_dir, models: list[str] | None = None, condition: str = "clean",
               p_spoof: float = C.DEFAULT_P_SPOOF, c_miss: float = 1.0, c_fa: float = 10.0,
               penalty: float | str | None = "auto") -> dict:
    """Fit a linear fusion of two or more of the run's models (all of them by default, sorted by name) on one
    condition; the CAL.json content."""
    costs = application(p_spoof, c_miss, c_fa)
    df = read_scores(run_dir)
    have = sorted(df["model"].unique())
    members = have if models is None else list(models)
    if len(members) < 2 or len(set(members)) != len(members):
        raise ValueError(f"a fusion needs two or more distinct models, got {members} (the run has {have})")
    if unknown := [m for m in members if m not in have]:
        raise ValueError(f"model(s) {unknown} are not in the run (it has {have})")
    family, severity = _pick_condition(df, condition)
    wide = _member_matrix(df, members, family, severity)
    x = wide[members].to_numpy(dtype=np.float64)
    is_b = (wide["label"] == "bonafide").to_numpy()
    what = f"fusion of {members}, condition {family}@{severity}"
    if not (is_b.any() and (~is_b).any()):
        raise ValueError(f"{what}: needs bona fide and spoof utterances, has {int(is_b.sum())} and "
                         f"{int((~is_b).sum())}")
    try:
        pen, auto = _penalty(penalty, x[is_b], x[~is_b])
        w, bias = C.train_fusion(x[is_b], x[~is_b], prior=C.effective_prior(**cost_args(costs)), penalty=pen)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    llr = x @ w + bias
    return {**_fitted("fusion", run_dir, family, severity, costs, pen, auto, what),
            "members": members, "weights": [float(v) for v in w], "bias": bias,
            "n_bonafide": int(is_b.sum()), "n_spoof": int((~is_b).sum()), "n_trials": int(len(x)),
            "cllr_before": {m: C.cllr(x[is_b, i], x[~is_b, i]) for i, m in enumerate(members)},
            "cllr_after": C.cllr(llr[is_b], llr[~is_b]), "min_cllr": C.min_cllr(llr[is_b], llr[~is_b])}


# ---------------------------------------------------------------- the file
def _field(cal: dict, key: str, source: str):
    cur = cal
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise ValueError(f"{source}: field {key!r} is missing")
        cur = cur[part]
    return cur


def _number(cal: dict, key: str, source: str) -> float:
    v = _field(cal, key, source)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{source}: field {key!r} must be a finite number, got {v!r}")
    return float(v)


def validate_calibration(cal, source: str = "calibration") -> dict:
    """Check a CAL.json content; a ValueError names ``source`` and the field. Returns ``cal``."""
    if not isinstance(cal, dict):
        raise ValueError(f"{source}: a calibration must be a JSON object, got {type(cal).__name__}")
    if _field(cal, "format", source) != FORMAT:
        raise ValueError(f"{source}: field 'format' must be {FORMAT!r}, got {cal['format']!r}")
    if _field(cal, "version", source) != VERSION:
        raise ValueError(f"{source}: field 'version' is {cal['version']!r}; this version reads {VERSION}")
    if not 0 < _number(cal, "prior", source) < 1:
        raise ValueError(f"{source}: field 'prior' must lie in (0, 1), got {cal['prior']!r}")
    if not 0 < _number(cal, "costs.p_spoof", source) < 1:
        raise ValueError(f"{source}: field 'costs.p_spoof' must lie in (0, 1), got {cal['costs']['p_spoof']!r}")
    for key in ("c_miss", "c_fa"):
        if not _number(cal, f"costs.{key}", source) > 0:
            raise ValueError(f"{source}: field 'costs.{key}' must be positive, got {cal['costs'][key]!r}")
    fam = _field(cal, "condition.family", source)
    if not isinstance(fam, str) or not fam:
        raise ValueError(f"{source}: field 'condition.family' must be a non-empty string, got {fam!r}")
    sev = _field(cal, "condition.severity", source)
    if isinstance(sev, bool) or not isinstance(sev, int):
        raise ValueError(f"{source}: field 'condition.severity' must be an integer, got {sev!r}")
    kind = _field(cal, "kind", source)
    if kind == "calibration":
        m = _field(cal, "model", source)
        if not isinstance(m, str) or not m:
            raise ValueError(f"{source}: field 'model' must be a non-empty string, got {m!r}")
        _number(cal, "map.a", source)
        _number(cal, "map.b", source)
    elif kind == "fusion":
        members, weights = _field(cal, "members", source), _field(cal, "weights", source)
        if (not isinstance(members, list) or len(members) < 2 or len(set(map(str, members))) != len(members)
                or not all(isinstance(m, str) and m for m in members)):
            raise ValueError(f"{source}: field 'members' must list two or more distinct model names, got {members!r}")
        if not isinstance(weights, list) or len(weights) != len(members):
            raise ValueError(f"{source}: field 'weights' must hold one number per member ({len(members)}), "
                             f"got {weights!r}")
        for i, v in enumerate(weights):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{source}: field 'weights[{i}]' must be a finite number, got {v!r}")
        _number(cal, "bias", source)
    else:
        raise ValueError(f"{source}: field 'kind' must be 'calibration' or 'fusion', got {kind!r}")
    return cal


def save_calibration(cal: dict, path) -> Path:
    """Validate and write CAL.json (atomically: a temporary file renamed over ``path``)."""
    path = Path(path)
    validate_calibration(cal, str(path))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(cal, indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def load_calibration(path) -> dict:
    """Read and validate a CAL.json; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such calibration file")
    try:
        cal = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    return validate_calibration(cal, str(path))
