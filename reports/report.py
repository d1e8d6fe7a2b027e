"""`bench report`: one run folder -> report/ with Markdown, LaTeX, CSV, PNG plots and one HTML page.

Files written into ``<run>/report/`` (or ``out``): ``report.md``, ``report.tex`` (tables only, booktabs),
``report.html`` (every table and plot, self-contained), ``degradation.csv`` (model x family: clean EER,
mean EER, mean increase, CE, relative CE), ``plots/*.png``.

min t-DCF needs ASV scores. A run folder may hold ``asv_scores.csv`` (columns ``label`` in
target/nontarget/spoof and ``score``, ASVspoof's ASV score lists); then every condition gets a
min t-DCF (ASVspoof 2019 formula). Without it the report says min t-DCF is not reported.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import html as H
from reports import plots as P
from reports import tables as T
from reports.load import CLEAN, Run, RunError, conditions, families, family_kind, load_run

log = logging.getLogger(__name__)

DEMO_NOTE = "Data: the built-in demo set - a smoke test, not a benchmark."
NO_TDCF = ("min t-DCF is not reported: this run has no ASV scores (put asv_scores.csv with columns "
           "label = target/nontarget/spoof and score in the run folder to get it).")


@dataclass
class Report:
    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    tables: list[T.Table] = field(default_factory=list)
    degradation: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)


def slug(s: str) -> str:
    """A file-name-safe version of an untrusted name (plus a short hash when characters were dropped)."""
    import hashlib

    clean = re.sub(r"[^A-Za-z0-9_.+-]+", "_", s).strip("._") or "x"
    if clean != s:
        clean += "-" + hashlib.sha1(s.encode()).hexdigest()[:6]
    return clean[:80]


def provenance_items(run: Run) -> list[tuple[str, Any]]:
    m = run.meta
    data = m.get("data", {}) if isinstance(m.get("data"), dict) else {}
    suite = m.get("suite", {}) if isinstance(m.get("suite"), dict) else {}
    vers = m.get("versions", {}) if isinstance(m.get("versions"), dict) else {}
    items: list[tuple[str, Any]] = [("run folder", str(run.path))]
    if data:
        items.append(("data", f"{data.get('name', '?')} (spec {data.get('spec', '?')}): "
                              f"{data.get('n_utterances', '?')} utterances, {data.get('n_bonafide', '?')} bona fide"))
    if suite:
        items.append(("suite", f"{suite.get('name', '?')} v{suite.get('version', '?')} "
                               f"sha256 {str(suite.get('sha256', ''))[:12]}"))
    for mod in m.get("models", []) if isinstance(m.get("models"), list) else []:
        if isinstance(mod, dict):
            items.append((f"model {mod.get('name', '?')}", f"checkpoint {mod.get('checkpoint', '?')} "
                                                          f"sha256 {str(mod.get('sha256') or '')[:16]}"))
    if isinstance(m.get("policy"), dict):
        items.append(("input policy", m["policy"].get("name", m["policy"])))
    for k in ("seed", "git_revision", "started", "finished", "status"):
        if k in m:
            items.append((k, m[k]))
    if vers:
        items.append(("versions", ", ".join(f"{k} {v}" for k, v in vers.items()
                                            if k in ("python", "torch", "numpy", "scipy", "av") and v)))
    return items


def asv_table(run: Run, models: list[str]) -> T.Table | None:
    """min t-DCF per condition x model when the run folder holds asv_scores.csv, else None."""
    path = run.path / "asv_scores.csv"
    scores = run.scores
    if not path.is_file() or scores is None:
        return None
    from bench.metrics import min_tdcf

    asv = pd.read_csv(path)
    if not {"label", "score"} <= set(asv.columns):
        raise RunError(f"{path} needs columns label (target/nontarget/spoof) and score, has {list(asv.columns)}")
    parts = {k: asv.loc[asv["label"] == k, "score"].to_numpy(float) for k in ("target", "nontarget", "spoof")}
    if any(v.size == 0 for v in parts.values()):
        raise RunError(f"{path} must hold target, nontarget and spoof rows")
    rows = []
    for fam, sev in conditions(run.results):
        row: list[tuple[str, Any]] = [("clean" if (fam, sev) == CLEAN else f"{fam} s{sev}",) * 2]
        for m in models:
            b, s = P._split(scores, m, fam, sev)
            v = min_tdcf(b, s, parts["target"], parts["nontarget"], parts["spoof"]) if b.size and s.size else np.nan
            row.append((T.ratio(v) if np.isfinite(v) else "–", T._num(v)))
        rows.append(row)
    return T.Table("min t-DCF (ASVspoof 2019 formula)", ["condition", *models], rows,
                   caption="From asv_scores.csv in the run folder; lower is better.", key="tdcf")


def build_report(run_dir: str | Path, out: str | Path | None = None, reference: str | None = None,
                 plots: bool = True) -> Report:
    """Write every table, plot and the HTML page of one run; returns what was written."""
    run = load_run(run_dir)
    out = Path(out) if out else run.path / "report"
    (out / "plots").mkdir(parents=True, exist_ok=True)
    models = run.models
    if reference is not None and reference not in models:
        raise RunError(f"--reference {reference!r} is not a model of {run.path}; its models: {', '.join(models)}")
    rep = Report(out)
    res = run.results
    scores = run.scores
    if run.is_demo:
        rep.notes.append(DEMO_NOTE)
    if run.meta.get("status") == "running":
        rep.notes.append("run.json says this run had not finished: the tables show what results.csv holds.")
    if len(run.problems):
        n_bad = int((run.problems["stage"] != "level").sum()) if "stage" in run.problems else len(run.problems)
        if n_bad:
            rep.notes.append(f"{n_bad} inputs could not be used (see problems.csv and the last section).")
        if n_bad < len(run.problems):
            rep.notes.append(f"{len(run.problems) - n_bad} usable inputs carry a warning (stage 'level' in "
                             "problems.csv, e.g. a float file far above full scale).")

    deg = T.degradation(res, reference or (models[0] if models else None))
    rep.degradation = deg
    deg.to_csv(out / "degradation.csv", index=False)
    rep.files["degradation.csv"] = out / "degradation.csv"

    fam_tables = [T.eer_table(res, f, models) for f in families(res)]
    deg_tables = T.degradation_tables(deg)
    tdcf = asv_table(run, models)
    if tdcf is None:
        rep.notes.append(NO_TDCF)
    from reports.operating import operating_table

    op = operating_table(res, models)
    rep.tables = [T.clean_table(res, models), *fam_tables, *deg_tables] + ([op] if op else []) \
        + ([tdcf] if tdcf else [])

    title = f"Robustness report: {run.name}"
    page = H.Page(title, banner=DEMO_NOTE + " Do not cite these numbers." if run.is_demo else "")
    page.section("Provenance")
    page.definitions(provenance_items(run))
    for n in rep.notes:
        if n != DEMO_NOTE:
            page.para(n, "note warn" if "could not" in n or "not finished" in n else "note")

    def add_fig(fig, name: str, alt: str, caption: str = "") -> None:
        png = P.png_bytes(fig)
        path = out / "plots" / f"{slug(name)}.png"
        path.write_bytes(png)
        rep.files[f"plots/{path.name}"] = path
        page.figure(png, alt, caption)

    page.section("Clean condition")
    page.table(rep.tables[0])
    page.section("Overview")
    if plots:
        add_fig(P.fig_heatmap(res, models), "heatmap", "EER heatmap of every model and condition")
    for t in deg_tables:
        page.table(t)
    for fam, t in zip(families(res), fam_tables):
        page.section(f"{'Attack' if family_kind(res, fam) == 'attack' else 'Family'}: {fam}")
        page.table(t)
        if not plots:
            continue
        attack = family_kind(res, fam) == "attack"
        add_fig(P.fig_eer_curve(res, fam, models), f"eer-{fam}",
                f"EER against {'budget' if attack else 'severity'}: {fam}")
        if scores is not None:
            add_fig(P.fig_det(scores, res, fam, models), f"det-{fam}", f"DET curves: {fam}")
            add_fig(P.fig_histograms(scores, res, fam, models), f"hist-{fam}", f"Score histograms: {fam}")
    if plots and scores is None:
        rep.notes.append("scores.csv is missing: no DET curves or score histograms.")
        page.para(rep.notes[-1], "note warn")
    if op is not None:
        page.section("Operating point (clean threshold)")
        page.table(op)
    if tdcf is not None:
        page.section("min t-DCF")
        page.table(tdcf)
    if len(run.problems):
        page.section("Inputs that could not be used")
        cols = [c for c in ("utt_id", "stage", "family", "severity", "model", "reason") if c in run.problems]
        shown = run.problems[cols].head(200)
        page.table(T.frame_table(shown, f"problems.csv (first {len(shown)} of {len(run.problems)})", key="problems"))

    md = [f"# {T.md_escape(title)}", ""] + [f"> {T.md_escape(n)}" for n in rep.notes] + [""]
    md += [f"- **{T.md_escape(k)}**: {T.md_escape(v)}" for k, v in provenance_items(run)] + [""]
    md += [T.to_markdown(t) for t in rep.tables]
    _write(out / "report.md", "\n".join(md), rep)
    _write(out / "report.tex", T.latex_document(rep.tables, title), rep)
    _write(out / "report.html", page.render(), rep)
    log.info("report of %s written to %s", run.path, out)
    return rep


def _write(path: Path, text: str, rep: Report) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    rep.files[path.name] = path
