"""EER heat maps of a run.

* :func:`fig_overview`: rows by family, one block per family: its models (rows) against clean and its own
  levels named in their units (columns, ``64 kb/s``, ``10 dB SNR``), the EER (%) in every cell. Families
  do not share an ``s1..s5`` axis: each block has its own tick labels.
* :func:`fig_heatmap`: EER (%) of every model x condition in one grid (conditions named in their units);
  drawn with the conditions as rows when they do not fit the figure's width as columns.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from reports.figure import SCREEN, Style, new_figure, safe_label, styled
from reports.load import CLEAN, conditions, families, level_labels

#: cells of fig_heatmap are annotated up to this many
ANNOTATE_MAX_CELLS = 160


def _models(results: pd.DataFrame, models: Sequence[str] | None) -> list[str]:
    return list(models) if models is not None else list(dict.fromkeys(results["model"]))


def wrap_name(name: str, style: Style, width_in: float, size: float) -> str:
    """A family name broken after ``+`` (chains) and at spaces to fit ``width_in``."""
    chars = max(int(width_in * 72 / (0.58 * size)), 4)
    parts, lines, cur = str(name).replace("+", "+\x00").split("\x00"), [], ""
    for p in parts:
        if cur and len(cur) + len(p) > chars:
            lines.append(cur)
            cur = ""
        cur += p
    lines.append(cur)
    return "\n".join(style.wrap(ln, width_in, size) for ln in lines)


def _vmax(results: pd.DataFrame) -> float:
    e = 100 * results["eer"].to_numpy(float)
    return max(50.0, float(np.nanmax(e))) if np.isfinite(e).any() else 50.0


def _ink(v: float, vmax: float) -> str:
    return "white" if v < 0.6 * vmax else "black"


@styled
def fig_overview(results: pd.DataFrame, models: Sequence[str] | None = None,
                 names: Mapping[str, str] | None = None, title: str = "EER (%) by family and level", *,
                 style: Style = SCREEN):
    """One block per family (rows by family): models x (clean, the family's levels in their units), the EER
    (%) in each cell, one colour scale. ``names`` maps model -> the name shown."""
    models = _models(results, models)
    names = dict(names or {})
    paper = style.name == "paper"
    fams = families(results)
    idx = results.set_index(["model", "family", "severity"])["eer"]
    sevs = {f: sorted({int(s) for s in results.loc[results["family"] == f, "severity"] if int(s) != 0})
            for f in fams}
    if not fams:                                     # a clean-only run: one block of the clean condition
        fams, sevs = ["clean"], {"clean": []}
    max_cols = 1 + max(len(v) for v in sevs.values())
    n_m = len(models)
    ncol = 1 if paper or len(fams) < 6 else 2
    nrow = int(np.ceil(len(fams) / ncol))
    size = style.small
    cap = 0.9 if paper else 1.8
    ylabels = {f: ([safe_label(style.wrap(names.get(m, m), cap, size)) for m in models] if n_m > 1
                   else [safe_label(wrap_name(f, style, cap, size))]) for f in fams}
    longest = max(len(line) for v in ylabels.values() for t in v for line in t.split("\n"))
    label_in = longest * 0.6 * size / 72 + 0.12
    width = min(style.width, ncol * (label_in + (0.95 if not paper else 0.5) * max_cols) + 0.3)
    cell_in = (width / ncol - label_in - 0.1) / max_cols
    ticks = {f: ["clean"] + [style.wrap(level_labels(results, f).get(s, f"s{s}"), cell_in * 0.95, size)
                             for s in sevs[f]] for f in fams}
    row_in = 0.2 if paper else 0.34
    block = {f: n_m * row_in + max(t.count("\n") + 1 for t in ticks[f]) * size * 1.3 / 72
             + (style.text * 1.5 / 72 if n_m > 1 else 0) + 0.06 for f in fams}
    heights = [max(block[f] for f in fams[r::nrow] if ncol > 1) if ncol > 1 else block[fams[r]] for r in range(nrow)]
    fig = new_figure(width, sum(heights) + 0.08 * nrow + 0.9 + (0.2 if paper else 0.35), style)
    fig.get_layout_engine().set(h_pad=0.03, hspace=0.0)
    vmax = _vmax(results)
    gs = fig.add_gridspec(nrow, ncol)
    im = None
    for k, fam in enumerate(fams):
        ax = fig.add_subplot(gs[k // ncol if ncol == 1 else k % nrow, 0 if ncol == 1 else k // nrow])
        cols = [CLEAN] + [(fam, s) for s in sevs[fam]]
        data = np.full((n_m, max_cols), np.nan)
        for i, m in enumerate(models):
            for j, c in enumerate(cols):
                data[i, j] = 100 * float(idx.get((m, *c), np.nan))
        im = ax.imshow(np.ma.masked_invalid(data), aspect="auto", cmap="viridis", vmin=0, vmax=vmax,
                       interpolation="nearest")
        ax.set_xlim(-0.5, max_cols - 0.5)
        ax.set_xticks(np.arange(len(cols)), [safe_label(t) for t in ticks[fam]])
        ax.tick_params(axis="both", labelsize=size, length=2)
        ax.set_yticks(np.arange(n_m), ylabels[fam])
        if n_m > 1:
            ax.set_title(safe_label(fam), fontsize=style.text, loc="left", pad=2, fontweight="bold")
        for i in range(n_m):
            for j in range(len(cols)):
                v = data[i, j]
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=size, color=_ink(v, vmax))
        for sp in ax.spines.values():
            sp.set_visible(False)
    if im is not None:
        cb = fig.colorbar(im, ax=fig.axes, location="bottom", shrink=0.6, aspect=35 if paper else 50,
                          pad=0.01)
        cb.set_label("EER (%)", fontsize=size)
        cb.ax.tick_params(labelsize=size)
    if n_m == 1:
        title = f"{title}: {names.get(models[0], models[0])}"
    fig.suptitle(safe_label(style.wrap(title, fig.get_figwidth(), style.title)))
    return fig


def heatmap_matrix(results: pd.DataFrame, models: Sequence[str] | None = None) -> pd.DataFrame:
    """EER (fraction) with rows = models, columns = conditions ('clean', 'family sK')."""
    models = _models(results, models)
    conds = conditions(results)
    idx = results.set_index(["model", "family", "severity"])["eer"]
    cols = {("clean" if c == CLEAN else f"{c[0]} s{c[1]}"): [idx.get((m, *c), np.nan) for m in models]
            for c in conds}
    return pd.DataFrame(cols, index=pd.Index(models, name="model"), dtype=float)


def condition_names(results: pd.DataFrame) -> list[str]:
    """Every condition as ``family level`` in the level's unit (``mp3 16 kb/s``), in heatmap_matrix's order."""
    labels = {f: level_labels(results, f) for f in families(results)}
    return ["clean" if c == CLEAN else f"{c[0]} {labels.get(c[0], {}).get(c[1], f's{c[1]}')}"
            for c in conditions(results)]


@styled
def fig_heatmap(results: pd.DataFrame, models: Sequence[str] | None = None, title: str = "EER (%) by condition",
                *, style: Style = SCREEN):
    """EER (%) of every model x condition; conditions named in units, as columns when they fit the width
    (rotated labels, one line each), else as rows."""
    mat = heatmap_matrix(results, models)
    n_m, n_c = mat.shape
    size = style.small
    names = [safe_label(c) for c in condition_names(results)]
    longest = max((len(c) for c in names), default=5) * 0.58 * size / 72
    line = size * 1.5 / 72
    across = 1.6 + n_c * line <= style.width and longest < 3.0
    data = 100 * mat.to_numpy(float)
    if not across:
        data = data.T
    rows, cols = data.shape
    if across:
        fig = new_figure(max(4.0, 1.8 + n_c * max(line, 0.32)), 1.4 + longest + rows * 0.3, style)
    else:
        label_in = min(longest, style.width - 1.3 - 0.4 * n_m)
        names = [style.wrap(c, label_in, size) for c in names]
        lines = max(c.count("\n") + 1 for c in names)
        fig = new_figure(label_in + 1.3 + 0.5 * n_m, 1.4 + max(lines * line, 0.25) * n_c, style)
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(data), aspect="auto", cmap="viridis", vmin=0,
                   vmax=max(50.0, float(np.nanmax(data))) if np.isfinite(data).any() else 50.0)
    model_names = [safe_label(m) for m in mat.index]
    xt, yt = (names, model_names) if across else (model_names, names)
    ax.set_xticks(np.arange(cols), xt, rotation=90, fontsize=size)
    ax.set_yticks(np.arange(rows), yt, fontsize=size)
    cell_w = fig.get_figwidth() * 0.75 / cols * 72
    if rows * cols <= ANNOTATE_MAX_CELLS and cell_w > 2.6 * size:
        for i in range(rows):
            for j in range(cols):
                if np.isfinite(data[i, j]):
                    ax.text(j, i, f"{data[i, j]:.1f}", ha="center", va="center", fontsize=size,
                            color="white" if data[i, j] < 30 else "black")
    fig.colorbar(im, ax=ax, label="EER (%)")
    ax.set_title(safe_label(title))
    return fig
