"""The quality plot: how much harm to the listener (PESQ) buys how much harm to the detector (EER).

One point per condition, coloured and shaped by family (a legend names them), a family's levels joined
mildest to harshest; no per-point labels (61 conditions would pile into blobs). One panel per model; each
panel's axes are padded to its data, worse audio to the right.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from reports.figure import SCREEN, Style, legend_columns, new_figure, safe_label, styled

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")


def family_looks(fams: Sequence[str]) -> dict[str, tuple[str, str]]:
    """family -> (colour, marker): a colour of tab10 and a marker, no two families alike."""
    return {f: (f"C{i % 10}", MARKERS[(i + i // 10) % len(MARKERS)]) for i, f in enumerate(fams)}


@styled
def fig_eer_vs_pesq(results: pd.DataFrame, models: Sequence[str] | None = None,
                    names: Mapping[str, str] | None = None, *, style: Style = SCREEN):
    """EER (%) against median PESQ, one point per condition, one colour and marker per family (legend), each
    model's clean EER as a dashed line; one panel per model. None when no condition has a PESQ (a run from
    before the quality columns, or one with only the clean condition)."""
    from matplotlib.lines import Line2D

    if "pesq" not in results.columns:
        return None
    models = list(models) if models is not None else list(dict.fromkeys(results["model"]))
    names = dict(names or {})
    res = results[results["model"].isin(models)]
    pts = res[res["pesq"].notna() & res["eer"].notna()]
    if pts.empty:
        return None
    models = [m for m in models if (pts["model"] == m).any()]
    fams = list(dict.fromkeys(pts["family"]))
    looks = family_looks(fams)
    paper = style.name == "paper"
    ncol = 1 if paper else min(len(models), 3)
    nrow = int(np.ceil(len(models) / ncol))
    width = min(style.width, style.width if paper else 6.0 * ncol)
    ncol_legend = legend_columns(fams + ["clean EER"], style, width, 4)
    legend_rows = int(np.ceil((len(fams) + 1) / ncol_legend)) + 1
    fig = new_figure(width, nrow * (2.3 if paper else 3.6) + legend_rows * style.small * 1.5 / 72 + 0.6, style)
    axes = []
    for k, m in enumerate(models):
        ax = fig.add_subplot(nrow, ncol, k + 1, sharey=axes[0] if axes else None)
        axes.append(ax)
        sub = pts[pts["model"] == m].sort_values(["family", "severity"])
        for fam in fams:
            g = sub[sub["family"] == fam]
            if g.empty:
                continue
            color, marker = looks[fam]
            ax.plot(g["pesq"], 100 * g["eer"], color=color, marker=marker, linewidth=0.6 if paper else 0.9,
                    alpha=0.85, markersize=3.5 if paper else 6)
        clean = res[(res["model"] == m) & (res["family"] == "clean")]["eer"]
        if len(clean) and np.isfinite(clean.iloc[0]):
            ax.axhline(100 * clean.iloc[0], color="0.35", ls="--", lw=0.8)
        ax.margins(x=0.06, y=0.08)
        ax.invert_xaxis()     # worse audio to the right
        ax.set_ylabel("EER (%)")
        ax.set_xlabel(safe_label(style.wrap("median PESQ (wide band) against the clean input; worse to the right",
                                            fig.get_figwidth() / ncol * 0.85)))
        ax.grid(alpha=0.3)
        if len(models) > 1:
            ax.set_title(safe_label(names.get(m, m)), fontsize=style.text)
    handles = [Line2D([], [], color=c, marker=mk, linewidth=0.8, label=safe_label(f)) for f, (c, mk) in looks.items()]
    handles.append(Line2D([], [], color="0.35", ls="--", lw=0.8, label="clean EER"))
    fig.legend(handles=handles, loc="outside lower center", fontsize=style.small, frameon=False,
               ncol=ncol_legend,
               title="family (its levels joined, mildest to harshest)", title_fontsize=style.small)
    one = "" if len(models) > 1 else f": {names.get(models[0], models[0])}"
    fig.suptitle(safe_label(style.wrap(f"EER against listening quality{one}", fig.get_figwidth(), style.title)))
    return fig
