"""The competence check: is a model's clean EER informative on this data at all?

From each model's clean row (family ``clean``, severity 0) of results.csv:

* ``at-chance``: the clean EER's 95% bootstrap interval contains 50%, or the AUC is exactly 0.5 (e.g.
  every score tied, which the official EER algorithm reports as 100%): the model does not separate
  the classes on this data better than a coin (an EER above 50% inside such an interval is named too);
* ``inverted``: otherwise, a clean EER above 50%: the model ranks bona fide below spoof, so its class
  orientation is likely inverted (for ``hf:`` models: name the classes with ``--label-map``);
* ``ok`` otherwise (``unknown`` without a clean EER).

A flagged model's degradation numbers say nothing about robustness, so aggregates across models (the
report's mCE / corruption-error tables, ``bench compare``'s mean differences) leave it out and say
so; its own per-condition EERs are still shown. The terminal summary of ``bench run`` and the report
print the flags; they are never silent.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

AT_CHANCE = "at chance on this data"
TOO_FEW = "too few clips to tell"
#: below this clean EER a CI that still reaches 50% says the data are too few, not that the model is at chance
TELLING_EER = 0.4
INVERTED = "orientation likely inverted, see --label-map"


def check(results: pd.DataFrame) -> pd.DataFrame:
    """One row per model: model, clean_eer, eer_ci_low, eer_ci_high, status (ok | at-chance | inverted |
    undetermined | unknown), message (empty when ok). ``undetermined``: the clean EER is below
    :data:`TELLING_EER` but its CI still reaches 50% (8 clips: EER 25%, CI [0, 75]): too few clips to tell, which
    is said and does not leave the model out of aggregates."""
    cols = ["model", "clean_eer", "eer_ci_low", "eer_ci_high", "auc", "status", "message"]
    if results is None or results.empty:
        return pd.DataFrame(columns=cols)
    clean = results[(results["family"] == "clean") & (results["severity"].astype(int) == 0)]
    rows = []
    for model in dict.fromkeys(results["model"]):
        r = clean[clean["model"] == model]
        eer = lo = hi = auc = math.nan
        if len(r):
            eer, lo, hi = (float(r.iloc[0][c]) for c in ("eer", "eer_ci_low", "eer_ci_high"))
            auc = float(r.iloc[0]["auc"]) if "auc" in r.columns else math.nan
        rows.append({"model": model, "clean_eer": eer, "eer_ci_low": lo, "eer_ci_high": hi, "auc": auc,
                     **_status(model, eer, lo, hi, auc)})
    return pd.DataFrame(rows, columns=cols)


def _status(model: str, eer: float, lo: float, hi: float, auc: float = math.nan) -> dict[str, Any]:
    if not math.isfinite(eer):
        return {"status": "unknown", "message": ""}
    ci = f" [{100 * lo:.1f}, {100 * hi:.1f}]" if math.isfinite(lo) and math.isfinite(hi) else ""
    if auc == 0.5:
        return {"status": "at-chance",
                "message": f"{model}: clean EER {100 * eer:.1f}%{ci}, AUC 0.50 (no ranking): {AT_CHANCE}"}
    if math.isfinite(lo) and math.isfinite(hi) and lo <= 0.5 <= hi and eer < TELLING_EER:
        return {"status": "undetermined",
                "message": f"{model}: clean EER {100 * eer:.1f}%{ci}: the CI holds both a working detector and "
                           f"chance: {TOO_FEW} (more clips narrow it)"}
    if math.isfinite(lo) and math.isfinite(hi) and lo <= 0.5 <= hi:
        above = f" (the EER is above 50%: if that persists, {INVERTED})" if eer > 0.5 else ""
        return {"status": "at-chance",
                "message": f"{model}: clean EER {100 * eer:.1f}%{ci} contains 50%: {AT_CHANCE}{above}"}
    if eer > 0.5:
        return {"status": "inverted",
                "message": f"{model}: clean EER {100 * eer:.1f}%{ci} is above 50%: {INVERTED}"}
    return {"status": "ok", "message": ""}


def flagged(results: pd.DataFrame) -> dict[str, str]:
    """{model: message} for every model that is at chance or inverted."""
    c = check(results)
    return dict(zip(c.loc[c["status"].isin(["at-chance", "inverted"]), "model"],
                    c.loc[c["status"].isin(["at-chance", "inverted"]), "message"]))


def exclusion_note(excluded: list[str], what: str) -> str:
    """The sentence that says which models an aggregate leaves out, and why."""
    return (f"{what} leave out {', '.join(excluded)}: at chance or inverted on the clean condition "
            "(see the competence check)")
