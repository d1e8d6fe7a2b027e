"""Tables derived from the store: results.csv, scores.csv, problems.csv. Always recomputable."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from bench.store import Store

log = logging.getLogger(__name__)

SCORE_COLUMNS = list(Store.SCORE_COLUMNS)
RESULT_COLUMNS = ["model", "suite", "family", "severity", "n_bonafide", "n_spoof", "eer", "eer_ci_low",
                  "eer_ci_high", "auc", "eer_threshold", "kind", "params", "adv_attack", "source", "through",
                  "snr_db", "pesq", "stoi"]
#: a condition's structure (bench.suite.Condition.columns), in results.csv and scores.csv
CONDITION_COLUMNS = ["adv_attack", "source", "through"]


def results_table(scores: pd.DataFrame, suite: str, conditions: Sequence, n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """One row per model x condition, in the suite's condition order (clean first); no quality columns
    (they come from the store, see :func:`results_from_store`)."""
    groups = ((model, family, int(severity), g["label"].to_numpy(), g["score"].to_numpy(float), ())
              for (model, family, severity), g in scores.groupby(["model", "family", "severity"], sort=False))
    return _table(groups, suite, conditions, n_boot, seed)


def results_from_store(store, suite: str, conditions: Sequence, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """:func:`results_table` of a run's store, reading one condition's scores at a time."""
    def groups():
        for model, family, severity in store.groups():
            labels, scores = store.group_scores(model, family, severity)
            yield (model, family, int(severity), np.asarray(labels), np.asarray(scores, float),
                   store.group_quality(model, family, severity))
    return _table(groups(), suite, conditions, n_boot, seed)


def _table(groups: Iterable[tuple], suite: str, conditions: Sequence, n_boot: int, seed: int) -> pd.DataFrame:
    from bench import metrics
    from bench.quality import medians

    order = {(c.family, c.severity): i for i, c in enumerate(conditions)}
    info = {(c.family, c.severity): c for c in conditions}
    rows, models = [], {}
    for model, family, severity, labels, scores, quality in groups:
        models.setdefault(model, len(models))
        bona, spoof = scores[labels == "bonafide"], scores[labels == "spoof"]
        eer = thr = auc = lo = hi = float("nan")
        if len(bona) and len(spoof):
            eer, thr = metrics.eer(bona, spoof)
            auc = metrics.auc(bona, spoof)
            lo, hi = metrics.bootstrap_eer_ci(bona, spoof, n_boot=n_boot, seed=seed)
        c = info.get((family, severity))
        rows.append({"model": model, "suite": suite, "family": family, "severity": severity,
                     "n_bonafide": len(bona), "n_spoof": len(spoof), "eer": float(eer),
                     "eer_ci_low": float(lo), "eer_ci_high": float(hi), "auc": float(auc),
                     "eer_threshold": float(thr), "kind": c.kind if c else "",
                     "params": json.dumps(c.spec.get("params", {}), sort_keys=True, default=str) if c else "",
                     **(c.columns() if c else dict.fromkeys(CONDITION_COLUMNS, "")),
                     **medians(quality),
                     "_order": order.get((family, severity), len(order)), "_m": models[model]})
    df = pd.DataFrame(rows, columns=RESULT_COLUMNS + ["_order", "_m"])
    return df.sort_values(["_m", "_order"]).drop(columns=["_order", "_m"]).reset_index(drop=True)


def with_condition_columns(chunks: Iterable[pd.DataFrame], conditions: Sequence) -> Iterator[pd.DataFrame]:
    """Score chunks with the condition's structure (``adv_attack``, ``source``, ``through``) added."""
    cols = {(c.family, int(c.severity)): c.columns() for c in conditions}
    empty = dict.fromkeys(CONDITION_COLUMNS, "")
    for chunk in chunks:
        keys = list(zip(chunk["family"], chunk["severity"].astype(int)))
        for name in CONDITION_COLUMNS:
            chunk[name] = [cols.get(k, empty)[name] for k in keys]
        yield chunk


def write_tables(folder: Path, results: pd.DataFrame, scores: pd.DataFrame | Iterable[pd.DataFrame],
                 problems: pd.DataFrame) -> None:
    """Writes the three tables atomically; ``scores`` may be an iterable of chunks (streamed to disk)."""
    folder = Path(folder)
    for name, df in (("results.csv", results), ("scores.csv", scores), ("problems.csv", problems)):
        tmp = folder / (name + ".tmp")
        if isinstance(df, pd.DataFrame):
            df.to_csv(tmp, index=False)
        else:
            with open(tmp, "w", newline="") as f:
                header = True
                for chunk in df:
                    chunk.to_csv(f, index=False, header=header)
                    header = False
                if header:   # no scores at all: still a table with its columns
                    f.write(",".join(SCORE_COLUMNS + CONDITION_COLUMNS) + "\n")
        tmp.replace(folder / name)


def read_scores_csv(path: Path) -> pd.DataFrame:
    """scores.csv as written by :func:`write_tables` (ids stay strings, scores round-trip exactly)."""
    # pandas 3 parses floats exactly by default and deprecates the option; pandas 2 needs it
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    return pd.read_csv(path, dtype={c: str for c in ("utt_id", "model", "family", "label", "policy",
                                                     *CONDITION_COLUMNS)},
                       keep_default_na=False, **exact)


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
