"""Calibration and fusion of a finished run: fit on one condition of its ``scores.csv``, save as CAL.json,
apply to every condition (``calibrated_results``). Reads files only; the math is :mod:`bench.metrics.calibration`.

CAL.json (``format`` :data:`FORMAT`, ``version`` :data:`VERSION`), ``kind`` ``calibration`` or ``fusion``:

* ``run``: ``scores_sha256`` (the bytes of scores.csv) and ``identity`` (from run.json when present: data
  digest, seed, suite, models with their checkpoint digests);
* ``condition`` ``{family, severity}``, ``prior`` (target = bona fide prior of the objective), ``penalty``;
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
RESULT_COLUMNS = ["model", "family", "severity", "n_bonafide", "n_spoof", "cllr", "min_cllr", "actdcf", "min_dcf"]


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
def fit_calibration(run_dir, model: str | None = None, condition: str = "clean", prior: float = C.DEFAULT_PRIOR,
                    penalty: float = 0.0) -> dict:
    """Fit ``llr = a * score + b`` for one model on one condition of a finished run; the CAL.json content."""
    df = read_scores(run_dir)
    model = _pick_model(df, model)
    family, severity = _pick_condition(df, condition)
    what = f"model {model!r}, condition {family}@{severity}"
    sub = df[(df["model"] == model) & (df["family"] == family) & (df["severity"] == severity)]
    _finite(sub, what)
    b, s = _split(sub, what)
    try:
        a, bias = C.train_calibration(b, s, prior=prior, penalty=penalty)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    return {"format": FORMAT, "version": VERSION, "kind": "calibration", "run": run_digest(run_dir),
            "condition": {"family": family, "severity": int(severity)}, "prior": float(prior),
            "penalty": float(penalty), "model": model, "map": {"a": a, "b": bias},
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
               prior: float = C.DEFAULT_PRIOR, penalty: float = 0.0) -> dict:
    """Fit a linear fusion of two or more of the run's models (all of them by default, sorted by name) on one
    condition; the CAL.json content."""
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
        w, bias = C.train_fusion(x[is_b], x[~is_b], prior=prior, penalty=penalty)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    llr = x @ w + bias
    return {"format": FORMAT, "version": VERSION, "kind": "fusion", "run": run_digest(run_dir),
            "condition": {"family": family, "severity": int(severity)}, "prior": float(prior),
            "penalty": float(penalty), "members": members, "weights": [float(v) for v in w], "bias": bias,
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


# ---------------------------------------------------------------- applying
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
        parts.append(pd.DataFrame({"model": "fuse:" + "+".join(members), "family": family,
                                   "severity": severity, "utt_id": wide.index, "label": wide["label"].to_numpy(),
                                   "llr": wide[members].to_numpy(dtype=np.float64) @ w + cal["bias"]}))
    return pd.concat(parts, ignore_index=True)[cols]


def calibrated_results(scores: pd.DataFrame, cal: dict, p_target: float = C.ASVSPOOF5_CM["p_target"],
                       c_miss: float = C.ASVSPOOF5_CM["c_miss"], c_fa: float = C.ASVSPOOF5_CM["c_fa"]) -> pd.DataFrame:
    """Per model x family x severity of the calibrated (or fused) llrs: ``cllr``, ``min_cllr`` (bits),
    ``actdcf``, ``min_dcf`` (normalised, at ASVspoof 5's CM costs by default), ``n_bonafide``, ``n_spoof``.
    A condition lacking a class gets NaN metrics."""
    llr = apply_calibration(scores, cal)
    rows = []
    for (model, family, severity), g in llr.groupby(["model", "family", "severity"], sort=False):
        lab = g["label"].to_numpy()
        v = g["llr"].to_numpy(dtype=np.float64)
        b, s = v[lab == "bonafide"], v[lab == "spoof"]
        row = {"model": model, "family": family, "severity": int(severity), "n_bonafide": int(b.size),
               "n_spoof": int(s.size), "cllr": np.nan, "min_cllr": np.nan, "actdcf": np.nan, "min_dcf": np.nan}
        if b.size and s.size:
            row.update(cllr=C.cllr(b, s), min_cllr=C.min_cllr(b, s),
                       actdcf=C.act_dcf(b, s, p_target, c_miss, c_fa), min_dcf=C.min_dcf(b, s, p_target, c_miss, c_fa))
        rows.append(row)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)
