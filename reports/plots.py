"""Plots of a run, as matplotlib Figures (object API, Agg canvas: no pyplot state, no display needed).

* :func:`fig_eer_curve`: EER against severity of one family, one line per model, CI bands; for an
  attack family the x axis shows the budgets (SNR dB or eps) instead of s1..s5.
* :func:`fig_det`: DET curves (probit axes, scipy.stats.norm.ppf), one panel per condition of a family
  (clean, s1, ...), one line per model.
* :func:`fig_histograms`: score histograms, clean against the worst severity (highest EER) per model.
* :func:`fig_heatmap`: EER (%) of every model x condition.
* :func:`fig_eer_vs_pesq`: EER against the condition's median wide-band PESQ, every condition of the run
  (how much harm to the listener buys how much harm to the detector); None when the run has no PESQ.

Every function returns the Figure; :func:`png_bytes` renders one.
"""
from __future__ import annotations

import io
import logging
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from reports.load import CLEAN, conditions, family_kind, level_labels, level_params
from reports.tables import budget_of, eer_grid, severity_labels

log = logging.getLogger(__name__)

DPI = 90
DET_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95)
DET_LIM = (0.0005, 0.97)
MAX_DET_POINTS = 2000
ANNOTATE_MAX_CELLS = 160


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=DPI, layout="constrained")


def safe_label(s: object) -> str:
    """A text matplotlib shows literally: no mathtext ($), and not hidden from legends (leading _)."""
    s = str(s).replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _models(results: pd.DataFrame, models: Sequence[str] | None) -> list[str]:
    return list(models) if models is not None else list(dict.fromkeys(results["model"]))


def budget_labels(results: pd.DataFrame, family: str) -> tuple[list[str], str]:
    """Tick labels (clean, then each severity's budget) and the axis title of an attack family."""
    lv = level_params(results, family)
    cols = severity_labels(results, family)
    names = {budget_of(lv.get(s, {}))[0] for _, (_, s) in cols[1:] if budget_of(lv.get(s, {}))}
    ticks = ["clean"]
    for label, (_, s) in cols[1:]:
        b = budget_of(lv.get(s, {}))
        ticks.append(label if b is None else (f"{b[1]:g} dB" if b[0] == "snr_db" else f"{b[1]:g}"))
    if names == {"snr_db"}:
        axis = "attack budget: SNR (dB, per utterance); smaller = stronger"
    elif names == {"eps"}:
        axis = "attack budget: eps (waveform amplitude); larger = stronger"
    else:
        axis = "attack budget (severity)"
    return ticks, axis


def x_axis(results: pd.DataFrame, family: str):
    """The family's physical axis (:class:`bench.suites.labels.Axis`) or None (plot by severity)."""
    from bench.suites.labels import family_axis

    lv = {s: p for s, p in level_params(results, family).items() if s != 0}
    sevs = [s for _, (_, s) in severity_labels(results, family)[1:]]
    ax = family_axis(lv, family_kind(results, family))
    if ax is None or any(s not in ax.values for s in sevs):
        return None
    return ax


def fig_eer_curve(results: pd.DataFrame, family: str, models: Sequence[str] | None = None,
                  budget_axis: bool | None = None, names: Mapping[str, str] | None = None):
    """EER (%) against the family's level, one line per model with its 95% bootstrap CI as a band.

    The x axis is in the family's unit when its levels carry one (bitrate in kb/s, log scale over a
    wide range; SNR in dB; RT60 in s; an attack's budget as SNR in dB), drawn so that harsher is to the
    right; otherwise the levels' labels in severity order. The clean condition sits apart in a narrow
    panel on the left (it has no value on that axis). ``names`` maps model -> legend name.
    ``budget_axis`` is accepted for older callers and ignored (an attack's budget axis comes from its levels).
    """
    from matplotlib.patches import Patch

    models = _models(results, models)
    names = dict(names or {})
    eer = eer_grid(results, family, "eer", models)
    lo = eer_grid(results, family, "eer_ci_low", models)
    hi = eer_grid(results, family, "eer_ci_high", models)
    cols = severity_labels(results, family)[1:]
    labels = level_labels(results, family)
    kind = family_kind(results, family)
    axis = x_axis(results, family)
    fig = _figure(7.2, 3.9)
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 7.5])
    ax0 = fig.add_subplot(gs[0])
    ax = fig.add_subplot(gs[1], sharey=ax0)
    if axis is not None:
        x = np.array([axis.values[s] for _, (_, s) in cols], float)
    else:
        x = np.arange(1, len(cols) + 1, dtype=float)
    handles = []
    for i, m in enumerate(models):
        y = 100 * eer.loc[m].to_numpy(float)
        yl, yh = 100 * lo.loc[m].to_numpy(float), 100 * hi.loc[m].to_numpy(float)
        (line,) = ax.plot(x, y[1:], marker="o", label=safe_label(names.get(m, m)))
        handles.append(line)
        band = np.isfinite(yl[1:]) & np.isfinite(yh[1:])
        if band.any():
            ax.fill_between(x, yl[1:], yh[1:], where=band, color=line.get_color(), alpha=0.18, linewidth=0)
        off = (i - (len(models) - 1) / 2) * 0.12
        if np.isfinite(y[0]):
            err = None
            if np.isfinite(yl[0]) and np.isfinite(yh[0]):
                err = [[max(y[0] - yl[0], 0)], [max(yh[0] - y[0], 0)]]
            ax0.errorbar([off], [y[0]], yerr=err, marker="D", color=line.get_color(), capsize=3, linewidth=1.2)
    handles.append(Patch(color="0.5", alpha=0.25, label="shaded / whiskers: 95% bootstrap CI"))
    ax0.set_xlim(-0.6, 0.6)
    ax0.set_xticks([0], ["clean"])
    ax0.set_ylabel("EER (%)")
    ax0.set_ylim(bottom=0)
    ax0.grid(alpha=0.3, axis="y")
    ax.tick_params(labelleft=False)
    if axis is not None:
        if axis.log:
            ax.set_xscale("log")
            ax.minorticks_off()
        ax.set_xticks(x, [f"{v:g}" for v in x])
        if axis.reversed:
            ax.invert_xaxis()
        ax.set_xlabel(safe_label(axis.title + ("; harsher to the right" if axis.reversed else "")))
    else:
        import textwrap

        ticks = [textwrap.fill(labels.get(s, f"s{s}"), 16) for _, (_, s) in cols]
        ax.set_xticks(x, [safe_label(t) for t in ticks], fontsize=7 if max(map(len, ticks), default=0) > 10 else None)
        if len(x):
            ax.set_xlim(x[0] - 0.5, x[-1] + 0.5)
        ax.set_xlabel("severity (level)" if kind != "attack" else "attack budget (severity)")
    ax.grid(alpha=0.3)
    what = "attack budget" if kind == "attack" else (axis.title.split(" (")[0] if axis is not None else "severity")
    fig.suptitle(safe_label(f"EER against {what}: {family}"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize="small",
               frameon=False)
    return fig


def _probit(p: np.ndarray) -> np.ndarray:
    from scipy.stats import norm

    return norm.ppf(np.clip(p, *DET_LIM))


def det_points(bona: np.ndarray, spoof: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false acceptance, false rejection) of the official DET curve, thinned to MAX_DET_POINTS."""
    from bench.metrics import det_curve

    frr, far, _ = det_curve(bona, spoof)
    if frr.size > MAX_DET_POINTS:
        keep = np.unique(np.linspace(0, frr.size - 1, MAX_DET_POINTS).round().astype(int))
        frr, far = frr[keep], far[keep]
    return far, frr


def _split(scores: pd.DataFrame, model: str, family: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    g = scores[(scores["model"] == model) & (scores["family"] == family) & (scores["severity"] == severity)]
    sc = g["score"].to_numpy(float)
    ok = np.isfinite(sc)
    lab = g["label"].to_numpy()
    return sc[ok & (lab == "bonafide")], sc[ok & (lab == "spoof")]


def fig_det(scores: pd.DataFrame, results: pd.DataFrame, family: str, models: Sequence[str] | None = None):
    """DET curves, one panel per condition of ``family`` (clean first), one line per model."""
    import textwrap

    models = _models(results, models)
    conds = severity_labels(results, family)
    n = len(conds)
    ncol = min(n, 3)
    nrow = int(np.ceil(n / ncol))
    fig = _figure(3.0 * ncol + 0.4, 2.9 * nrow + 0.3)
    ticks = _probit(np.array(DET_TICKS))
    labels = [f"{100 * t:g}" for t in DET_TICKS]
    for i, (label, (fam, sev)) in enumerate(conds):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        for m in models:
            b, s = _split(scores, m, fam, sev)
            if b.size and s.size:
                far, frr = det_points(b, s)
                ax.plot(_probit(far), _probit(frr), label=safe_label(m), linewidth=1.2)
        lim = _probit(np.array(DET_LIM))
        ax.plot(lim, lim, color="0.7", linewidth=0.6, linestyle=":", label="_eer_diagonal")
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_xticks(ticks, labels, fontsize=6)
        ax.set_yticks(ticks, labels, fontsize=6)
        lab = level_labels(results, family).get(sev, label)
        ax.set_title(safe_label("clean" if (fam, sev) == CLEAN else textwrap.fill(f"{family} {lab}", 36)),
                     fontsize=9 if len(f"{family} {lab}") <= 36 else 7.5)
        ax.set_xlabel("false acceptance (%)", fontsize=7)
        ax.set_ylabel("false rejection (%)", fontsize=7)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=6, loc="upper right")
    fig.suptitle(safe_label(f"DET curves: {family}"), fontsize=10)
    return fig


def worst_severity(results: pd.DataFrame, model: str, family: str) -> int | None:
    """The family's severity with the highest EER for ``model`` (ties: the higher severity)."""
    sub = results[(results["model"] == model) & (results["family"] == family) & (results["severity"] != 0)]
    sub = sub[np.isfinite(sub["eer"].to_numpy(float))]
    if sub.empty:
        return None
    best = sub.sort_values(["eer", "severity"], ascending=[False, False]).iloc[0]
    return int(best["severity"])


def fig_histograms(scores: pd.DataFrame, results: pd.DataFrame, family: str,
                   models: Sequence[str] | None = None):
    """Per model: score histograms of bona fide and spoof, clean (filled) against the worst severity (lines)."""
    import textwrap

    models = _models(results, models)
    fig = _figure(max(min(3.4 * len(models), 13.6), 6.4) + 0.3, 3.0 * int(np.ceil(len(models) / 4)) + 0.5)
    ncol = min(len(models), 4)
    nrow = int(np.ceil(len(models) / ncol))
    for i, m in enumerate(models):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        worst = worst_severity(results, m, family)
        cb, cs = _split(scores, m, *CLEAN)
        wb, ws = _split(scores, m, family, worst) if worst is not None else (np.zeros(0), np.zeros(0))
        allv = np.concatenate([cb, cs, wb, ws])
        if allv.size == 0:
            ax.set_title(safe_label(f"{m}: no scores"), fontsize=9)
            continue
        bins = np.histogram_bin_edges(allv, bins=40)
        for data, lab, color, style in ((cb, "clean bona fide", "tab:green", "bar"),
                                        (cs, "clean spoof", "tab:red", "bar"),
                                        (wb, f"s{worst} bona fide", "darkgreen", "step"),
                                        (ws, f"s{worst} spoof", "darkred", "step")):
            if data.size:
                ax.hist(data, bins=bins, density=True, histtype=style, color=color, label=lab,
                        alpha=0.35 if style == "bar" else 1.0, linewidth=1.3)
        lab = level_labels(results, family).get(worst, f"s{worst}") if worst is not None else ""
        ax.set_title(safe_label(textwrap.fill(f"{m}: clean vs s{worst} ({lab})" if worst is not None
                                              else f"{m}: clean", 34)), fontsize=8)
        ax.set_xlabel("score (higher = more bona fide)", fontsize=7)
        ax.set_ylabel("density", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6)
    title = f"Score histograms: {family} (worst severity = highest EER)"
    fig.suptitle(safe_label(textwrap.fill(title, int(fig.get_figwidth() * 11))), fontsize=10)
    return fig


def heatmap_matrix(results: pd.DataFrame, models: Sequence[str] | None = None) -> pd.DataFrame:
    """EER (fraction) with rows = models, columns = conditions ('clean', 'family sK')."""
    models = _models(results, models)
    conds = conditions(results)
    idx = results.set_index(["model", "family", "severity"])["eer"]
    cols = {("clean" if c == CLEAN else f"{c[0]} s{c[1]}"): [idx.get((m, *c), np.nan) for m in models]
            for c in conds}
    return pd.DataFrame(cols, index=pd.Index(models, name="model"), dtype=float)


def fig_heatmap(results: pd.DataFrame, models: Sequence[str] | None = None, title: str = "EER (%) by condition"):
    mat = heatmap_matrix(results, models)
    n_m, n_c = mat.shape
    fig = _figure(min(max(5.0, 0.32 * n_c + 2.5), 30.0), max(2.2, 0.42 * n_m + 1.9))
    ax = fig.add_subplot()
    data = 100 * mat.to_numpy(float)
    im = ax.imshow(np.ma.masked_invalid(data), aspect="auto", cmap="viridis", vmin=0,
                   vmax=max(50.0, float(np.nanmax(data))) if np.isfinite(data).any() else 50.0)
    ax.set_xticks(np.arange(n_c), [safe_label(c) for c in mat.columns], rotation=70, ha="right", fontsize=7)
    ax.set_yticks(np.arange(n_m), [safe_label(m) for m in mat.index], fontsize=8)
    if n_m * n_c <= ANNOTATE_MAX_CELLS:
        for i in range(n_m):
            for j in range(n_c):
                if np.isfinite(data[i, j]):
                    ax.text(j, i, f"{data[i, j]:.1f}", ha="center", va="center", fontsize=6,
                            color="white" if data[i, j] < 30 else "black")
    fig.colorbar(im, ax=ax, label="EER (%)")
    ax.set_title(safe_label(title))
    return fig


def fig_overview(results: pd.DataFrame, models: Sequence[str] | None = None,
                 names: Mapping[str, str] | None = None, title: str = "EER (%) by family and severity"):
    """Per model a families x severities heat map (clean in the first column), the EER and the level's
    label in every cell; one panel per model, two per row."""
    import textwrap

    models = _models(results, models)
    names = dict(names or {})
    fams = [f for f in dict.fromkeys(results["family"]) if f != "clean"] or []
    sevs = sorted({int(s) for s in results["severity"] if int(s) != 0})
    cols = ["clean"] + [f"s{s}" for s in sevs]
    idx = results.set_index(["model", "family", "severity"])["eer"]
    labs = {f: level_labels(results, f) for f in fams}
    ncol = min(len(models), 2)
    nrow = int(np.ceil(len(models) / ncol))
    rows = max(len(fams), 1)
    fig = _figure(ncol * (2.2 + 1.05 * len(cols)) + 0.8, nrow * (0.9 + 0.48 * rows) + 0.5)
    vmax = max(50.0, float(np.nanmax(100 * results["eer"].to_numpy(float)))) if results["eer"].notna().any() else 50.0
    im = None
    for k, m in enumerate(models):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        clean = float(idx.get((m, "clean", 0), np.nan))
        data = np.array([[clean] + [float(idx.get((m, f, s), np.nan)) for s in sevs] for f in fams] or
                        [[clean] + [np.nan] * len(sevs)]) * 100
        im = ax.imshow(np.ma.masked_invalid(data), aspect="auto", cmap="viridis", vmin=0, vmax=vmax)
        ax.set_xticks(np.arange(len(cols)), cols, fontsize=8)
        ax.set_yticks(np.arange(rows), [safe_label(textwrap.shorten(f, 28)) for f in fams] or ["clean"], fontsize=8)
        ax.set_title(safe_label(names.get(m, m)), fontsize=10)
        for i, f in enumerate(fams or ["clean"]):
            for j, col in enumerate(cols):
                v = data[i, j]
                if not np.isfinite(v):
                    continue
                sub = "" if j == 0 else textwrap.shorten(labs.get(f, {}).get(sevs[j - 1], ""), 15, placeholder="…")
                ax.text(j, i, f"{v:.1f}", ha="center", va="bottom" if sub else "center", fontsize=9,
                        color="white" if v < 0.6 * vmax else "black")
                if sub:
                    ax.text(j, i + 0.06, sub, ha="center", va="top", fontsize=6.5,
                            color="white" if v < 0.6 * vmax else "black")
    if im is not None:
        fig.colorbar(im, ax=fig.axes, label="EER (%)", shrink=0.9)
    fig.suptitle(safe_label(title))
    return fig


def save_figure(fig, base) -> dict[str, bytes]:
    """Writes ``base``.png (for the HTML page), .svg (text kept as text) and .pdf; returns their bytes."""
    from pathlib import Path

    import matplotlib

    base = Path(base)
    out = {}
    with matplotlib.rc_context({"svg.fonttype": "none", "pdf.fonttype": 42}):
        for ext in ("png", "svg", "pdf"):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=DPI if ext == "png" else None)
            out[ext] = buf.getvalue()
            tmp = base.with_name(base.name + f".{ext}.tmp")
            tmp.write_bytes(out[ext])
            tmp.replace(base.with_name(base.name + f".{ext}"))
    return out
