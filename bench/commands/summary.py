"""The closing summary `bench run` prints: a list of sections, each one function of the run's result.

A section is ``f(result, context) -> Section | None`` (None: nothing to say). Adding an item to the
summary is one function and one line in :data:`SECTIONS`; :func:`render` prints them in order,
tables to stdout and notes to stderr.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

#: a class with fewer clips than this in some condition gets the "CIs are wide" warning
MIN_CLIPS = 30


@dataclass
class Section:
    """What one summary item prints: a table (title, columns, rows of cell texts) and/or note lines."""

    title: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)     # to stderr, one line each


def _pct(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    return "–" if not math.isfinite(v) else f"{100 * v:.1f}"


def _pct0(x: Any) -> str:
    return f"{100 * float(x):.0f}"


def eer_cell(row: pd.Series, with_label: bool = True) -> str:
    """``12.3`` (EER %), below it its 95% CI ``[8–17]`` (whole points: the terminal is narrow; the CSV has
    them exactly), and below that the level's label (``16 kb/s``)."""
    text = _pct(row["eer"])
    if text != "–" and math.isfinite(float(row.get("eer_ci_low", math.nan))):
        text += f"\n[{_pct0(row['eer_ci_low'])}–{_pct0(row['eer_ci_high'])}]"
    label = str(row.get("level_label") or "")
    return f"{text}\n{label}" if with_label and label and label != "clean" else text


def _grid(r: pd.DataFrame, cell: Callable[[pd.Series], str],
          clean_cell: Callable[[pd.Series], str], missing: str = "–") -> tuple[list[str], list[list[str]]]:
    """Columns and rows of a per-condition table: one row per (model,) family, the clean cell, then the
    severities in order, each cell ``cell(results row)``."""
    models = list(dict.fromkeys(r["model"]))
    sevs = sorted({int(s) for s in r["severity"] if int(s) != 0})
    clean = r[r["family"] == "clean"].set_index("model")
    rows = []
    for m in models:
        sub = r[(r["model"] == m) & (r["family"] != "clean")]
        for fam in list(dict.fromkeys(sub["family"])) or ["clean"]:
            g = sub[sub["family"] == fam].set_index("severity")
            cells = [cell(g.loc[s]) if s in g.index else "" for s in sevs]
            c = clean_cell(clean.loc[m]) if m in clean.index else missing
            rows.append(([m] if len(models) > 1 else []) + [fam, c] + cells)
    return (["model"] if len(models) > 1 else []) + ["family", "clean"] + [f"s{s}" for s in sevs], rows


def eer_table(res, ctx: dict) -> Section | None:
    """EER % [95% CI] per condition: one row per (model,) family, severity columns in order, each cell
    with its level's label in the family's unit."""
    if res.results.empty:
        return None
    cols, rows = _grid(res.results, eer_cell, lambda row: eer_cell(row, with_label=False))
    data = ctx.get("data_name", "")
    note = " (demo set: a smoke test, not a benchmark)" if ctx.get("demo") else ""
    return Section(f"EER % [95% CI] by severity on {data}{note}", cols, rows)


def ci_note(res, ctx: dict) -> Section | None:
    return None if res.results.empty else Section(notes=[
        "cells: EER %, its 95% bootstrap CI, the level (exact values: results.csv)"])


def small_classes(res, ctx: dict) -> Section | None:
    r = res.results
    if r.empty:
        return None
    nb, ns = int(r["n_bonafide"].min()), int(r["n_spoof"].min())
    if min(nb, ns) >= MIN_CLIPS:
        return None
    return Section(notes=[f"warning: {nb} bona fide, {ns} spoof clips per condition (< {MIN_CLIPS}): CIs are wide; "
                          "do not cite"])


def op_cell(row: pd.Series) -> str:
    """``12.3`` (FAR % at the clean threshold), below it its 95% CI ``[8–17]``, below that ``FRR 4.0``."""
    far = _pct(row.get("far_at_clean_threshold"))
    if far == "–":
        return ""
    if math.isfinite(float(row.get("far_ci_low", math.nan))):
        far += f"\n[{_pct0(row['far_ci_low'])}–{_pct0(row['far_ci_high'])}]"
    return f"{far}\nFRR {_pct(row.get('frr_at_clean_threshold'))}"


def operating_point(res, ctx: dict) -> Section | None:
    """FAR % [95% CI] and FRR % at each model's clean EER threshold (the deployed operating point), laid out
    like the EER table."""
    r = res.results
    if r.empty or "far_at_clean_threshold" not in r or not r["far_at_clean_threshold"].notna().any():
        return None
    cols, rows = _grid(r, op_cell, op_cell, missing="")
    return Section("FAR % [95% CI] and FRR % at each model's clean EER threshold (the deployed operating point)",
                   cols, rows)


def problems(res, ctx: dict) -> Section | None:
    p = res.problems
    n_warn = int((p["stage"] == "level").sum()) if len(p) and "stage" in p else 0
    n = len(p) - n_warn
    notes = [f"{n} inputs could not be used: see problems.csv (--retry-problems tries them again)"] if n else []
    if n_warn:
        notes.append(f"{n_warn} usable inputs carry a warning (stage 'level' in problems.csv)")
    return Section(notes=notes) if notes else None


def files_and_next_step(res, ctx: dict) -> Section:
    return Section(notes=[f"results in {res.out} (results.csv, results_by_attack.csv, scores.csv, problems.csv, "
                          "run.json)", f"next: bench report {res.out}"])


#: the summary's items, in order; each is one function of (result, context)
def competence(res, ctx: dict) -> Section | None:
    """Models at chance on this data, or with an inverted orientation (bench/metrics/competence.py): never silent."""
    from bench.metrics.competence import check

    c = check(res.results)
    msgs = c.loc[c["status"].isin(["at-chance", "inverted", "undetermined"]), "message"].tolist()
    return Section(notes=[f"competence check: {msg}" for msg in msgs]) if msgs else None


def missing_eer(res, ctx: dict) -> Section | None:
    """Why a cell shows "–": the condition lacks one class (an EER needs bona fide and spoof scores)."""
    r = res.results
    if r.empty:
        return None
    gone = r[~r["eer"].astype(float).apply(math.isfinite)]
    notes = [f"EER –: {row['model']} {row['family']}@{row['severity']} has {int(row['n_bonafide'])} bona fide and "
             f"{int(row['n_spoof'])} spoof scores; an EER needs both classes" for _, row in gone.head(5).iterrows()]
    if len(gone) > 5:
        notes.append(f"EER –: {len(gone) - 5} more conditions lack a class (results.csv: n_bonafide, n_spoof)")
    return Section(notes=notes) if notes else None


def skipped(res, ctx: dict) -> Section | None:
    """Families ``--skip-unavailable`` left out (run.json "skipped", skipped.csv): each named with its reason."""
    recs = (getattr(res, "provenance", None) or {}).get("skipped") or []
    notes = [f"SKIPPED {s['family']} (severities {', '.join(map(str, s['severities']))}): not in these results: "
             f"{s['reason']}" for s in recs]
    return Section(notes=notes) if notes else None


SECTIONS: list[Callable[[Any, dict], Section | None]] = [eer_table, ci_note, operating_point, competence,
                                                         small_classes, missing_eer, problems, skipped,
                                                         files_and_next_step]


def sections(res, ctx: dict | None = None) -> list[Section]:
    return [s for f in SECTIONS if (s := f(res, ctx or {})) is not None]


def render(res, ctx: dict | None = None, out=None, err=None) -> None:
    """Prints every section: tables (rich, fitted to the terminal) to ``out``, notes to ``err``."""
    import sys

    from rich import box
    from rich.table import Table

    from bench.terminal import console

    out_c = console(file=out or sys.stdout)
    err = err or sys.stderr
    for s in sections(res, ctx):
        if s.columns:
            t = Table(title=s.title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                      collapse_padding=True)
            lead = s.columns.index("clean") if "clean" in s.columns else 1
            for i, c in enumerate(s.columns):
                t.add_column(c, justify="left" if i < lead else "right", overflow="ellipsis" if i < lead else "fold",
                             no_wrap=i < lead, min_width=None if i <= lead else 10)
            for r in s.rows:
                t.add_row(*r)
            out_c.print(t)
        for n in s.notes:
            err.write(n + "\n")
