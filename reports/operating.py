"""The deployed operating point in the report: FAR and FRR at each model's clean EER threshold (with
bootstrap CIs), and ASVspoof 5's Cllr and actDCF, one row per condition."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from reports import tables as T
from reports.load import CLEAN, conditions


def _cell(v: float, lo: float, hi: float) -> tuple[str, Any]:
    return T.eer_cell(v, lo, hi), T._num(v)


def operating_table(res: pd.DataFrame, models: list[str]) -> T.Table | None:
    """None when results.csv predates the operating-point columns."""
    if "far_at_clean_threshold" not in res or not res["far_at_clean_threshold"].notna().any():
        return None
    idx = res.set_index(["model", "family", "severity"])
    cols = ["condition"]
    for m in models:
        cols += [f"{m} FAR %", f"{m} FRR %", f"{m} Cllr", f"{m} actDCF"]
    rows = []
    for fam, sev in conditions(res):
        row: list[tuple[str, Any]] = [("clean" if (fam, sev) == CLEAN else f"{fam} s{sev}",) * 2]
        for m in models:
            if (m, fam, sev) not in idx.index:
                row += [("–", None)] * 4
                continue
            r = idx.loc[(m, fam, sev)]
            row += [_cell(r["far_at_clean_threshold"], r["far_ci_low"], r["far_ci_high"]),
                    _cell(r["frr_at_clean_threshold"], r["frr_ci_low"], r["frr_ci_high"]),
                    (T.ratio(r["cllr"]), T._num(r["cllr"])), (T.ratio(r["actdcf"]), T._num(r["actdcf"]))]
        rows.append(row)
    return T.Table("Operating point: error rates at each model's clean EER threshold", cols, rows,
                   caption="FAR: spoofs accepted, FRR: bona fide rejected, both at the threshold that gives the "
                   "model's clean EER (a deployed detector keeps its calibrated threshold), % with 95% bootstrap "
                   "CIs. Cllr (bits) and actDCF as ASVspoof 5 defines them (Pspoof 0.05, Cmiss 1, Cfa 10; scores "
                   "taken as log-likelihood ratios, so they measure calibration too).", key="operating-point",
                   notes=[] if np.isfinite(res["clean_threshold"]).all() else
                   ["a model without a clean EER has no operating point"])
