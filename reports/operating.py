"""The deployed operating point in the report: FAR and FRR at each model's clean EER threshold (with
bootstrap CIs), and ASVspoof 5's Cllr and actDCF; one table per model, one row per condition."""
from __future__ import annotations

from typing import Any

import pandas as pd

from reports import tables as T
from reports.load import condition_name, conditions

CAPTION = ("FAR: spoofs accepted, FRR: bona fide rejected, both at the threshold that gives the model's clean "
           "EER (a deployed detector keeps its calibrated threshold), % with 95% bootstrap CIs. Cllr (bits) and "
           "actDCF as ASVspoof 5 defines them (Pspoof 0.05, Cmiss 1, Cfa 10; scores taken as log-likelihood "
           "ratios, so they measure calibration too).")


def _cell(v: float, lo: float, hi: float) -> tuple[str, Any]:
    return T.eer_cell(v, lo, hi), T._num(v)


def operating_tables(res: pd.DataFrame, models: list[str]) -> list[T.Table]:
    """[] when results.csv predates the operating-point columns."""
    if "far_at_clean_threshold" not in res or not res["far_at_clean_threshold"].notna().any():
        return []
    idx = res.set_index(["model", "family", "severity"])
    out = []
    for m in models:
        rows = []
        for fam, sev in conditions(res):
            if (m, fam, sev) not in idx.index:
                continue
            r = idx.loc[(m, fam, sev)]
            label = condition_name(res, fam, sev)
            rows.append([(label, label),
                         _cell(r["far_at_clean_threshold"], r["far_ci_low"], r["far_ci_high"]),
                         _cell(r["frr_at_clean_threshold"], r["frr_ci_low"], r["frr_ci_high"]),
                         (T.ratio(r["cllr"]), T._num(r["cllr"])), (T.ratio(r["actdcf"]), T._num(r["actdcf"]))])
        if rows:
            out.append(T.Table(f"Operating point of {m}: error rates at its clean EER threshold",
                               ["condition", "FAR %", "FRR %", "Cllr", "actDCF"], rows, caption=CAPTION,
                               key=f"operating-point-{m}"))
    return out
