"""The calibration plot: EER, actDCF and Cllr of calibrated scores against a family's severity, side by side, so a
reader sees where a detector stays accurate but loses its calibration (the shipped threshold fails while the EER
looks fine). Data: ``results_calibrated.csv`` (:mod:`bench.run.calibrated`)."""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from reports.figure import SCREEN, new_figure, safe_label

PANELS = (("eer", "EER (%)", 100.0), ("actdcf", "actDCF (Bayes threshold)", 1.0), ("cllr", "Cllr (bits)", 1.0))


def fig_calibration_curve(cal: pd.DataFrame, family: str):
    """Three panels against the levels of ``family`` (clean first): EER (%), actDCF (with minDCF dashed) and Cllr
    (with min Cllr dashed), one colour per calibrated model; the dotted line at 1 is an uninformative system.
    None when the table has no row of ``family``."""
    if family == "clean" or not (cal["family"] == family).any():
        return None
    models = list(dict.fromkeys(cal["model"]))
    sevs = sorted({int(s) for s in cal.loc[cal["family"] == family, "severity"]})
    labels = {int(s): str(lab) for s, lab in zip(cal.loc[cal["family"] == family, "severity"],
                                                 cal.loc[cal["family"] == family, "level_label"])}
    ticks = ["clean"] + [textwrap.fill(labels.get(s) or f"s{s}", 12) for s in sevs]
    x = np.arange(len(ticks), dtype=float)
    fig = new_figure(10.5, 3.6, SCREEN)
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    dashed = {"actdcf": "min_dcf", "cllr": "min_cllr"}
    for i, m in enumerate(models):
        rows = cal[cal["model"] == m]
        clean = rows[(rows["family"] == "clean") & (rows["severity"] == 0)]
        fam = rows[rows["family"] == family].set_index("severity")
        for ax, (col, _title, scale) in zip(axes, PANELS):
            y = [float(clean[col].iloc[0]) if len(clean) else np.nan]
            y += [float(fam[col].get(s, np.nan)) for s in sevs]
            ax.plot(x, scale * np.asarray(y), marker="o", color=f"C{i % 10}", label=safe_label(m))
            if col in dashed:
                y2 = [float(clean[dashed[col]].iloc[0]) if len(clean) else np.nan]
                y2 += [float(fam[dashed[col]].get(s, np.nan)) for s in sevs]
                ax.plot(x, np.asarray(y2), ls="--", lw=0.9, color=f"C{i % 10}")
    for ax, (col, title, _scale) in zip(axes, PANELS):
        if col != "eer":
            ax.axhline(1.0, color="0.4", ls=":", lw=0.8)
        ax.set_xticks(x, [safe_label(t) for t in ticks], fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("lower is better", fontsize=8)
    fig.suptitle(safe_label(f"Calibrated scores under {family} (dashed: minDCF / min Cllr; dotted: uninformative)"),
                 fontsize=10)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(models), 4), fontsize="small", frameon=False)
    return fig
