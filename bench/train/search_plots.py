"""Figures of an architecture search: a derived cell as a graph (inputs, intermediate nodes, output, each edge named
by its operation), and the architecture weights' evolution per epoch. Each saved as PNG and SVG."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence


def _save(fig, stem: Path) -> None:
    for ext in ("png", "svg"):
        path = stem.with_suffix(f".{ext}")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fig.savefig(tmp, format=ext, dpi=150)
        os.replace(tmp, path)


def plot_cell(stem: Path, genotype: Mapping[str, Any], kind: str) -> None:
    """The ``kind`` (normal or reduce) cell: c_{k-2}, c_{k-1} on the left, the intermediate nodes, c_{k} on the
    right; an arrow per chosen edge, labelled with its operation; concatenated nodes joined to the output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = genotype[kind]
    concat = genotype[f"{kind}_concat"]
    steps = len(edges) // 2
    pos = {0: (0.0, 0.75), 1: (0.0, 0.25)}
    for i in range(steps):   # a zigzag, so that no edge between two nodes runs through a third
        pos[i + 2] = (1.0 + i, 0.92 if i % 2 == 0 else 0.08)
    out = (steps + 1.2, 0.5)
    names = {0: "$c_{k-2}$", 1: "$c_{k-1}$", **{i + 2: str(i) for i in range(steps)}}
    fig, ax = plt.subplots(figsize=(2.0 + 1.7 * steps, 3.4), constrained_layout=True)
    for node in range(steps):
        for op, src in edges[2 * node:2 * node + 2]:
            (x0, y0), (x1, y1) = pos[int(src)], pos[node + 2]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops={"arrowstyle": "-|>", "color": "0.35", "shrinkA": 14, "shrinkB": 14})
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, op, fontsize=8, ha="center", va="center",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    for n in concat:
        (x0, y0) = pos[int(n)]
        ax.annotate("", xy=out, xytext=(x0, y0),
                    arrowprops={"arrowstyle": "-|>", "color": "tab:gray", "ls": "--", "shrinkA": 14, "shrinkB": 16})
    for n, (x, y) in pos.items():
        ax.text(x, y, names[n], ha="center", va="center", fontsize=10,
                bbox={"boxstyle": "circle", "fc": "tab:blue" if n < 2 else "lightsteelblue", "ec": "0.2"},
                color="white" if n < 2 else "black")
    ax.text(*out, "$c_{k}$", ha="center", va="center", fontsize=10,
            bbox={"boxstyle": "circle", "fc": "tab:green", "ec": "0.2"}, color="white")
    ax.set_xlim(-0.5, out[0] + 0.5)
    ax.set_ylim(-0.05, 1.1)
    ax.axis("off")
    ax.set_title(f"{kind} cell", fontsize=11)
    _save(fig, stem)
    plt.close(fig)


def plot_alphas(stem: Path, history: Sequence[Mapping[str, Any]], primitives: Sequence[str]) -> None:
    """Mean softmax weight of each operation over the edges, per epoch, for normal and reduction cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True, constrained_layout=True)
    epochs = [r["epoch"] for r in history]
    for ax, kind in zip(axes, ("normal", "reduce")):
        for op in primitives:
            ax.plot(epochs, [r.get(f"{kind}:{op}") for r in history], marker="o", ms=3, label=op)
        ax.set_title(f"{kind} cells")
        ax.set_xlabel("search epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean architecture weight")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(fig, stem)
    plt.close(fig)
