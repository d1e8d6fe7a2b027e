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
from reports import render as R
from reports import tables as T
from reports.load import Run, RunError, condition_name, conditions, families, family_kind, load_run
from reports.safecsv import write_csv

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
        if not isinstance(mod, dict):
            continue
        served = served_model(mod)
        if served is not None:
            items.append((f"model {mod.get('name', '?')}", served))
        else:
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


def served_model(mod: dict[str, Any]) -> str | None:
    """What a model served over HTTP (``--model http://HOST:PORT``) really was, from the /health answer run.json
    keeps: ``serves aasist (architecture aasist, checkpoint sha256 0123...)``; None for a local model."""
    card = mod.get("card") if isinstance(mod.get("card"), dict) else {}
    extra = card.get("extra") if isinstance(card.get("extra"), dict) else {}
    health = extra.get("health") if isinstance(extra.get("health"), dict) else None
    if health is None:
        return None
    digest = health.get("checkpoint_sha256") or mod.get("sha256")
    what = [f"architecture {health['architecture']}"] if health.get("architecture") else []
    what += [f"checkpoint sha256 {str(digest)[:16]}"] if digest else ["no checkpoint digest given by the service"]
    return f"a service at this URL serving {health.get('model') or 'an unnamed model'} ({', '.join(what)})"


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
        row: list[tuple[str, Any]] = [(condition_name(run.results, fam, sev),) * 2]
        for m in models:
            b, s = P._split(scores, m, fam, sev)
            v = min_tdcf(b, s, parts["target"], parts["nontarget"], parts["spoof"]) if b.size and s.size else np.nan
            row.append((T.ratio(v) if np.isfinite(v) else "–", T._num(v)))
        rows.append(row)
    return T.Table("min t-DCF (ASVspoof 2019 formula)", ["condition", *models], rows,
                   caption="From asv_scores.csv in the run folder; lower is better.", key="tdcf")


BY_CHOICES = ("speaker", "language", "attack")


def breakdown(scores: pd.DataFrame, column: str, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """EER per model x condition x value of a manifest column of scores.csv (``speaker``, ``language``):
    that group's bona fide against its spoofs; for ``attack`` (the spoof generator), all bona fide
    against that generator's spoofs."""
    from bench.metrics import summarize

    if column not in scores.columns:
        raise RunError(f"scores.csv has no {column!r} column (the manifest had none, or the run predates it); "
                       f"its columns: {', '.join(scores.columns)}")
    df = scores[np.isfinite(scores["score"].to_numpy(float))].astype({column: str})
    out = summarize(df, ["model", "family", "severity", column], n_boot=n_boot, seed=seed)
    order = {c: i for i, c in enumerate(conditions(scores))}
    models = {m: i for i, m in enumerate(dict.fromkeys(scores["model"]))}
    key = [(models[m], order.get((f, int(s)), 0)) for m, f, s in zip(out["model"], out["family"], out["severity"])]
    return out.iloc[sorted(range(len(out)), key=lambda i: key[i])].reset_index(drop=True)


def breakdown_table(df: pd.DataFrame, results: pd.DataFrame, column: str, model: str, limit: int = 40) -> T.Table:
    """Rows = conditions, columns = the values of ``column`` (at most ``limit``): EER (%) for one model."""
    sub = df[df["model"] == model]
    values = list(dict.fromkeys(v for v in sub[column] if v != "-"))[:limit]
    rows = []
    for (fam, sev), g in sub.groupby(["family", "severity"], sort=False):
        name = condition_name(results, fam, int(sev))
        e = g.set_index(column)["eer"]
        rows.append([(name, name)] + [(T.pct(float(e.get(v, np.nan)), 1), T._num(e.get(v, np.nan))) for v in values])
    n_all = sub[column].nunique()
    t = T.Table(f"EER (%) per {column}: {model}", ["condition", *values], rows,
                caption=f"Each cell: the EER of that {column}'s bona fide against its spoofs"
                + (f"; the first {limit} of {n_all} shown, all in by_{column}.csv." if n_all > limit else "."),
                key=f"by-{column}-{model}")
    why = empty_breakdown(sub, column)
    if why:
        t.notes.append(why)
    return t


def empty_breakdown(df: pd.DataFrame, column: str) -> str:
    """Why some values of ``column`` have no EER in any condition (an EER needs both bona fide and spoof
    clips of that value), or '' when every value has one somewhere."""
    if df.empty:
        return ""
    have = df.groupby(column)["eer"].apply(lambda e: bool(np.isfinite(e.to_numpy(float)).any()))
    blank = [v for v, ok in have.items() if not ok]
    if not blank:
        return ""
    counts = df.groupby(column)[["n_bonafide", "n_spoof"]].max()
    shown = ", ".join(f"{v}: {int(counts.at[v, 'n_bonafide'])} bona fide, {int(counts.at[v, 'n_spoof'])} spoof"
                      for v in blank[:4]) + (f" (+{len(blank) - 4} more)" if len(blank) > 4 else "")
    if len(blank) == len(have):
        return (f"no {column} has both bona fide and spoof clips in any condition ({shown}); an EER needs both, so "
                f"the table is empty: score more clips per {column} (a larger --limit, or the full data).")
    return (f"{len(blank)} of {len(have)} {column} values never have both bona fide and spoof clips ({shown}); an "
            "EER needs both, so their columns are empty.")


def build_report(run_dir: str | Path, out: str | Path | None = None, reference: str | None = None,
                 plots: bool = True, by: tuple[str, ...] | list[str] = (), style: str = "screen",
                 calibration: list[str] | None = None) -> Report:
    """Write every table, plot and the HTML page of one run; returns what was written.

    ``by`` adds breakdowns from scores.csv's manifest columns (``speaker``, ``language``), written as
    ``by_<column>.csv`` and shown per model. ``style``: ``screen`` (figures sized for the HTML page) or
    ``paper`` (every figure one column of a two-column article wide, 8.5 cm, no text under 6 pt).
    ``calibration``: CAL.json files, applied to the run's scores into ``results_calibrated.csv`` (see
    :mod:`reports.calibrated`)."""
    from reports.figure import STYLES

    if style not in STYLES:
        raise RunError(f"--style {style!r}: choose {' or '.join(STYLES)}")
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
    for s in run.meta.get("skipped") or []:   # --skip-unavailable: named, never silently absent from the figures
        if isinstance(s, dict):
            rep.notes.append(f"SKIPPED {s.get('family')} (severities {', '.join(map(str, s.get('severities', [])))}):"
                             f" it could not run here and is in no table or figure: {s.get('reason', '')}")
    if len(run.problems):
        n_bad = int((run.problems["stage"] != "level").sum()) if "stage" in run.problems else len(run.problems)
        if n_bad:
            rep.notes.append(f"{n_bad} inputs could not be used (see problems.csv and the last section).")
        if n_bad < len(run.problems):
            rep.notes.append(f"{len(run.problems) - n_bad} usable inputs carry a warning (stage 'level' in "
                             "problems.csv, e.g. a float file far above full scale).")

    bad = [b for b in by if b not in BY_CHOICES]
    if bad:
        raise RunError(f"--by {', '.join(bad)}: choose from {', '.join(BY_CHOICES)}")
    competent, ref = _competent(res, models, reference, rep)
    deg = T.degradation(competent, ref, scores=scores)
    rep.degradation = deg
    write_csv(T.rounded(deg), out / "degradation.csv")
    rep.files["degradation.csv"] = out / "degradation.csv"

    fam_tables = [T.eer_table(res, f, models) for f in families(res)]
    deg_tables = T.degradation_tables(deg)
    tdcf = asv_table(run, models)
    if tdcf is None:
        rep.notes.append(NO_TDCF)
    by_attack = run.by_attack
    gen_tables = [t for m in models if by_attack is not None and (t := T.generator_table(by_attack, m))]
    by_tables = []
    for col in by:
        if scores is None:
            raise RunError(f"--by {col} needs scores.csv in {run.path}")
        bd = breakdown(scores, col)
        write_csv(bd, out / f"by_{col}.csv")
        rep.files[f"by_{col}.csv"] = out / f"by_{col}.csv"
        by_tables += [breakdown_table(bd, res, col, m) for m in models]
        why = empty_breakdown(bd, col)
        if why:
            rep.notes.append(f"--by {col}: {why}")
    from reports.operating import operating_tables

    ops = operating_tables(res, models)
    from reports.calibrated import calibration_section, figures as calibration_figures

    cal = calibration_section(run, out, calibration)
    if cal.file is not None and cal.file.parent == out:
        rep.files[cal.file.name] = cal.file
    rep.tables = [T.clean_table(res, models), *fam_tables, *deg_tables, *ops] + ([tdcf] if tdcf else [])
    rep.tables += gen_tables + by_tables + cal.tables
    figures: list[tuple[str, str]] = []   # (file stem under plots/, caption) for Markdown and LaTeX

    title = f"Robustness report: {run.name}"
    page = H.Page(title, banner=DEMO_NOTE + " Do not cite these numbers." if run.is_demo else "")
    page.section("Provenance")
    page.definitions(provenance_items(run))
    for n in rep.notes:
        if n != DEMO_NOTE:
            page.para(n, "note warn" if "could not" in n or "not finished" in n or n.startswith("Competence")
                      or "leave out" in n else "note")

    def add_fig(fig, name: str, alt: str, caption: str = "") -> None:
        from reports.figure import display_width

        base = out / "plots" / slug(name)
        data = P.save_figure(fig, base)
        for ext in data:
            rep.files[f"plots/{base.name}.{ext}"] = base.with_name(f"{base.name}.{ext}")
        figures.append((f"plots/{base.name}", alt))
        page.figure(data["png"], alt, caption, width=display_width(fig))

    page.section("Clean condition")
    page.table(rep.tables[0])
    page.section("Overview")
    if plots:
        add_fig(P.fig_overview(res, models, style=style), "overview", "EER (%) by family and level, one block per "
                "family")
        from reports.plots_quality import fig_eer_vs_pesq

        fig = fig_eer_vs_pesq(res, models, style=style)
        if fig is not None:
            add_fig(fig, "eer-vs-pesq", "EER against the median PESQ of every condition",
                    "How much harm to the listener (PESQ, right = worse) buys how much harm to the detector.")
        else:
            rep.notes.append("results.csv has no PESQ (a run from before the quality columns): no EER-vs-PESQ plot.")
            page.para(rep.notes[-1], "note")
    for t in deg_tables:
        page.table(t)
    if len(models) < 2:
        page.para("mCE and relative CE are not shown: they compare models against a reference model, and this "
                  "run has one model (compare runs with `bench compare`).", "note")
    for fam, t in zip(families(res), fam_tables):
        page.section(f"{'Attack' if family_kind(res, fam) == 'attack' else 'Family'}: {fam}")
        page.table(t)
        if not plots:
            continue
        attack = family_kind(res, fam) == "attack"
        add_fig(P.fig_eer_curve(res, fam, models, style=style), f"eer-{fam}",
                f"EER against {'budget' if attack else 'level'}: {fam}")
        if scores is not None:
            add_fig(P.fig_histograms(scores, res, fam, models, style=style), f"hist-{fam}",
                    f"Score histograms: {fam}")
            add_fig(P.fig_det(scores, res, fam, models, style=style), f"det-{fam}", f"DET curves: {fam}")
    if plots and scores is None:
        rep.notes.append("scores.csv is missing: no DET curves or score histograms.")
        page.para(rep.notes[-1], "note warn")
    if ops:
        page.section("Operating point (clean threshold)")
        for t in ops:
            page.table(t)
    if cal.tables:
        page.section("Calibration and fusion under stress")
        for t in cal.tables:
            page.table(t)
        for fig, name, alt, caption in calibration_figures(cal, res) if plots else ():
            add_fig(fig, name, alt, caption)
    if tdcf is not None:
        page.section("min t-DCF")
        page.table(tdcf)
    if gen_tables:
        page.section("Spoof generators")
        for t in gen_tables:
            page.table(t)
    for col in by:
        page.section(f"By {col}")
        for t in by_tables:
            if t.key.startswith(f"by-{col}-"):
                page.table(t)
    if len(run.problems):
        page.section("Inputs that could not be used")
        cols = [c for c in ("utt_id", "stage", "family", "severity", "model", "reason") if c in run.problems]
        shown = run.problems[cols].head(200)
        page.table(T.frame_table(shown, f"problems.csv (first {len(shown)} of {len(run.problems)})", key="problems"))

    md = [f"# {R.md_escape(title)}", ""] + [f"> {R.md_escape(n)}" for n in rep.notes] + [""]
    md += [f"- **{R.md_escape(k)}**: {R.md_escape(v)}" for k, v in provenance_items(run)] + [""]
    md += [R.to_markdown(t) for t in rep.tables]
    if figures:
        md += ["## Figures", ""]
        md += [f"![{R.md_escape(c)}]({f}.png)\n\n{R.md_escape(c)} ([SVG]({f}.svg), [PDF]({f}.pdf))\n"
               for f, c in figures]
    _write(out / "report.md", "\n".join(md), rep)
    _write(out / "report.tex", R.latex_document(rep.tables, title, [(f + ".pdf", c) for f, c in figures]), rep)
    _write(out / "report.html", page.render(), rep)
    log.info("report of %s written to %s", run.path, out)
    return rep


def _competent(res: pd.DataFrame, models: list[str], reference: str | None,
               rep: Report) -> tuple[pd.DataFrame, str | None]:
    """The results the cross-model aggregates use (at-chance and inverted models left out, with notes), and
    the reference model of the mCE (the first competent model unless a competent one was asked for)."""
    from bench.metrics.competence import exclusion_note, flagged

    flags = flagged(res)
    rep.notes.extend(f"Competence check: {msg}" for msg in flags.values())
    keep = [m for m in models if m not in flags]
    if flags:
        rep.notes.append(exclusion_note(list(flags), "The degradation (mean increase, CE, mCE) tables"))
    ref = reference if reference in keep else (keep[0] if keep else None)
    if reference is not None and reference != ref:
        rep.notes.append(f"--reference {reference} is at chance or inverted; the mCE reference is {ref} instead")
    return res[res["model"].isin(keep)], ref


def _write(path: Path, text: str, rep: Report) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    rep.files[path.name] = path
