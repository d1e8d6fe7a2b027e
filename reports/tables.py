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

from reports.load import CLEAN, families, level_labels, level_params

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
    #: LaTeX sets a table transposed (its columns as rows) when that needs fewer parts, or, when
    #: ``prefer_transposed``, no more; ``transpose_corner`` is then the text of the corner cell
    transpose_corner: str = ""
    prefer_transposed: bool = False


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
    return ", ".join(f"{k}={v}" for k, v in params.items() if v is not None)


def level_caption(results: pd.DataFrame, family: str) -> str:
    lv = level_params(results, family)
    labels = level_labels(results, family)
    return "; ".join(f"s{s} = {labels.get(s, f's{s}')} ({format_params(p)})" for s, p in sorted(lv.items())
                     if s != 0 and p)


def column_labels(results: pd.DataFrame, family: str) -> list[str]:
    """Header of a family's severity columns: clean, then each level's label (unit included), unique."""
    labels = level_labels(results, family)
    out = ["clean"]
    for _, (_, s) in severity_labels(results, family)[1:]:
        lab = labels.get(s) or f"s{s}"
        out.append(lab if lab not in out else f"{lab} (s{s})")
    return out


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
                 ["model", *column_labels(results, family)], rows,
                 caption=("Cells: EER % [95% bootstrap CI]. " + (f"Levels: {cap}." if cap else "")).strip(),
                 key=f"eer-{family}", transpose_corner="level", prefer_transposed=True)


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
DEG_COLUMNS = ["model", "family", "reference", "n_severities", "clean_eer", "mean_eer", "mean_increase", "ce",
               "rel_ce", "mean_increase_ci_low", "mean_increase_ci_high", "significant"]


def mean_increase_ci(scores: pd.DataFrame | None, model: str, family: str, severities: Sequence[int],
                     n_boot: int = 200, seed: int = 0, alpha: float = 0.05) -> tuple[float, float] | None:
    """95% interval of mean_s EER(family, s) - EER(clean) by a paired bootstrap over utterances: every
    resample draws the same utterances in every condition (the conditions hold the same utterances,
    sorted by utt_id, and :func:`bench.metrics.bootstrap_eers` draws positions from the seed alone).
    None when the scores are missing or the conditions do not hold the same utterances."""
    from bench.metrics import bootstrap_eers

    if scores is None or not len(severities):
        return None
    sub = scores[(scores["model"] == model) & (((scores["family"] == CLEAN[0]) & (scores["severity"] == 0))
                                               | ((scores["family"] == family) & scores["severity"].isin(severities)))]
    parts = {}
    for (f, sev), g in sub.groupby(["family", "severity"], sort=False):
        g = g[np.isfinite(g["score"].to_numpy(float))]
        if g["utt_id"].duplicated().any():
            return None
        parts[(f, int(sev))] = g.set_index("utt_id")[["label", "score"]].sort_index()
    keys = [CLEAN] + [(family, int(s)) for s in severities]
    if any(k not in parts for k in keys):
        return None
    ref = parts[CLEAN]
    if ref.empty or any(not parts[k].index.equals(ref.index) or not (parts[k]["label"] == ref["label"]).all()
                        for k in keys[1:]):
        return None
    bona = (ref["label"] == "bonafide").to_numpy()
    spoof = (ref["label"] == "spoof").to_numpy()
    if not bona.any() or not spoof.any():
        return None
    eers = {k: bootstrap_eers(parts[k]["score"].to_numpy(float)[bona], parts[k]["score"].to_numpy(float)[spoof],
                              n_boot=n_boot, seed=seed) for k in keys}
    diff = np.mean([eers[k] for k in keys[1:]], axis=0) - eers[CLEAN]
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return None
    lo, hi = np.quantile(diff, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def degradation(results: pd.DataFrame, reference: str | None = None, scores: pd.DataFrame | None = None,
                n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per model x family: clean_eer, mean_eer, mean_increase, ce, rel_ce (see the module docstring); with
    ``scores``, the paired-bootstrap interval of mean_increase and ``significant`` (it excludes 0)."""
    models = list(dict.fromkeys(results["model"]))
    if not models:
        return pd.DataFrame(columns=DEG_COLUMNS)
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
            ci = mean_increase_ci(scores, m, fam, sorted(mine), n_boot=n_boot, seed=seed)
            lo, hi = ci if ci is not None else (np.nan, np.nan)
            rows.append({"model": m, "family": fam, "reference": ref, "n_severities": len(mine),
                         "clean_eer": clean[m], "mean_eer": float(vals.mean()),
                         "mean_increase": float(vals.mean() - clean[m]), "ce": ce, "rel_ce": rel,
                         "mean_increase_ci_low": lo, "mean_increase_ci_high": hi,
                         "significant": bool(ci is not None and (lo > 0 or hi < 0))})
    return pd.DataFrame(rows, columns=DEG_COLUMNS)


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
    """Mean EER increase (marked * where its paired-bootstrap CI excludes 0); CE and relative CE only when
    the run has a model other than the reference (a model against itself is 1.00 everywhere), without
    the reference's own row."""
    if deg.empty:
        return []
    ref = str(deg["reference"].iloc[0])
    models = list(dict.fromkeys(deg["model"]))
    out = []
    w = mce(deg, "mean_increase")
    sig = deg.set_index(["model", "family"])["significant"] if "significant" in deg else pd.Series(dtype=bool)
    tested = "mean_increase_ci_low" in deg and deg["mean_increase_ci_low"].notna().any()
    rows = []
    for m in w.index:
        row = [(str(m), str(m))]
        for fam, v in w.loc[m].items():
            mark = "*" if fam != "mean" and bool(sig.get((m, fam), False)) else ""
            row.append((pct(float(v)) + mark, _num(v)))
        rows.append(row)
    cap = "Per family: the mean over severities of EER(f, s) - EER(clean); column mean: over families."
    if tested:
        cap += " * = its 95% paired-bootstrap interval (same utterances resampled in every condition) excludes 0."
    out.append(Table("Mean EER increase over clean (EER points, %)", ["model", *[str(c) for c in w.columns]],
                     rows, caption=cap, key="deg-mean_increase", transpose_corner="family"))
    if len(models) < 2:
        return out
    for value, title, cap in (
            ("ce", "Corruption error on EER (mCE), reference " + ref,
             f"CE = sum over severities of the model's EER / sum of the reference model's ({ref}); "
             "1.00 = as robust as the reference, lower is better; mean = mCE."),
            ("rel_ce", "Relative corruption error on EER, reference " + ref,
             f"Relative CE = sum of (EER(f, s) - EER(clean)) / the same for {ref} (ImageNet-C's relative mCE); "
             "– where the reference does not degrade.")):
        w = mce(deg, value)
        rows = [[(str(m), str(m))] + [(ratio(float(v)), _num(v)) for v in w.loc[m]] for m in w.index if m != ref]
        out.append(Table(title, ["model", *[str(c) for c in w.columns]], rows, caption=cap, key=f"deg-{value}",
                         transpose_corner="family"))
    return out


def generator_table(by_attack: pd.DataFrame, model: str) -> Table | None:
    """Rows = conditions (family and level), columns = spoof generators: the EER (%) of all bona fide clips
    against that generator's spoofs (results_by_attack.csv), for one model. None without generators."""
    sub = by_attack[by_attack["model"] == model]
    gens = sorted(g for g in dict.fromkeys(sub["attack"]) if g != "-")
    if not gens:
        return None
    n = sub.groupby("attack")["n_spoof"].max()
    rows = []
    for (fam, sev), g in sub.groupby(["family", "severity"], sort=False):
        lab = str(g["level_label"].iloc[0]) if "level_label" in g and str(g["level_label"].iloc[0]) else f"s{sev}"
        name = "clean" if (fam, int(sev)) == CLEAN else f"{fam} {lab}"
        e = g.set_index("attack")["eer"]
        rows.append([(name, name)] + [(pct(float(e.get(x, np.nan)), 1), _num(e.get(x, np.nan))) for x in gens])
    return Table(f"EER (%) per spoof generator: {model}", ["condition", *[f"{x} (n={int(n.get(x, 0))})" for x in gens]],
                 rows, caption="Each cell: all bona fide clips against that generator's spoofs (the manifest's "
                 "attack column), as ASVspoof reports A07-A19; n = spoofs of the generator per condition.",
                 key=f"gen-{model}")


def rounded(df: pd.DataFrame, digits: int = 6) -> pd.DataFrame:
    """``df`` with its float columns rounded to ``digits`` decimals (what a CSV should carry: 0.075, not
    0.07500000000000001; EER fractions need no more than 1e-6)."""
    floats = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    return df.assign(**{c: df[c].round(digits) for c in floats})


def frame_table(df: pd.DataFrame, title: str, caption: str = "", key: str = "") -> Table:
    """Any DataFrame as a Table (values shown as they are)."""
    rows = [[("" if pd.isna(v) else str(v), _num(v) if not isinstance(v, str) else v) for v in r]
            for r in df.itertuples(index=False)]
    return Table(title, [str(c) for c in df.columns], rows, caption=caption, key=key)
