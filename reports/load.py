"""Reading a finished run folder (results.csv, scores.csv, problems.csv, run.json) for the reports.

Everything here validates what it reads and raises :class:`RunError` naming the file and what to do,
so the commands can turn a bad folder into one clear line (``bench check`` exits 2 on it).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

CLEAN = ("clean", 0)
REQUIRED_RESULTS = ("model", "family", "severity", "eer")
OPTIONAL_RESULTS = {"suite": "", "n_bonafide": np.nan, "n_spoof": np.nan, "eer_ci_low": np.nan,
                    "eer_ci_high": np.nan, "auc": np.nan, "eer_threshold": np.nan, "kind": "", "params": "",
                    "level_label": "",
                    "clean_threshold": np.nan, "far_at_clean_threshold": np.nan, "far_ci_low": np.nan,
                    "far_ci_high": np.nan, "frr_at_clean_threshold": np.nan, "frr_ci_low": np.nan,
                    "frr_ci_high": np.nan, "cllr": np.nan, "actdcf": np.nan, "min_dcf": np.nan}
TEXT_RESULTS = ("model", "family", "suite", "kind", "params", "level_label")
NUMERIC_RESULTS = ("eer", "eer_ci_low", "eer_ci_high", "auc", "eer_threshold", "n_bonafide", "n_spoof",
                   "clean_threshold", "far_at_clean_threshold", "far_ci_low", "far_ci_high", "frr_at_clean_threshold",
                   "frr_ci_low", "frr_ci_high", "cllr", "actdcf", "min_dcf")
#: the condition's structure (bench.suites.suite.Condition.columns); results.csv files older than these columns
#: get them from run.json's suite (see :func:`_legacy_condition_columns`)
CONDITION_COLUMNS = ("adv_attack", "source", "through")
REQUIRED_SCORES = ("utt_id", "model", "family", "severity", "label", "score")


class RunError(ValueError):
    """A run folder that cannot be used; the message names the file and the remedy."""


@dataclass
class Run:
    """One finished run, as the reports see it."""

    path: Path
    results: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    problems: pd.DataFrame = field(default_factory=pd.DataFrame)
    _scores: pd.DataFrame | None = field(default=None, repr=False)
    _scores_read: bool = field(default=False, repr=False)

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)

    @property
    def models(self) -> list[str]:
        """Models in the order the run lists them (run.json, else results.csv)."""
        from_meta = [m.get("name") for m in self.meta.get("models", []) if isinstance(m, dict)]
        seen = list(dict.fromkeys(self.results["model"]))
        ordered = [m for m in from_meta if m in seen]
        return ordered + [m for m in seen if m not in ordered]

    @property
    def is_demo(self) -> bool:
        return str(self.meta.get("data", {}).get("spec", "")) == "demo"

    @property
    def scores(self) -> pd.DataFrame | None:
        """scores.csv (read on first use), or None when the folder has none."""
        if not self._scores_read:
            self._scores = read_scores(self.path / "scores.csv")
            self._scores_read = True
        return self._scores

    def conditions(self) -> list[tuple[str, int]]:
        return conditions(self.results)

    @property
    def by_attack(self) -> pd.DataFrame | None:
        """results_by_attack.csv (EER per spoof generator), or None when the folder has none."""
        path = self.path / "results_by_attack.csv"
        if not path.is_file():
            return None
        try:
            df = pd.read_csv(path, dtype={c: str for c in (*TEXT_RESULTS, "attack")}, keep_default_na=False,
                             na_values=["", "nan", "NaN"])
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise RunError(f"{path} is not a readable CSV table ({e}); rerun `bench run` to rewrite it") from e
        df["attack"] = df["attack"].fillna("-").astype(str)
        return df


def read_results(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} does not exist: give the folder of a finished `bench run` "
                       "(it writes results.csv when all conditions are scored)")
    try:
        df = pd.read_csv(path, dtype={**dict.fromkeys(TEXT_RESULTS, str), **dict.fromkeys(CONDITION_COLUMNS, str)},
                         keep_default_na=False, na_values=["", "nan", "NaN"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise RunError(f"{path} is not a readable CSV table ({e}); rerun `bench run` to rewrite it") from e
    missing = [c for c in REQUIRED_RESULTS if c not in df.columns]
    if missing:
        raise RunError(f"{path} lacks column(s) {missing} (it has {list(df.columns)}); "
                       "it must be a results.csv written by `bench run`")
    for c, default in OPTIONAL_RESULTS.items():
        if c not in df.columns:
            df[c] = default
    for c in TEXT_RESULTS + tuple(c for c in CONDITION_COLUMNS if c in df):
        df[c] = df[c].fillna("").astype(str)
    try:
        df["severity"] = pd.to_numeric(df["severity"], errors="raise").astype(int)
    except (ValueError, TypeError) as e:
        raise RunError(f"{path}: column 'severity' must hold integers 0..5 ({e})") from e
    for c in NUMERIC_RESULTS:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    for c in ("snr_db", "pesq", "stoi"):   # the quality columns; absent from runs made before them
        df[c] = pd.to_numeric(df[c], errors="coerce") if c in df.columns else np.nan
    bad = df["eer"].dropna()
    bad = bad[(bad < 0) | (bad > 1)]
    if len(bad):
        raise RunError(f"{path}: column 'eer' must be a fraction in [0, 1], found {bad.iloc[0]!r} "
                       f"(row {int(bad.index[0]) + 2}); percentages are not accepted")
    if df.empty:
        raise RunError(f"{path} has no rows: the run scored nothing (see problems.csv beside it)")
    dup = df.duplicated(["model", "family", "severity"])
    if dup.any():
        r = df[dup].iloc[0]
        raise RunError(f"{path}: model {r['model']!r} has two rows for {r['family']}@{r['severity']}; "
                       "a results table has one row per model x family x severity")
    return df.reset_index(drop=True)


def read_scores(path: Path) -> pd.DataFrame | None:
    path = Path(path)
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path, dtype={"utt_id": str, "model": str, "family": str, "label": str, "speaker": str,
                                      "attack": str, "language": str},
                         keep_default_na=False, na_values=["", "nan", "NaN"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise RunError(f"{path} is not a readable CSV table ({e}); rerun `bench run` to rewrite it") from e
    missing = [c for c in REQUIRED_SCORES if c not in df.columns]
    if missing:
        raise RunError(f"{path} lacks column(s) {missing} (it has {list(df.columns)})")
    df["severity"] = pd.to_numeric(df["severity"], errors="coerce").fillna(-1).astype(int)
    df["score"] = pd.to_numeric(df["score"], errors="coerce")
    df["label"] = df["label"].replace({"bona-fide": "bonafide"})
    return df


def read_meta(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        log.warning("%s is missing: the report will lack provenance", path)
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{path} is not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise RunError(f"{path} must hold a JSON object, found {type(meta).__name__}")
    return meta


def load_run(folder: str | Path) -> Run:
    """Read a run folder; results.csv is required, the rest optional."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"{folder} is not a folder: give the folder of a finished `bench run`")
    results = read_results(folder / "results.csv")
    meta = read_meta(folder / "run.json")
    if not all(c in results.columns for c in CONDITION_COLUMNS):
        results = _legacy_condition_columns(results, meta)
    problems = pd.DataFrame()
    if (folder / "problems.csv").is_file():
        try:
            problems = pd.read_csv(folder / "problems.csv", dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            problems = pd.DataFrame()
        except (pd.errors.ParserError, UnicodeDecodeError) as e:
            log.warning("%s is not readable (%s); problems are not listed", folder / "problems.csv", e)
    if meta.get("status") == "running":
        log.warning("%s: run.json says the run is still running; the report shows what results.csv holds",
                    folder)
    return Run(folder, results, meta, problems)


def _legacy_condition_columns(results: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """A results.csv written before the condition columns existed: each attack condition's label is rebuilt
    from the suite recorded in run.json (``bench.suites.suite.attack_label``: built from the fields, never parsed
    back), and its columns looked up by that label. Perturbation rows get empty columns."""
    from bench.suites.suite import attack_label

    by_label: dict[str, dict[str, str]] = {}
    for c in (meta.get("suite") or {}).get("conditions", []):
        if not isinstance(c, dict) or c.get("kind") != "attack":
            continue
        attack, source, through = str(c.get("attack") or c.get("label")), c.get("source"), c.get("through")
        by_label[attack_label(attack, source, through)] = {
            "adv_attack": attack, "source": source or "",
            "through": f"{through['family']}@{int(through['severity'])}" if through else ""}
    empty = dict.fromkeys(CONDITION_COLUMNS, "")
    rows = [by_label.get(f, empty) if k == "attack" else empty for f, k in zip(results["family"], results["kind"])]
    return results.assign(**{c: [r[c] for r in rows] for c in CONDITION_COLUMNS})


def conditions(results: pd.DataFrame) -> list[tuple[str, int]]:
    """Every (family, severity) in the table: clean first, then in the table's order."""
    conds = list(dict.fromkeys(zip(results["family"], results["severity"].astype(int))))
    return sorted(conds, key=lambda c: c != CLEAN)


def families(results: pd.DataFrame) -> list[str]:
    """Families other than clean, in the table's order."""
    return [f for f in dict.fromkeys(results["family"]) if f != "clean"]


def family_kind(results: pd.DataFrame, family: str) -> str:
    kinds = [k for k in results.loc[results["family"] == family, "kind"] if k]
    return kinds[0] if kinds else "perturbation"


def level_params(results: pd.DataFrame, family: str) -> dict[int, dict[str, Any]]:
    """severity -> the level's parameters (from the params JSON column; {} where unknown)."""
    out: dict[int, dict[str, Any]] = {}
    sub = results[results["family"] == family]
    for sev, raw in zip(sub["severity"], sub["params"]):
        if int(sev) in out or not raw:
            continue
        try:
            val = json.loads(raw)
        except json.JSONDecodeError:
            val = {"params": raw}
        out[int(sev)] = val if isinstance(val, dict) else {"params": val}
    return out


def level_labels(results: pd.DataFrame, family: str) -> dict[int, str]:
    """severity -> the level's label (results.csv's level_label, else derived from params)."""
    from bench.suites.labels import level_labels as derive

    sub = results[results["family"] == family]
    have = {}
    if "level_label" in sub:
        have = {int(s): str(v) for s, v in zip(sub["severity"], sub["level_label"]) if isinstance(v, str) and v}
    if len(have) == sub["severity"].nunique():
        return have
    lv = {s: p for s, p in level_params(results, family).items()}
    return {**derive(lv, family_kind(results, family)), **have} if lv else have


def condition_name(results: pd.DataFrame, family: str, severity: int) -> str:
    """``clean`` or ``family level`` with the level in its unit (``pink-noise 20 dB SNR``), never ``s2``
    unless the level has no parameters to name it by."""
    if (family, int(severity)) == CLEAN:
        return "clean"
    return f"{family} {level_labels(results, family).get(int(severity), f's{severity}')}"
