"""Tables derived from the store: results.csv, scores.csv, problems.csv. Always recomputable."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import pandas as pd

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["model", "suite", "family", "severity", "n_bonafide", "n_spoof", "eer", "eer_ci_low",
                  "eer_ci_high", "auc", "eer_threshold", "kind", "params"]


def results_table(scores: pd.DataFrame, suite: str, conditions: Sequence, n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """One row per model x condition, in the suite's condition order (clean first)."""
    from bench import metrics

    order = {(c.family, c.severity): i for i, c in enumerate(conditions)}
    info = {(c.family, c.severity): c for c in conditions}
    rows = []
    for (model, family, severity), g in scores.groupby(["model", "family", "severity"], sort=False):
        bona = g.loc[g["label"] == "bonafide", "score"].to_numpy(float)
        spoof = g.loc[g["label"] == "spoof", "score"].to_numpy(float)
        eer = thr = auc = lo = hi = float("nan")
        if len(bona) and len(spoof):
            eer, thr = metrics.eer(bona, spoof)
            auc = metrics.auc(bona, spoof)
            lo, hi = metrics.bootstrap_eer_ci(bona, spoof, n_boot=n_boot, seed=seed)
        c = info.get((family, int(severity)))
        rows.append({"model": model, "suite": suite, "family": family, "severity": int(severity),
                     "n_bonafide": len(bona), "n_spoof": len(spoof), "eer": float(eer),
                     "eer_ci_low": float(lo), "eer_ci_high": float(hi), "auc": float(auc),
                     "eer_threshold": float(thr), "kind": c.kind if c else "",
                     "params": json.dumps(c.spec.get("params", {}), sort_keys=True, default=str) if c else "",
                     "_order": order.get((family, int(severity)), len(order))})
    df = pd.DataFrame(rows, columns=RESULT_COLUMNS + ["_order"])
    models = list(dict.fromkeys(scores["model"])) if len(scores) else []
    df["_m"] = df["model"].map({m: i for i, m in enumerate(models)})
    return df.sort_values(["_m", "_order"]).drop(columns=["_order", "_m"]).reset_index(drop=True)


def write_tables(folder: Path, results: pd.DataFrame, scores: pd.DataFrame, problems: pd.DataFrame) -> None:
    folder = Path(folder)
    for name, df in (("results.csv", results), ("scores.csv", scores), ("problems.csv", problems)):
        tmp = folder / (name + ".tmp")
        df.to_csv(tmp, index=False)
        tmp.replace(folder / name)


def summary_pivot(results: pd.DataFrame) -> pd.DataFrame:
    """EER (%) with families as rows and severities as columns (clean first); one row per model x family."""
    if results.empty:
        return pd.DataFrame()
    r = results.assign(eer_pct=(100 * results["eer"]).round(2))
    clean = r[r["family"] == "clean"].set_index("model")["eer_pct"]
    rest = r[r["family"] != "clean"]
    if rest.empty:
        return pd.DataFrame({"family": "clean", "model": clean.index, "clean": clean.to_numpy()})
    t = rest.pivot_table(index=["family", "model"], columns="severity", values="eer_pct", sort=False)
    t.columns = [str(c) for c in t.columns]
    t = t.reset_index()
    t.insert(2, "clean", t["model"].map(clean))
    return t.astype(object).where(t.notna(), None)
