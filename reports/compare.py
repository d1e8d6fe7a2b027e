"""`bench compare`: several runs side by side, with differences against the first run.

Every model of every run becomes a column label ``model@run`` (run = the folder's name). Each model of
a later run is compared with a model of the first run (paired by name, else in order: see
:mod:`reports.pairing`). A difference ``EER(model@run) - EER(reference)`` is marked significant when
its 95% interval excludes 0:

* ``paired``: when both runs have scores.csv and the condition holds the same utterances (utt_id and
  label) on both sides, the interval of the difference comes from a paired bootstrap over utterances
  (the same resampled utterances on both sides);
* ``ci-overlap``: otherwise, when the two EERs' own bootstrap intervals (results.csv) do not overlap
  (a conservative test);
* ``none``: no interval available; never marked.

Runs whose data (run.json data spec, utterance counts) or conditions ((family, severity) set, level
parameters) differ are refused unless ``force``; then only the common conditions are compared and the
page lists what differs.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from reports import html as H
from reports import plots as P
from reports import render as R
from reports import tables as T
from reports.load import CLEAN, Run, RunError, condition_name, conditions, families, load_run
from reports.pairing import differences, pair_models, paired_diff_ci
from reports.safecsv import write_csv

log = logging.getLogger(__name__)

COLUMNS = ["family", "severity", "label", "run", "model", "eer", "eer_ci_low", "eer_ci_high", "reference",
           "diff", "diff_ci_low", "diff_ci_high", "significant", "method"]


class CompareRefused(RunError):
    """The runs differ in data or conditions (use force to compare anyway)."""

    def __init__(self, diffs: list[str]):
        self.diffs = diffs
        super().__init__("the runs are not comparable:\n  - " + "\n  - ".join(diffs)
                         + "\nuse --force to compare their common conditions anyway")


@dataclass
class Comparison:
    runs: list[Run]
    table: pd.DataFrame                      # long, one row per label x condition (COLUMNS)
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)   # model@run -> competence message

    def combined_results(self) -> pd.DataFrame:
        """A results-like table whose model column is the ``model@run`` label (for the plots)."""
        t = self.table.rename(columns={"model": "orig_model"}).rename(columns={"label": "model"})
        params = {}
        for r in self.runs:
            params.update({(f, int(s)): (k, p, lab) for f, s, k, p, lab in
                           zip(r.results["family"], r.results["severity"], r.results["kind"], r.results["params"],
                               r.results["level_label"])})
        for i, col in enumerate(("kind", "params", "level_label")):
            t[col] = [params.get((f, int(s)), ("", "", ""))[i] for f, s in zip(t["family"], t["severity"])]
        return t


def display_names(cmp: "Comparison") -> dict[str, str]:
    """label (model@run) -> what pages and legends show: the model's name where no other run has a model
    of that name, else ``model (run K)`` (K = the run's position, listed at the top of the page)."""
    names = run_labels(cmp.runs)
    t = cmp.table.drop_duplicates("label").set_index("label")
    count = t["model"].value_counts()
    out = {}
    for lab in cmp.labels:
        m, run = t.at[lab, "model"], t.at[lab, "run"]
        out[lab] = m if count[m] == 1 else f"{m} (run {names.index(run) + 1})"
    return out


def run_labels(runs: Sequence[Run]) -> list[str]:
    """Unique display names of the runs (folder names, #2 .. for repeats)."""
    out: list[str] = []
    for r in runs:
        name, k = r.name, 2
        while name in out:
            name, k = f"{r.name}#{k}", k + 1
        out.append(name)
    return out


def compare_runs(dirs: Sequence[str | Path], force: bool = False, n_boot: int = 200, seed: int = 0) -> Comparison:
    if len(dirs) < 2:
        raise RunError("give at least two run folders to compare")
    runs = [load_run(d) for d in dirs]
    diffs = differences(runs)
    if diffs and not force:
        raise CompareRefused(diffs)
    names = run_labels(runs)
    common = set(conditions(runs[0].results))
    for r in runs[1:]:
        common &= set(conditions(r.results))
    if not common:
        raise RunError("the runs share no (family, severity) condition: nothing to compare")
    order = [c for c in conditions(runs[0].results) if c in common]
    notes: list[str] = []
    refs: list[dict[str, str]] = [{m: "" for m in runs[0].models}]
    for r, name in zip(runs[1:], names[1:]):
        pairs, pn = pair_models(r.models, runs[0].models)
        notes += [f"{name}: {n}" for n in pn]
        refs.append({a: f"{b}@{names[0]}" for a, b in pairs})
    idx = [r.results.set_index(["model", "family", "severity"]) for r in runs]
    grouped = [_group_scores(r) for r in runs]
    rows: list[dict[str, Any]] = []
    for k, (r, name) in enumerate(zip(runs, names)):
        if k:
            log.info("comparing %s with %s (paired bootstrap, %d resamples per condition)", name, names[0], n_boot)
        for m in r.models:
            ref = refs[k].get(m, "")
            ref_model = ref.rsplit("@", 1)[0] if ref else ""
            for fam, sev in order:
                cell = _cell(idx[k], m, fam, sev)
                row = {"family": fam, "severity": sev, "label": f"{m}@{name}", "run": name, "model": m, **cell,
                       "reference": ref, "diff": np.nan, "diff_ci_low": np.nan, "diff_ci_high": np.nan,
                       "significant": False, "method": ""}
                if ref:
                    base = _cell(idx[0], ref_model, fam, sev)
                    row.update(_difference(cell, base, grouped[k].get((m, fam, sev)),
                                           grouped[0].get((ref_model, fam, sev)), n_boot, seed))
                rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    labels = list(dict.fromkeys(table["label"]))
    from bench.metrics.competence import exclusion_note, flagged

    excluded = {f"{m}@{name}": msg for r, name in zip(runs, names) for m, msg in flagged(r.results).items()}
    notes += [f"Competence check ({lab.rsplit('@', 1)[1]}): {msg}" for lab, msg in excluded.items()]
    if excluded:
        notes.append(exclusion_note(list(excluded), "The mean differences"))
    return Comparison(runs, table, diffs, notes, labels, excluded)


def _group_scores(run: Run) -> dict[tuple[str, str, int], pd.DataFrame]:
    s = run.scores
    if s is None:
        return {}
    return {(m, f, int(sv)): g for (m, f, sv), g in s.groupby(["model", "family", "severity"], sort=False)}


def _cell(idx: pd.DataFrame, model: str, fam: str, sev: int) -> dict[str, float]:
    key = (model, fam, sev)
    if key not in idx.index:
        return {"eer": np.nan, "eer_ci_low": np.nan, "eer_ci_high": np.nan}
    r = idx.loc[key]
    return {"eer": float(r["eer"]), "eer_ci_low": float(r["eer_ci_low"]), "eer_ci_high": float(r["eer_ci_high"])}


def _difference(cell: dict, base: dict, sc: pd.DataFrame | None, sc0: pd.DataFrame | None,
                n_boot: int, seed: int) -> dict[str, Any]:
    d = cell["eer"] - base["eer"]
    out: dict[str, Any] = {"diff": d, "diff_ci_low": np.nan, "diff_ci_high": np.nan, "significant": False,
                           "method": "none"}
    if not np.isfinite(d):
        return out
    ci = paired_diff_ci(sc0, sc, n_boot=n_boot, seed=seed) if sc is not None and sc0 is not None else None
    if ci is not None:
        out.update(diff_ci_low=ci[0], diff_ci_high=ci[1], significant=bool(ci[0] > 0 or ci[1] < 0),
                   method="paired")
    elif all(np.isfinite(v) for v in (cell["eer_ci_low"], cell["eer_ci_high"], base["eer_ci_low"],
                                      base["eer_ci_high"])):
        apart = cell["eer_ci_low"] > base["eer_ci_high"] or cell["eer_ci_high"] < base["eer_ci_low"]
        out.update(significant=bool(apart), method="ci-overlap")
    return out


# ---------------------------------------------------------------- views
def side_by_side(cmp: Comparison, family: str, names: dict[str, str] | None = None
                 ) -> tuple[T.Table, dict[tuple[int, int], str]]:
    """Rows = model@run (or ``names[label]``), columns = clean then each level (in its unit); later runs'
    cells carry (Δ points, * when significant)."""
    names = names or {}
    t = cmp.table
    sevs = sorted(int(s) for s in t.loc[t["family"] == family, "severity"].unique() if int(s) != 0)
    cols = [("clean", CLEAN)] + [(f"s{s}", (family, s)) for s in sevs]
    by = t.set_index(["label", "family", "severity"])
    rows, classes = [], {}
    for i, lab in enumerate(cmp.labels):
        row: list[tuple[str, Any]] = [(names.get(lab, lab), names.get(lab, lab))]
        for j, (_, key) in enumerate(cols, start=1):
            if (lab, *key) not in by.index:
                row.append(("–", None))
                continue
            r = by.loc[(lab, *key)]
            text = T.eer_cell(r["eer"], r["eer_ci_low"], r["eer_ci_high"])
            if r["reference"] and np.isfinite(r["diff"]):
                text += f" ({100 * r['diff']:+.2f}{'*' if r['significant'] else ''})"
                if r["significant"]:
                    classes[(i, j)] = "sig" if r["diff"] > 0 else "better"
            row.append((text, T._num(r["eer"])))
        rows.append(row)
    cap = ("Cells: EER % [95% CI]; for later runs (difference in EER points against the paired model of "
           f"{cmp.runs[0].name}; * = significant: its 95% interval excludes 0).")
    lv = T.level_caption(cmp.runs[0].results, family)
    heads = T.column_labels(cmp.runs[0].results, family) if family in set(cmp.runs[0].results["family"]) else []
    heads = heads if len(heads) == len(cols) else [c for c, _ in cols]
    return T.Table(f"EER (%) against severity: {family}", ["model" if names else "model@run", *heads], rows,
                   caption=cap + (f" Levels: {lv}." if lv else ""), key=f"cmp-{family}"), classes


def summary(cmp: Comparison) -> pd.DataFrame:
    """Per compared label: conditions, mean and largest difference, significant rises and falls."""
    rows = []
    for lab, g in cmp.table[cmp.table["reference"] != ""].groupby("label", sort=False):
        if lab in cmp.excluded or g["reference"].iloc[0] in cmp.excluded:
            continue   # at chance or inverted: a mean difference would say nothing (cmp.notes says so)
        g = g[np.isfinite(g["diff"].to_numpy(float))]
        if g.empty:
            continue
        worst = g.loc[g["diff"].idxmax()]
        rows.append({"label": lab, "reference": g["reference"].iloc[0], "conditions": len(g),
                     "mean_diff": float(g["diff"].mean()), "max_diff": float(worst["diff"]),
                     "max_at": condition_name(cmp.runs[0].results, worst["family"], int(worst["severity"])),
                     "significant_worse": int((g["significant"] & (g["diff"] > 0)).sum()),
                     "significant_better": int((g["significant"] & (g["diff"] < 0)).sum()),
                     "method": ",".join(sorted(set(g["method"])))})
    return pd.DataFrame(rows, columns=["label", "reference", "conditions", "mean_diff", "max_diff", "max_at",
                                       "significant_worse", "significant_better", "method"])


def default_out(dirs: Sequence[str | Path]) -> Path:
    """compare-<hash of the run folders> beside the first run folder."""
    key = "\n".join(str(Path(d).resolve()) for d in dirs)
    return Path(dirs[0]).resolve().parent / f"compare-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def write_compare(cmp: Comparison, out: str | Path, plots: bool = True, style: str = "screen") -> dict[str, Path]:
    """compare.csv, compare.md, compare.html (and plots/ unless ``plots`` is False) in ``out``; ``style`` as
    :func:`reports.report.build_report`'s."""
    from reports.figure import STYLES, display_width

    if style not in STYLES:
        raise RunError(f"--style {style!r}: choose {' or '.join(STYLES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    write_csv(cmp.table, out / "compare.csv")
    files["compare.csv"] = out / "compare.csv"
    summ = summary(cmp)
    shown = display_names(cmp)
    s_tab = T.Table("Differences against the first run", ["model (run)", "reference", "conditions",
                                                         "mean Δ (points)", "largest Δ (points)", "at",
                                                         "significantly worse", "significantly better", "test"],
                    [[(shown.get(r.label, r.label),) * 2, (shown.get(r.reference, r.reference),) * 2,
                      (str(r.conditions), r.conditions),
                      (f"{100 * r.mean_diff:+.2f}", r.mean_diff), (f"{100 * r.max_diff:+.2f}", r.max_diff),
                      (r.max_at, r.max_at), (str(r.significant_worse), r.significant_worse),
                      (str(r.significant_better), r.significant_better), (r.method, r.method)]
                     for r in summ.itertuples()],
                    caption="Δ = EER(model@run) - EER(reference), in EER points; positive = worse.", key="summary")
    fams = [f for f in families(cmp.table) if f != "clean"]
    views = [side_by_side(cmp, f) for f in fams]
    pages = [side_by_side(cmp, f, shown) for f in fams]
    title = "Comparison: " + " vs ".join(run_labels(cmp.runs))
    demo = any(r.is_demo for r in cmp.runs)
    page = H.Page(title, banner="Data: the built-in demo set - a smoke test, not a benchmark." if demo else "",
                  wrap=True)
    page.section("Runs")
    page.definitions([(f"run {k}: {n}", f"{r.path} (data {r.meta.get('data', {}).get('spec', '?')}, models "
                                        f"{', '.join(r.models)})")
                      for k, (n, r) in enumerate(zip(run_labels(cmp.runs), cmp.runs), start=1)])
    if cmp.differences:
        page.para("Compared with --force although the runs differ:", "note warn")
        for d in cmp.differences:
            page.para("• " + d, "note warn")
    for n in cmp.notes:
        page.para(n, "note")
    page.table(s_tab)
    combined = cmp.combined_results()
    if plots:
        (out / "plots").mkdir(exist_ok=True)
        fig = P.fig_overview(combined, cmp.labels, names=shown, style=style)
        data = P.save_figure(fig, out / "plots" / "overview")
        page.figure(data["png"], "EER (%) by family and level, one block per family", width=display_width(fig))
    for fam, (tab, classes) in zip(fams, pages):
        page.section(f"Family: {fam}")
        page.table(tab, classes)
        if plots:
            from reports.report import slug

            fig = P.fig_eer_curve(combined, fam, cmp.labels, names=shown, style=style)
            data = P.save_figure(fig, out / "plots" / f"eer-{slug(fam)}")
            page.figure(data["png"], f"EER against level: {fam}", width=display_width(fig))
    md = [f"# {R.md_escape(title)}", ""]
    md += [f"> Compared with --force although the runs differ: {R.md_escape(d)}" for d in cmp.differences]
    md += [f"> {R.md_escape(n)}" for n in cmp.notes] + [""]
    md += [R.to_markdown(s_tab)] + [R.to_markdown(v[0]) for v in views]
    for name, text in (("compare.md", "\n".join(md)), ("compare.html", page.render())):
        (out / name).write_text(text, encoding="utf-8")
        files[name] = out / name
    return files
