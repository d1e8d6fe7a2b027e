"""Tables of a run: EER against severity per family, relative degradation (mCE on EER), renderers.

Layout of the EER tables (one per family): one row per model, columns ``clean`` (the family-independent
clean condition, family ``clean`` severity 0) then ``s1`` .. ``s5`` (the severities the run has),
cells ``EER% [CI low, CI high]`` with the bootstrap 95% interval from results.csv. The level parameters
of each severity (bitrate, SNR, RT60, attack budget...) are listed in the table's caption.

Relative degradation (ImageNet-C's corruption error applied to EER), per model and family, over the
severities ``s >= 1`` that both the model and the reference model have:

* ``mean_increase`` = mean_s EER(f, s) - EER(clean), in EER points (fractions; x100 for %);
* ``ce`` = sum_s EER_model(f, s) / sum_s EER_ref(f, s)  (1.0 = as robust as the reference);
* ``rel_ce`` = sum_s (EER_model(f, s) - EER_model(clean)) / sum_s (EER_ref(f, s) - EER_ref(clean)),
  ImageNet-C's "relative" CE (NaN when the reference does not degrade at all);
* ``mCE`` = the mean of ``ce`` over families (and ``rel_mCE`` of ``rel_ce``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from reports.load import CLEAN, families, level_params

#: what results.csv stores per cell, shown in the table as EER% [low, high]
CI_COLUMNS = ("eer", "eer_ci_low", "eer_ci_high")
BUDGET_KEYS = ("snr_db", "eps")


@dataclass
class Table:
    """A rendered table: every cell has a display text and a sort value (number or text)."""

    title: str
    columns: list[str]
    rows: list[list[tuple[str, Any]]]
    caption: str = ""
    key: str = ""                    # a stable id (for file names and HTML anchors)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- formatting
def pct(x: float, digits: int = 2) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f}"


def ratio(x: float) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.2f}"


def eer_cell(eer: float, lo: float, hi: float) -> str:
    if not np.isfinite(eer):
        return "–"
    if np.isfinite(lo) and np.isfinite(hi):
        return f"{pct(eer)} [{pct(lo)}, {pct(hi)}]"
    return pct(eer)


def _num(v: Any) -> Any:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f if math.isfinite(f) else None


def format_params(params: dict[str, Any]) -> str:
    """A level's parameters in one short line; chains as step(params)+step(params)."""
    if "steps" in params and isinstance(params["steps"], list) and all(isinstance(s, dict) for s in params["steps"]):
        parts = []
        for s in params["steps"]:
            name = s.get("family") or s.get("attack") or "?"
            parts.append(f"{name}({format_params(s.get('params', {}))})")
        return " + ".join(parts)
    return ", ".join(f"{k}={v}" for k, v in params.items())


def level_caption(results: pd.DataFrame, family: str) -> str:
    lv = level_params(results, family)
    return "; ".join(f"s{s}: {format_params(p)}" for s, p in sorted(lv.items()) if s != 0)


def budget_of(params: dict[str, Any]) -> tuple[str, float] | None:
    """(name, value) of an attack level's budget: snr_db or eps; None when neither is given."""
    for k in BUDGET_KEYS:
        if params.get(k) is not None:
            try:
                return k, float(params[k])
            except (TypeError, ValueError):
                return None
    return None


# ---------------------------------------------------------------- EER grids
def severity_labels(results: pd.DataFrame, family: str) -> list[tuple[str, tuple[str, int]]]:
    """[(column label, (family, severity))]: clean first, then s1.. of the family."""
    sevs = sorted(int(s) for s in results.loc[results["family"] == family, "severity"].unique() if int(s) != 0)
    return [("clean", CLEAN)] + [(f"s{s}", (family, s)) for s in sevs]


def eer_grid(results: pd.DataFrame, family: str, value: str = "eer",
             models: Sequence[str] | None = None) -> pd.DataFrame:
    """Numeric grid (fractions): rows = models, columns = clean, s1, s2 ... of ``family``."""
    models = list(models) if models is not None else list(dict.fromkeys(results["model"]))
    idx = results.set_index(["model", "family", "severity"])[value]
    cols = severity_labels(results, family)
    data = {label: [idx.get((m, f, s), np.nan) for m in models] for label, (f, s) in cols}
    return pd.DataFrame(data, index=pd.Index(models, name="model"), dtype=float)


def eer_table(results: pd.DataFrame, family: str, models: Sequence[str] | None = None) -> Table:
    grids = [eer_grid(results, family, c, models) for c in CI_COLUMNS]
    rows = []
    for m in grids[0].index:
        row: list[tuple[str, Any]] = [(str(m), str(m))]
        for col in grids[0].columns:
            e, lo, hi = (float(g.at[m, col]) for g in grids)
            row.append((eer_cell(e, lo, hi), _num(e)))
        rows.append(row)
    kind = _kind(results, family)
    cap = level_caption(results, family)
    return Table(f"EER (%) against severity: {family}" + (" (attack budgets)" if kind == "attack" else ""),
                 ["model", *grids[0].columns], rows,
                 caption=("Cells: EER % [95% bootstrap CI]. " + (f"Levels: {cap}." if cap else "")).strip(),
                 key=f"eer-{family}")


def clean_table(results: pd.DataFrame, models: Sequence[str] | None = None) -> Table:
    models = list(models) if models is not None else list(dict.fromkeys(results["model"]))
    sub = results[(results["family"] == CLEAN[0]) & (results["severity"] == CLEAN[1])].set_index("model")
    rows = []
    for m in models:
        if m not in sub.index:
            rows.append([(m, m), ("–", None), ("–", None), ("–", None), ("–", None)])
            continue
        r = sub.loc[m]
        rows.append([(m, m), (eer_cell(r["eer"], r["eer_ci_low"], r["eer_ci_high"]), _num(r["eer"])),
                     (ratio(r["auc"]) if np.isfinite(r["auc"]) else "–", _num(r["auc"])),
                     (_count(r["n_bonafide"]), _num(r["n_bonafide"])), (_count(r["n_spoof"]), _num(r["n_spoof"]))])
    return Table("Clean condition", ["model", "EER % [95% CI]", "AUC", "bona fide", "spoof"], rows,
                 caption="The unperturbed input (family clean, severity 0): every degradation is relative to it.",
                 key="clean")


def _count(x: float) -> str:
    return str(int(x)) if x is not None and np.isfinite(x) else "–"


def _kind(results: pd.DataFrame, family: str) -> str:
    from reports.load import family_kind

    return family_kind(results, family)


# ---------------------------------------------------------------- degradation / mCE
def degradation(results: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """Per model x family: clean_eer, mean_eer, mean_increase, ce, rel_ce (see the module docstring)."""
    models = list(dict.fromkeys(results["model"]))
    if not models:
        return pd.DataFrame(columns=["model", "family", "reference", "n_severities", "clean_eer", "mean_eer",
                                     "mean_increase", "ce", "rel_ce"])
    ref = reference if reference is not None else models[0]
    if ref not in models:
        raise ValueError(f"reference model {ref!r} is not in the run; its models: {', '.join(models)}")
    eer = results.set_index(["model", "family", "severity"])["eer"]
    clean = {m: float(eer.get((m, *CLEAN), np.nan)) for m in models}
    rows = []
    for fam in families(results):
        sub = results[(results["family"] == fam) & (results["severity"] != 0)]
        per = {m: {int(s): float(e) for s, e in zip(g["severity"], g["eer"]) if np.isfinite(e)}
               for m, g in sub.groupby("model", sort=False)}
        ref_e = per.get(ref, {})
        for m in models:
            mine = per.get(m, {})
            if not mine:
                continue
            vals = np.array(list(mine.values()))
            common = sorted(set(mine) & set(ref_e))
            a = np.array([mine[s] for s in common])
            b = np.array([ref_e[s] for s in common])
            ce = rel = np.nan
            if common:
                ce = _div(a.sum(), b.sum())
                rel = _div((a - clean[m]).sum(), (b - clean[ref]).sum())
            rows.append({"model": m, "family": fam, "reference": ref, "n_severities": len(mine),
                         "clean_eer": clean[m], "mean_eer": float(vals.mean()),
                         "mean_increase": float(vals.mean() - clean[m]), "ce": ce, "rel_ce": rel})
    return pd.DataFrame(rows, columns=["model", "family", "reference", "n_severities", "clean_eer", "mean_eer",
                                       "mean_increase", "ce", "rel_ce"])


def _div(a: float, b: float) -> float:
    if not (np.isfinite(a) and np.isfinite(b)) or b <= 0:
        return float("nan")
    return float(a / b)


def mce(deg: pd.DataFrame, value: str = "ce") -> pd.DataFrame:
    """Wide: rows = models, columns = families then ``mean`` (the mCE when value is ``ce``)."""
    if deg.empty:
        return pd.DataFrame()
    wide = deg.pivot_table(index="model", columns="family", values=value, sort=False, dropna=False)
    wide = wide.reindex(index=list(dict.fromkeys(deg["model"])), columns=list(dict.fromkeys(deg["family"])))
    wide["mean"] = wide.mean(axis=1, skipna=False)
    return wide


def degradation_tables(deg: pd.DataFrame) -> list[Table]:
    if deg.empty:
        return []
    ref = str(deg["reference"].iloc[0])
    out = []
    for value, title, fmt, cap in (
            ("mean_increase", "Mean EER increase over clean (EER points, %)", pct,
             "Per family: the mean over severities of EER(f, s) - EER(clean); column mean: over families."),
            ("ce", "Corruption error on EER (mCE), reference " + ref, ratio,
             f"CE = sum over severities of the model's EER / sum of the reference model's ({ref}); "
             "1.00 = as robust as the reference, lower is better; mean = mCE."),
            ("rel_ce", "Relative corruption error on EER, reference " + ref, ratio,
             f"Relative CE = sum of (EER(f, s) - EER(clean)) / the same for {ref} (ImageNet-C's relative mCE); "
             "– where the reference does not degrade.")):
        w = mce(deg, value)
        rows = [[(str(m), str(m))] + [(fmt(float(v)), _num(v)) for v in w.loc[m]] for m in w.index]
        out.append(Table(title, ["model", *[str(c) for c in w.columns]], rows, caption=cap, key=f"deg-{value}"))
    return out


def frame_table(df: pd.DataFrame, title: str, caption: str = "", key: str = "") -> Table:
    """Any DataFrame as a Table (values shown as they are)."""
    rows = [[("" if pd.isna(v) else str(v), _num(v) if not isinstance(v, str) else v) for v in r]
            for r in df.itertuples(index=False)]
    return Table(title, [str(c) for c in df.columns], rows, caption=caption, key=key)


# ---------------------------------------------------------------- Markdown / LaTeX
def md_escape(s: str) -> str:
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def to_markdown(t: Table) -> str:
    lines = [f"### {md_escape(t.title)}", ""]
    lines.append("| " + " | ".join(md_escape(c) for c in t.columns) + " |")
    lines.append("|" + "|".join([" --- "] + [" ---: "] * (len(t.columns) - 1)) + "|")
    for r in t.rows:
        lines.append("| " + " | ".join(md_escape(c[0]) for c in r) + " |")
    if t.caption:
        lines += ["", md_escape(t.caption)]
    for n in t.notes:
        lines += ["", md_escape(n)]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "–": "--",
        "<": r"\textless{}", ">": r"\textgreater{}"}


def tex_escape(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def to_latex(t: Table) -> str:
    spec = "l" + "r" * (len(t.columns) - 1)
    out = [r"\begin{table}[ht]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
           " & ".join(tex_escape(c) for c in t.columns) + r" \\", r"\midrule"]
    out += [" & ".join(tex_escape(c[0]) for c in r) + r" \\" for r in t.rows]
    out += [r"\bottomrule", r"\end{tabular}",
            rf"\caption{{{tex_escape(t.title)}" + (f". {tex_escape(t.caption)}" if t.caption else "") + "}"]
    if t.key:
        out.append(rf"\label{{tab:{tex_escape(t.key)}}}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def latex_document(tables: list[Table], title: str) -> str:
    head = [r"% generated by `bench report`; needs \usepackage{booktabs}", r"\documentclass{article}",
            r"\usepackage[T1]{fontenc}", r"\usepackage[utf8]{inputenc}", r"\usepackage{booktabs}",
            r"\begin{document}", rf"\section*{{{tex_escape(title)}}}"]
    return "\n".join(head) + "\n" + "\n".join(to_latex(t) for t in tables) + r"\end{document}" + "\n"
