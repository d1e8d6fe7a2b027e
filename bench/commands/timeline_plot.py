"""The figure of a score timeline: each window's score against time (a point at the window's centre, the window's
span as a thin grey bar), with the decision threshold as a dashed line and the windows below it marked in red.
matplotlib is imported here only, when a figure is asked for (``bench score --timeline --figures DIR``).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np


def timeline_figure(start_s: Sequence[float], end_s: Sequence[float], scores: Sequence[float],
                    threshold: float | None = None, title: str = ""):
    """A matplotlib Figure: the score of each window at its centre, the window's span as a horizontal bar, the
    threshold as a dashed line and windows under it (spoof decisions) in red."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    st, en, sc = (np.asarray(v, dtype=float) for v in (start_s, end_s, scores))
    mid = (st + en) / 2
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=110)
    ax.hlines(sc, st, en, colors="0.75", linewidth=1, zorder=1)
    ax.plot(mid, sc, "-", color="tab:blue", linewidth=1.2, zorder=2, label="window score")
    if threshold is not None:
        ax.axhline(threshold, color="k", linestyle="--", linewidth=1, label=f"threshold {threshold:.3g}")
        low = sc < threshold
        ax.plot(mid[low], sc[low], "o", color="tab:red", markersize=3, zorder=3, label="spoof decision")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score (higher = bona fide)")
    if len(st):
        ax.set_xlim(float(st.min()), float(en.max()))
    ax.set_title(title, fontsize=9)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_timeline_figures(df, folder: str | Path, threshold: float | None = None, model: str = "") -> list[Path]:
    """One PNG per file of a :func:`bench.api.score_timeline` table: ``folder/<stem>.timeline.png`` (a stem seen
    twice gets ``-2``, ``-3`` ...). Files without a scored window get none."""
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out, used = [], set()
    for path, sub in df[df["start_s"].notna()].groupby("path", sort=False):
        stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", Path(str(path)).stem) or "audio"
        name, k = stem, 1
        while name in used:
            k += 1
            name = f"{stem}-{k}"
        used.add(name)
        fig = timeline_figure(sub["start_s"], sub["end_s"], sub["score"], threshold,
                              title=f"{path} ({model})" if model else str(path))
        target = folder / f"{name}.timeline.png"
        fig.savefig(target)
        plt.close(fig)
        out.append(target)
    return out
