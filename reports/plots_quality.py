"""The quality plot: how much harm to the listener (PESQ) buys how much harm to the detector (EER)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from reports.plots import _figure, _models, safe_label


ANNOTATE_MAX_POINTS = 40


def fig_eer_vs_pesq(results: pd.DataFrame, models: Sequence[str] | None = None):
    """EER (%) against median PESQ, one point per model x condition (circles: perturbations, triangles:
    attacks), each model's clean EER as a dashed line. None when no condition has a PESQ (a run from before
    the quality columns, or one with only the clean condition)."""
    if "pesq" not in results.columns:
        return None
    models = _models(results, models)
    res = results[results["model"].isin(models)]
    pts = res[res["pesq"].notna() & res["eer"].notna()]
    if pts.empty:
        return None
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    colors = {m: f"C{i % 10}" for i, m in enumerate(models)}
    for m in models:
        sub = pts[pts["model"] == m]
        kinds = sub["kind"] if "kind" in sub.columns else pd.Series("", index=sub.index)
        for is_attack, marker in ((False, "o"), (True, "^")):
            part = sub[(kinds == "attack") == is_attack]
            if len(part):
                ax.scatter(part["pesq"], 100 * part["eer"], color=colors[m], marker=marker, s=22, alpha=0.8,
                           label=safe_label(f"{m}{' (attacks)' if is_attack else ''}"))
        clean = res[(res["model"] == m) & (res["family"] == "clean")]["eer"]
        if len(clean) and np.isfinite(clean.iloc[0]):
            ax.axhline(100 * clean.iloc[0], color=colors[m], ls="--", lw=0.8)
    if len(pts) <= ANNOTATE_MAX_POINTS:
        for _, r in pts.iterrows():
            ax.annotate(safe_label(f"{r['family']} s{int(r['severity'])}"), (r["pesq"], 100 * r["eer"]),
                        fontsize=5, xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel("median PESQ (wide band, MOS-LQO) of the condition's audio against its clean input", fontsize=8)
    ax.set_ylabel("EER (%)", fontsize=8)
    ax.set_xlim(1.0, 4.7)
    ax.invert_xaxis()   # worse audio to the right
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    ax.set_title("EER against listening quality (dashed: clean EER)", fontsize=10)
    return fig
