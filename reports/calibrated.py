"""The report's calibration section: calibrated costs per condition (``results_calibrated.csv``), plotted against
severity beside the EER (:mod:`reports.plots_calibration`), and fusions against their members.

``bench report RUN --calibration FILE`` computes the table from the run's scores into ``report/results_calibrated.csv``;
without it, a ``results_calibrated.csv`` that ``bench run --calibration`` left in the run folder is shown.
A fusion is either a CAL.json of kind fusion (model ``fuse:M1+M2`` in the table) or a ``fuse:M1+M2@FILE`` model the
run scored; its members' EERs come from results.csv.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from reports import tables as T
from reports.load import CLEAN, Run, RunError, conditions, families

CAPTION = ("Scores mapped to log-likelihood ratios by the calibration named in the last column (fitted on one "
           "condition, kept for all). Cllr and min Cllr in bits (min: after the best monotone map, by PAV; 1 = "
           "uninformative); actDCF at the Bayes threshold of the calibration's costs and minDCF at the best "
           "threshold, normalised (1 = a detector that always says bona fide or always spoof). actDCF above minDCF, "
           "or Cllr above min Cllr, is the cost of calibration lost under the condition.")
FUSION_CAPTION = ("EER (%) of each member and of the fusion per condition; the last column is the fusion's EER "
                  "minus its best member's (negative: fusing bought robustness there).")


@dataclass
class Section:
    table: pd.DataFrame | None = None
    tables: list[T.Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    file: Path | None = None


def _name(fam: str, sev: int, labels: dict) -> str:
    return "clean" if (fam, sev) == CLEAN else f"{fam} {labels.get((fam, sev)) or f's{sev}'}"


def calibrated_frame(run: Run, out: Path, calibration: Sequence[str] | None) -> tuple[pd.DataFrame | None, Path | None]:
    """The calibrated table: computed from ``calibration`` files into ``out``, else the run folder's, else None."""
    from bench.run.calibrated import FILE, check_models, load_calibrations, write_calibrated

    if calibration:
        try:
            cals = load_calibrations(calibration)
            check_models(cals, run.models, where=str(run.path))
            return write_calibrated(run.path, cals, out / FILE), out / FILE
        except (ValueError, FileNotFoundError) as e:
            raise RunError(str(e)) from None
    path = run.path / FILE
    if not path.is_file():
        return None, None
    return pd.read_csv(path, dtype={"model": str, "family": str, "level_label": str}, keep_default_na=False,
                       na_values=[""]), path


def calibration_tables(cal: pd.DataFrame, results: pd.DataFrame) -> list[T.Table]:
    """One table per calibrated model: rows = conditions, columns Cllr, min Cllr, actDCF, minDCF, EER."""
    labels = {(f, int(s)): lab for f, s, lab in zip(cal["family"], cal["severity"], cal["level_label"])}
    order = {c: i for i, c in enumerate(conditions(results))}
    out = []
    for model, g in cal.groupby("model", sort=False):
        g = g.assign(_o=[order.get((f, int(s)), len(order)) for f, s in zip(g["family"], g["severity"])])
        rows = []
        for _, r in g.sort_values("_o", kind="stable").iterrows():
            name = _name(r["family"], int(r["severity"]), labels)
            rows.append([(name, name)] + [(T.ratio(r[c]), T._num(r[c])) for c in ("cllr", "min_cllr", "actdcf",
                                                                                  "min_dcf")]
                        + [(T.pct(r["eer"]), T._num(r["eer"])), (str(r["calibration"]), str(r["calibration"]))])
        out.append(T.Table(f"Calibration under stress: {model}", ["condition", "Cllr", "min Cllr", "actDCF",
                                                                  "minDCF", "EER %", "calibration"],
                           rows, caption=CAPTION, key=f"calibration-{model}"))
    return out


def _members(name: str) -> list[str]:
    return name[5:].rpartition("@")[0].split("+") if "@" in name else name[5:].split("+")


def fusion_tables(results: pd.DataFrame, cal: pd.DataFrame | None) -> list[T.Table]:
    """Per fusion whose members the run scored: EER of each member and of the fusion per condition."""
    eer = {(m, f, int(s)): float(e) for m, f, s, e in zip(results["model"], results["family"], results["severity"],
                                                         results["eer"])}
    fused = {m: {k[1:]: v for k, v in eer.items() if k[0] == m} for m in dict.fromkeys(results["model"])
             if str(m).lower().startswith("fuse:")}
    if cal is not None and len(cal):
        for m, g in cal.groupby("model", sort=False):
            if str(m).startswith("fuse:") and "@" not in str(m):
                fused[m] = {(f, int(s)): float(e) for f, s, e in zip(g["family"], g["severity"], g["eer"])}
    labels = {(f, int(s)): lab for f, s, lab in zip(results["family"], results["severity"],
                                                    results.get("level_label", pd.Series("", index=results.index)))}
    out = []
    for name, by_cond in fused.items():
        members = _members(name)
        if not all(any(k[0] == m for k in eer) for m in members):
            continue
        rows = []
        for fam, sev in conditions(results):
            if (fam, sev) not in by_cond:
                continue
            mem = [eer.get((m, fam, sev), np.nan) for m in members]
            best = np.nanmin(mem) if np.isfinite(mem).any() else np.nan
            f = by_cond[(fam, sev)]
            cond = _name(fam, sev, labels)
            rows.append([(cond, cond)] + [(T.pct(v), T._num(v)) for v in mem + [f]]
                        + [(T.pct(f - best) if np.isfinite(f - best) else "–", T._num(f - best))])
        if rows:
            out.append(T.Table(f"Fusion against its members: {name}", ["condition", *members, "fusion",
                                                                       "fusion − best member"],
                               rows, caption=FUSION_CAPTION, key=f"fusion-{name}"))
    return out


def calibration_section(run: Run, out: Path, calibration: Sequence[str] | None = None) -> Section:
    """Everything the report shows about calibration and fusion (empty when the run has neither)."""
    table, path = calibrated_frame(run, out, calibration)
    sec = Section(table=table, file=path)
    if table is not None and len(table):
        sec.tables = calibration_tables(table, run.results)
    sec.tables += fusion_tables(run.results, table)
    return sec


def figures(sec: Section, results: pd.DataFrame) -> list[tuple[Any, str, str, str]]:
    """``(figure, file stem, alt text, caption)`` per family: EER, actDCF and Cllr against severity."""
    from reports.plots_calibration import fig_calibration_curve

    if sec.table is None or not len(sec.table):
        return []
    out = []
    for fam in families(results):
        fig = fig_calibration_curve(sec.table, fam)
        if fig is not None:
            out.append((fig, f"calibration-{fam}", f"EER, actDCF and Cllr against severity: {fam}",
                        "Where the detector stays accurate (EER flat) but loses its calibration (actDCF, Cllr up), "
                        "the shipped threshold fails while the EER looks fine."))
    return out
