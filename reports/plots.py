"""Plots of a run, as matplotlib Figures (object API, Agg canvas: no pyplot state, no display needed).

* :func:`fig_eer_curve`: EER against severity of one family, one line per model, CI bands; for an
  attack family the x axis shows the budgets (SNR dB or eps) instead of s1..s5.
* :func:`fig_det`: DET curves (probit axes, scipy.stats.norm.ppf), one panel per condition of a family
  (clean, then each level in its unit), one line per model.
* :func:`fig_histograms`: score histograms, clean against the worst level (highest EER) per model.
* :func:`fig_overview` and :func:`fig_heatmap` (:mod:`reports.plots_heat`): EER heat maps.
* :func:`reports.plots_quality.fig_eer_vs_pesq`: EER against the conditions' median PESQ.

Every function takes ``style=`` (``screen``, the default, or ``paper``: see :mod:`reports.figure`) and returns
the Figure; :func:`save_figure` writes it as PNG, SVG and PDF.
"""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from reports.figure import SCREEN, Style, legend_columns, new_figure, png_bytes, safe_label, save_figure, styled
from reports.load import CLEAN, family_kind, level_labels, level_params
from reports.tables import budget_of, eer_grid, severity_labels

log = logging.getLogger(__name__)

__all__ = ["fig_eer_curve", "fig_det", "fig_histograms", "fig_overview", "fig_heatmap", "heatmap_matrix",
           "png_bytes", "save_figure", "safe_label", "det_points", "worst_severity", "x_axis", "budget_labels"]

DPI = SCREEN.dpi
#: DET axis ticks (fractions): the screen's and, for a panel an inch wide, the paper's
DET_TICKS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95)
DET_TICKS_PAPER = (0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95)
DET_LIM = (0.0005, 0.97)
MAX_DET_POINTS = 2000


def _paper(style: Style) -> bool:
    return style.name == "paper"


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


@styled
def fig_eer_curve(results: pd.DataFrame, family: str, models: Sequence[str] | None = None,
                  budget_axis: bool | None = None, names: Mapping[str, str] | None = None, *,
                  style: Style = SCREEN):
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
    paper = _paper(style)
    fig = new_figure(style.width if paper else 7.2, 2.6 + 0.12 * len(models) if paper else 3.9, style)
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 6 if paper else 7.5])
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
            ax0.errorbar([off], [y[0]], yerr=err, marker="D", color=line.get_color(), capsize=2 if paper else 3,
                         linewidth=line.get_linewidth())
    handles.append(Patch(color="0.5", alpha=0.25, label="shaded / whiskers: 95% bootstrap CI"))
    ax0.set_xlim(-0.6, 0.6)
    ax0.set_xticks([0], ["clean"])
    ax0.set_ylabel("EER (%)")
    ax0.set_ylim(bottom=0)
    ax0.grid(alpha=0.3, axis="y")
    ax.tick_params(labelleft=False)
    plot_w = fig.get_figwidth() * 0.8 * (6 / 7 if paper else 7.5 / 8.5)
    if axis is not None:
        if axis.log:
            ax.set_xscale("log")
            ax.minorticks_off()
        ax.set_xticks(x, [f"{v:g}" for v in x])
        if axis.reversed:
            ax.invert_xaxis()
        title = axis.title + ("; harsher to the right" if axis.reversed else "")
        ax.set_xlabel(safe_label(style.wrap(title, plot_w)))
    else:
        size = style.small if paper or max((len(t) for t in labels.values()), default=0) > 10 else style.text
        ticks = [style.wrap(labels.get(s, f"s{s}"), plot_w / max(len(cols), 1) * 0.92, size) for _, (_, s) in cols]
        ax.set_xticks(x, [safe_label(t) for t in ticks])
        ax.tick_params(axis="x", labelsize=size)
        if len(x):
            ax.set_xlim(x[0] - 0.5, x[-1] + 0.5)
        ax.set_xlabel("level" if kind != "attack" else "attack budget")
    ax.grid(alpha=0.3)
    what = "attack budget" if kind == "attack" else (axis.title.split(" (")[0] if axis is not None else "level")
    fig.suptitle(safe_label(style.wrap(f"EER against {what}: {family}", fig.get_figwidth(), style.title)))
    fig.legend(handles=handles, loc="outside lower center", frameon=False, fontsize=style.small,
               ncol=legend_columns([h.get_label() for h in handles], style, fig.get_figwidth(), 4))
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


@styled
def fig_det(scores: pd.DataFrame, results: pd.DataFrame, family: str, models: Sequence[str] | None = None, *,
            style: Style = SCREEN):
    """DET curves, one panel per condition of ``family`` (clean first, then each level in its unit), one line
    per model; the models' legend under the panels."""
    models = _models(results, models)
    conds = severity_labels(results, family)
    paper = _paper(style)
    n = len(conds)
    ncol = min(n, 2 if paper or n <= 4 else 3)
    nrow = int(np.ceil(n / ncol))
    panel = (style.width - 0.2) / ncol if paper else 3.0
    labs = level_labels(results, family)
    titles = [style.wrap("clean" if (fam, sev) == CLEAN else f"{family} {labs.get(sev, label)}",
                         panel - (0.4 if paper else 0.6))
              for label, (fam, sev) in conds]
    title_in = max(t.count("\n") + 1 for t in titles) * style.text * 1.25 / 72
    fig = new_figure(panel * ncol + 0.2, (panel + 0.2 + title_in) * nrow + 0.45 + 0.12 * len(models), style)
    tick_at = DET_TICKS_PAPER if paper else DET_TICKS
    ticks = _probit(np.array(tick_at))
    tick_labels = [f"{100 * t:g}" for t in tick_at]
    lines = {}
    for i, (label, (fam, sev)) in enumerate(conds):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        for m in models:
            b, s = _split(scores, m, fam, sev)
            if b.size and s.size:
                far, frr = det_points(b, s)
                (ln,) = ax.plot(_probit(far), _probit(frr), label=safe_label(m))
                lines.setdefault(m, ln)
        lim = _probit(np.array(DET_LIM))
        ax.plot(lim, lim, color="0.7", linewidth=0.6, linestyle=":", label="_eer_diagonal")
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_xticks(ticks, tick_labels)
        ax.set_yticks(ticks, tick_labels)
        ax.tick_params(labelsize=style.small)
        ax.set_title(safe_label(titles[i]), fontsize=style.text)
        ax.set_xlabel("false acceptance (%)", fontsize=style.small)
        ax.set_ylabel("false rejection (%)", fontsize=style.small)
        ax.grid(alpha=0.3)
    if lines:
        fig.legend(handles=list(lines.values()), loc="outside lower center", fontsize=style.small, frameon=False,
                   ncol=legend_columns([safe_label(m) for m in lines], style, fig.get_figwidth(), 4))
    fig.suptitle(safe_label(f"DET curves: {family}"))
    return fig


def worst_severity(results: pd.DataFrame, model: str, family: str) -> int | None:
    """The family's severity with the highest EER for ``model`` (ties: the higher severity)."""
    sub = results[(results["model"] == model) & (results["family"] == family) & (results["severity"] != 0)]
    sub = sub[np.isfinite(sub["eer"].to_numpy(float))]
    if sub.empty:
        return None
    best = sub.sort_values(["eer", "severity"], ascending=[False, False]).iloc[0]
    return int(best["severity"])


@styled
def fig_histograms(scores: pd.DataFrame, results: pd.DataFrame, family: str,
                   models: Sequence[str] | None = None, *, style: Style = SCREEN):
    """Per model: score histograms of bona fide and spoof, clean (filled) against the worst level (lines,
    the level named in the panel's title); one legend under the panels."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    models = _models(results, models)
    paper = _paper(style)
    ncol = min(len(models), 2 if paper else 4)
    nrow = int(np.ceil(len(models) / ncol))
    panel = (style.width - 0.1) / ncol if paper else 3.4
    fig = new_figure(max(panel * ncol, 6.4 if not paper else 0) + 0.3,
                     (panel * 0.8 + 0.45) * nrow + 0.8, style)
    labs = level_labels(results, family)
    for i, m in enumerate(models):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        worst = worst_severity(results, m, family)
        cb, cs = _split(scores, m, *CLEAN)
        wb, ws = _split(scores, m, family, worst) if worst is not None else (np.zeros(0), np.zeros(0))
        allv = np.concatenate([cb, cs, wb, ws])
        if allv.size == 0:
            ax.set_title(safe_label(f"{m}: no scores"), fontsize=style.text)
            continue
        bins = np.histogram_bin_edges(allv, bins=30 if paper else 40)
        for data, color, kind in ((cb, "tab:green", "bar"), (cs, "tab:red", "bar"),
                                  (wb, "darkgreen", "step"), (ws, "darkred", "step")):
            if data.size:
                ax.hist(data, bins=bins, density=True, histtype=kind, color=color,
                        alpha=0.35 if kind == "bar" else 1.0, linewidth=1.0 if paper else 1.3)
        title = f"{m}: clean vs {labs.get(worst, f's{worst}')}" if worst is not None else f"{m}: clean"
        ax.set_title(safe_label(style.wrap(title, fig.get_figwidth() / ncol - (0.3 if paper else 0.5), style.text)),
                     fontsize=style.text)
        if i % ncol == 0:
            ax.set_ylabel("density", fontsize=style.small)
        if i >= len(models) - ncol:
            ax.set_xlabel(style.wrap("score (higher = more bona fide)", fig.get_figwidth() / ncol - 0.4, style.small),
                          fontsize=style.small)
        ax.tick_params(labelsize=style.small)
    handles = [Patch(color="tab:green", alpha=0.35, label="clean bona fide"),
               Patch(color="tab:red", alpha=0.35, label="clean spoof"),
               Line2D([], [], color="darkgreen", label="worst level: bona fide"),
               Line2D([], [], color="darkred", label="worst level: spoof")]
    fig.legend(handles=handles, loc="outside lower center", fontsize=style.small, frameon=False,
               ncol=legend_columns([h.get_label() for h in handles], style, fig.get_figwidth(), 4))
    title = f"Score histograms: {family} (worst level = highest EER)"
    fig.suptitle(safe_label(style.wrap(title, fig.get_figwidth(), style.title)))
    return fig


from reports.plots_heat import fig_heatmap, fig_overview, heatmap_matrix  # noqa: E402 (re-exported)
