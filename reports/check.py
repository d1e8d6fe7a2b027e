"""`bench check`: a pass/fail gate of a run against a baseline run.

A condition fails when ``EER(new) - EER(baseline) > max_increase`` (fractions: 0.01 = one EER point),
or when the baseline has an EER and the new run has none. Conditions are matched on (family, severity);
models are paired by name, else in order (see :mod:`reports.pairing`). Conditions present in only one
run are listed in the notes, not failed. ``families`` keeps only those families (name ``clean`` to keep
the clean condition); ``exclude`` drops families. Unusable inputs raise :class:`RunError` (exit 2).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from reports.load import RunError, conditions, load_run
from reports.pairing import pair_models

COLUMNS = ["model", "baseline_model", "family", "severity", "baseline_eer", "eer", "increase", "failed", "reason"]
TOLERANCE = 1e-12


@dataclass
class CheckResult:
    rows: pd.DataFrame
    max_increase: float
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> pd.DataFrame:
        return self.rows[self.rows["failed"]]

    @property
    def ok(self) -> bool:
        return not bool(self.rows["failed"].any())

    def worst(self) -> pd.Series | None:
        inc = self.rows["increase"].to_numpy(float)
        if not np.isfinite(inc).any():
            return None
        return self.rows.iloc[int(np.nanargmax(inc))]


def _split_names(v: str | Sequence[str] | None) -> list[str]:
    if v is None:
        return []
    items = v.split(",") if isinstance(v, str) else [x for s in v for x in str(s).split(",")]
    return [x.strip() for x in items if x.strip()]


def check_runs(run_dir: str | Path, baseline_dir: str | Path, max_increase: float,
               families: str | Sequence[str] | None = None,
               exclude: str | Sequence[str] | None = None) -> CheckResult:
    try:
        x = float(max_increase)
    except (TypeError, ValueError) as e:
        raise RunError("--max-eer-increase must be a number (a fraction: 0.01 = one point), "
                       f"got {max_increase!r}") from e
    if not 0 <= x <= 1 or not np.isfinite(x):
        raise RunError("--max-eer-increase must be a fraction in [0, 1] (0.01 = one EER point), "
                       f"got {max_increase!r}")
    new, base = load_run(run_dir), load_run(baseline_dir)
    keep, drop = _split_names(families), _split_names(exclude)
    known = set(new.results["family"]) | set(base.results["family"])
    unknown = [f for f in keep + drop if f not in known]
    if unknown:
        raise RunError(f"family {', '.join(map(repr, unknown))} is in neither run; their families: "
                       f"{', '.join(sorted(known))}")
    notes: list[str] = []
    pairs, pn = pair_models(new.models, base.models)
    notes += pn
    if not pairs:
        raise RunError(f"no model of {new.path} can be paired with one of {base.path}")

    def wanted(c: tuple[str, int]) -> bool:
        return (not keep or c[0] in keep) and c[0] not in drop

    c_new = [c for c in conditions(new.results) if wanted(c)]
    c_base = [c for c in conditions(base.results) if wanted(c)]
    common = [c for c in c_new if c in set(c_base)]
    if not common:
        raise RunError(f"{new.path} and {base.path} have no (family, severity) condition in common"
                       + (" after the family filters" if keep or drop else ""))
    only_new = [c for c in c_new if c not in set(c_base)]
    only_base = [c for c in c_base if c not in set(c_new)]
    if only_new:
        notes.append("not in the baseline (not checked): " + ", ".join(f"{f}@{s}" for f, s in only_new))
    if only_base:
        notes.append("in the baseline only (not checked): " + ", ".join(f"{f}@{s}" for f, s in only_base))
    e_new = new.results.set_index(["model", "family", "severity"])["eer"]
    e_base = base.results.set_index(["model", "family", "severity"])["eer"]
    rows = []
    for m, bm in pairs:
        for fam, sev in common:
            a = float(e_new.get((m, fam, sev), np.nan))
            b = float(e_base.get((bm, fam, sev), np.nan))
            if not np.isfinite(b):
                if np.isfinite(a) or (bm, fam, sev) in e_base.index:
                    notes.append(f"{bm} has no baseline EER at {fam}@{sev}: not checked")
                continue
            if not np.isfinite(a):
                rows.append([m, bm, fam, sev, b, np.nan, np.nan, True, "no EER in the new run"])
                continue
            inc = a - b
            bad = inc > x + TOLERANCE
            rows.append([m, bm, fam, sev, b, a, inc, bad, f"rose by more than {100 * x:g} points" if bad else ""])
    df = pd.DataFrame(rows, columns=COLUMNS).astype({"failed": bool})
    if df.empty:
        raise RunError("no condition has an EER in both runs: nothing to check")
    return CheckResult(df, x, notes)


def format_result(res: CheckResult) -> str:
    """Human-readable lines: the verdict, then each failed condition with both EERs."""
    n = len(res.rows)
    lines = []
    if res.ok:
        w = res.worst()
        at = (f"; largest increase {100 * w['increase']:+.2f} points at {w['family']}@{w['severity']} ({w['model']})"
              if w is not None else "")
        lines.append(f"OK: {n} conditions checked, none rose by more than {100 * res.max_increase:g} EER points{at}")
    else:
        f = res.failed
        lines.append(f"FAIL: {len(f)} of {n} conditions rose by more than {100 * res.max_increase:g} EER points:")
        for r in f.itertuples():
            who = r.model if r.model == r.baseline_model else f"{r.model} (baseline {r.baseline_model})"
            new = "none" if not np.isfinite(r.eer) else f"{100 * r.eer:.2f}%"
            inc = "" if not np.isfinite(r.increase) else f" ({100 * r.increase:+.2f} points)"
            lines.append(f"  {who} {r.family}@{r.severity}: baseline {100 * r.baseline_eer:.2f}% -> {new}{inc}")
    lines += [f"note: {n_}" for n_ in res.notes]
    return "\n".join(lines)
