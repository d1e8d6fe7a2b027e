"""`bench check`: a pass/fail gate of a run against a baseline run, one a CI can rely on.

Every (model, condition) of the baseline is checked; conditions are matched on (family, severity) and
must carry the same level parameters; models are paired by name, else in order (see :mod:`reports.pairing`).

A condition fails when
- it is in the baseline but missing from the new run, or its level parameters differ (unless
  ``allow_missing``: then it is listed as ``missing`` and not failed);
- the new run has no EER where the baseline has one;
- the EER rose by more than ``max_increase`` (a fraction: 0.01 = one point), or, with
  ``max_far_increase``, the false-acceptance rate at the deployed threshold rose by more than that: the
  operating point both runs were given (``bench run --operating-point``, results.csv's ``far_at_op``, a spoof
  at the threshold accepted) when they were given the same one, else the model's clean EER threshold.

Two modes (always named in the output): ``threshold`` (default) compares the point estimates;
``significant`` fails only when the lower bound of the paired bootstrap's 95% CI of the increase
exceeds the threshold (a +25-point rise with a CI of [0, 75] on 16 clips is then not a failure).
The CI is always shown: a paired bootstrap when both runs scored the same utterances (scores.csv), over
whole speakers when scores.csv names at least ``bench.run.results.MIN_SPEAKERS`` of them (as the runner's
CIs), else over utterances; otherwise independent bootstraps of the two runs (``unpaired``).

The runs must have used the same data (run.json data digest, else spec and counts) and the same suite
(name and digest); otherwise the check refuses (exit 2) unless ``allow_data_change`` /
``allow_suite_change``. ``families`` keeps only those families (``clean`` for the clean condition);
``exclude`` drops families. Unusable inputs raise :class:`RunError` (exit 2).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from reports.load import Run, RunError, condition_name, conditions, load_run
from reports.check_inputs import describe_inputs, same_inputs, scoring_differences
from reports.pairing import condition_params, pair_models

COLUMNS = ["model", "baseline_model", "family", "severity", "condition", "baseline_eer", "eer", "increase", "ci_low",
           "ci_high", "ci_kind", "baseline_far", "far", "far_increase", "far_ci_low", "far_ci_high", "over_limit",
           "significant", "status", "failed", "reason"]
TOLERANCE = 1e-12
MODES = ("threshold", "significant")


@dataclass
class CheckResult:
    rows: pd.DataFrame
    max_increase: float
    notes: list[str] = field(default_factory=list)
    mode: str = "threshold"
    max_far_increase: float | None = None
    allow_missing: bool = False
    far_point: str = "the clean threshold"    # where FAR is read: the clean EER threshold or an operating point
    #: what was compared: {"new": ..., "baseline": ...}, each with the folder, models and digests, utterances
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def n_over(self) -> int:
        """Conditions whose EER (or FAR) rise is over the limit by the point estimate."""
        return int(self.rows["over_limit"].sum())

    @property
    def n_significant(self) -> int:
        """Conditions whose rise is over the limit even at the lower bound of its 95% CI."""
        return int(self.rows["significant"].sum())

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

    def to_dict(self) -> dict[str, Any]:
        rows = self.rows.astype(object).where(self.rows.notna(), None).to_dict(orient="records")
        return {"ok": self.ok, "mode": self.mode, "max_eer_increase": self.max_increase,
                "max_far_increase": self.max_far_increase, "far_at": self.far_point,
                "allow_missing": self.allow_missing,
                "n_failed": int(self.rows["failed"].sum()), "n_over_limit": self.n_over,
                "n_significant": self.n_significant, "inputs": self.inputs, "notes": self.notes, "conditions": rows}


def _split_names(v: str | Sequence[str] | None) -> list[str]:
    if v is None:
        return []
    items = v.split(",") if isinstance(v, str) else [x for s in v for x in str(s).split(",")]
    return [x.strip() for x in items if x.strip()]


def _fraction(value: Any, flag: str) -> float:
    unit = "one EER point" if "eer" in flag else "one percentage point"
    try:
        x = float(value)
    except (TypeError, ValueError) as e:
        raise RunError(f"{flag} must be a number (a fraction: 0.01 = {unit}), got {value!r}") from e
    if not np.isfinite(x) or not 0 <= x <= 1:
        raise RunError(f"{flag} must be a fraction in [0, 1] (0.01 = {unit}), got {value!r}")
    return x


def _scores_by_group(run: Run) -> dict[tuple[str, str, int], pd.DataFrame]:
    sc = run.scores
    if sc is None:
        return {}
    return {(m, f, int(s)): g for (m, f, s), g in sc.groupby(["model", "family", "severity"], sort=False)}


def _clean_thresholds(run: Run) -> dict[str, float]:
    r = run.results
    clean = r[(r["family"] == "clean") & (r["severity"] == 0)]
    col = "clean_threshold" if "clean_threshold" in r and clean["clean_threshold"].notna().any() else "eer_threshold"
    return {m: float(t) for m, t in zip(clean["model"], pd.to_numeric(clean[col], errors="coerce"))}


def _far_point(new: Run, base: Run, notes: list[str]) -> tuple[str, str, dict[str, float], dict[str, float], bool]:
    """Where FAR is read: ``(column, label, new thresholds, baseline thresholds, ties accepted)``. The operating
    point of ``bench run --operating-point`` when both runs have the same one, else the clean EER threshold."""
    def point(run: Run) -> str | None:
        r = run.results
        if "far_at_op" not in r or "operating_point" not in r or not r["far_at_op"].notna().any():
            return None
        specs = {str(v) for v in r["operating_point"].dropna() if str(v)}
        return specs.pop() if len(specs) == 1 else None

    def thresholds(run: Run) -> dict[str, float]:
        r = run.results
        clean = r[(r["family"] == "clean") & (r["severity"] == 0)]
        return {m: float(t) for m, t in zip(clean["model"], pd.to_numeric(clean["op_threshold"], errors="coerce"))}

    pn, pb = point(new), point(base)
    if pn is not None and pn == pb:
        return "far_at_op", f"the operating point {pn}", thresholds(new), thresholds(base), True
    if pn is not None or pb is not None:
        notes.append(f"the runs were given different operating points (new: {pn or 'none'}, baseline: "
                     f"{pb or 'none'}): FAR is compared at each model's clean EER threshold instead")
    return "far_at_clean_threshold", "the clean threshold", _clean_thresholds(new), _clean_thresholds(base), False


def _draws(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _paired_speakers(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame | None:
    """Both sides' (label, score a, score b, speaker) by utt_id when they scored the same utterances (finite
    scores, same labels) and scores.csv names a speaker for every one of at least MIN_SPEAKERS speakers:
    then the CIs resample whole speakers, the same ones on both sides, as the runner's CIs do."""
    from bench.run.results import MIN_SPEAKERS

    if "speaker" not in a or "speaker" not in b:
        return None
    da, db = (d[np.isfinite(d["score"].to_numpy(float))].set_index("utt_id").sort_index() for d in (a, b))
    if da.index.has_duplicates or not da.index.equals(db.index) or not (da["label"] == db["label"]).all():
        return None
    sp = da["speaker"].astype(str)
    if (sp != db["speaker"].astype(str)).any() or sp.isin(["", "-"]).any() or sp.nunique() < MIN_SPEAKERS:
        return None
    return pd.DataFrame({"label": da["label"], "a": da["score"].astype(float), "b": db["score"].astype(float),
                         "speaker": sp})


def _far_diff_ci(a: pd.DataFrame, b: pd.DataFrame, thr_a: float, thr_b: float, n_boot: int, seed: int,
                 alpha: float = 0.05, ties: bool = False) -> tuple[float, float, str]:
    """CI of FAR(b) - FAR(a) at fixed thresholds: paired over spoof utterances (or whole speakers) when both
    hold the same ones."""
    sa = a[a["label"] == "spoof"].set_index("utt_id")["score"].sort_index()
    sb = b[b["label"] == "spoof"].set_index("utt_id")["score"].sort_index()
    if not len(sa) or not len(sb) or not np.isfinite(thr_a) or not np.isfinite(thr_b):
        return np.nan, np.nan, ""
    def accepted(v, t):   # the clean EER threshold rejects a tie (official rule), an operating point accepts it
        return (np.asarray(v, float) >= t if ties else np.asarray(v, float) > t).astype(float)

    ea, eb = accepted(sa.to_numpy(float), thr_a), accepted(sb.to_numpy(float), thr_b)
    pair = _paired_speakers(a, b)
    if pair is not None and (pair["label"] == "spoof").any():
        sp = pair[pair["label"] == "spoof"]
        _, gid = np.unique(sp["speaker"].to_numpy(), return_inverse=True)
        n_k = np.bincount(gid).astype(float)
        err_a = np.bincount(gid, weights=accepted(sp["a"].to_numpy(), thr_a))
        err_b = np.bincount(gid, weights=accepted(sp["b"].to_numpy(), thr_b))
        pick = _draws(n_k.size, n_boot, seed)
        n = n_k[pick].sum(1)
        diff, kind = (err_b[pick].sum(1) - err_a[pick].sum(1)) / n, "paired by speaker"
    elif sa.index.equals(sb.index):
        idx = _draws(len(ea), n_boot, seed)
        diff, kind = eb[idx].mean(1) - ea[idx].mean(1), "paired"
    else:
        diff = eb[_draws(len(eb), n_boot, seed + 1)].mean(1) - ea[_draws(len(ea), n_boot, seed)].mean(1)
        kind = "unpaired"
    lo, hi = np.quantile(diff, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi), kind


def _eer_diff_ci(a: pd.DataFrame | None, b: pd.DataFrame | None, n_boot: int, seed: int,
                 alpha: float = 0.05) -> tuple[float, float, str]:
    """CI of EER(b) - EER(a): paired when both scored the same utterances, else independent bootstraps."""
    from bench.metrics import bootstrap_eers
    from reports.pairing import paired_diff_ci

    if a is None or b is None:
        return np.nan, np.nan, ""
    pair = _paired_speakers(a, b)
    if pair is not None:
        bona, spoof = (pair["label"] == "bonafide").to_numpy(), (pair["label"] == "spoof").to_numpy()
        if bona.any() and spoof.any():
            sp = pair["speaker"].to_numpy()
            groups = (sp[bona], sp[spoof])
            # the same seed and clusters on both sides: the same speakers are drawn (a paired cluster bootstrap)
            ea, eb = (bootstrap_eers(pair[c].to_numpy()[bona], pair[c].to_numpy()[spoof], n_boot=n_boot, seed=seed,
                                     groups=groups) for c in ("a", "b"))
            diff = (eb - ea)[np.isfinite(eb - ea)]
            if diff.size:
                lo, hi = np.quantile(diff, [alpha / 2, 1 - alpha / 2])
                return float(lo), float(hi), "paired by speaker"
    ci = paired_diff_ci(a, b, n_boot=n_boot, seed=seed, alpha=alpha)
    if ci is not None:
        return ci[0], ci[1], "paired"
    eers = []
    for k, d in enumerate((a, b)):
        d = d[np.isfinite(d["score"].to_numpy(float))]
        bona = d.loc[d["label"] == "bonafide", "score"].to_numpy(float)
        spoof = d.loc[d["label"] == "spoof", "score"].to_numpy(float)
        if not bona.size or not spoof.size:
            return np.nan, np.nan, ""
        eers.append(bootstrap_eers(bona, spoof, n_boot=n_boot, seed=seed + k))
    diff = eers[1] - eers[0]
    diff = diff[np.isfinite(diff)]
    if not diff.size:
        return np.nan, np.nan, ""
    lo, hi = np.quantile(diff, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi), "unpaired"


def check_runs(run_dir: str | Path, baseline_dir: str | Path, max_increase: float,
               families: str | Sequence[str] | None = None, exclude: str | Sequence[str] | None = None, *,
               max_far_increase: float | None = None, mode: str = "threshold", allow_missing: bool = False,
               allow_data_change: bool = False, allow_suite_change: bool = False, n_boot: int = 1000,
               seed: int = 0) -> CheckResult:
    x = _fraction(max_increase, "--max-eer-increase")
    xf = None if max_far_increase is None else _fraction(max_far_increase, "--max-far-increase")
    if mode not in MODES:
        raise RunError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise RunError(f"--n-boot must be a positive integer, got {n_boot!r}")
    new, base = load_run(run_dir), load_run(baseline_dir)
    notes: list[str] = []
    problems = same_inputs(new, base)
    for p, allowed, flag in ((p, (allow_data_change if p.startswith("data") else allow_suite_change),
                              "--allow-data-change" if p.startswith("data") else "--allow-suite-change")
                             for p in problems):
        if not allowed:
            raise RunError(f"{new.path} and {base.path} are not comparable: {p}. A verdict across different "
                           f"inputs is not a verdict on the model; pass {flag} to check anyway")
        notes.append(f"checked although the runs differ in {p}")
    keep, drop = _split_names(families), _split_names(exclude)
    known = set(new.results["family"]) | set(base.results["family"])
    unknown = [f for f in keep + drop if f not in known]
    if unknown:
        raise RunError(f"family {', '.join(map(repr, unknown))} is in neither run; their families: "
                       f"{', '.join(sorted(known))}")
    notes += scoring_differences(new, base)
    pairs, pn = pair_models(new.models, base.models)
    notes += pn
    if not pairs:
        raise RunError(f"no model of {new.path} can be paired with one of {base.path}")

    def wanted(c: tuple[str, int]) -> bool:
        return (not keep or c[0] in keep) and c[0] not in drop

    c_base = [c for c in conditions(base.results) if wanted(c)]
    only_new = [c for c in conditions(new.results) if wanted(c) and c not in set(c_base)]
    if only_new:
        notes.append("not in the baseline (not checked): "
                     + ", ".join(condition_name(new.results, f, s) for f, s in only_new))
    if not c_base:
        raise RunError(f"{base.path} has no condition to check" + (" after the family filters" if keep or drop else ""))
    if not [c for c in c_base if c in set(conditions(new.results))]:
        raise RunError(f"{new.path} and {base.path} have no (family, severity) condition in common"
                       + (" after the family filters" if keep or drop else ""))
    p_new, p_base = condition_params(new), condition_params(base)
    r_new = new.results.set_index(["model", "family", "severity"])
    r_base = base.results.set_index(["model", "family", "severity"])
    g_new, g_base = _scores_by_group(new), _scores_by_group(base)
    far_col, far_point, t_new, t_base, ties = _far_point(new, base, notes)
    skipped_new = {s.get("family"): s.get("reason", "") for s in new.meta.get("skipped") or [] if isinstance(s, dict)}
    for fam, why in skipped_new.items():
        notes.append(f"the new run skipped {fam} (--skip-unavailable): {why}")
    rows = []
    for m, bm in pairs:
        for fam, sev in c_base:
            key_n, key_b = (m, fam, sev), (bm, fam, sev)
            b = float(r_base["eer"].get(key_b, np.nan))
            bfar = float(r_base[far_col].get(key_b, np.nan)) if far_col in r_base else np.nan
            row = dict(model=m, baseline_model=bm, family=fam, severity=sev,
                       condition=condition_name(base.results, fam, sev), baseline_eer=b, eer=np.nan,
                       increase=np.nan, ci_low=np.nan, ci_high=np.nan, ci_kind="", baseline_far=bfar, far=np.nan,
                       far_increase=np.nan, far_ci_low=np.nan, far_ci_high=np.nan, over_limit=False,
                       significant=False, status="ok", failed=False, reason="")
            if key_b not in r_base.index or not np.isfinite(b):
                notes.append(f"{bm} has no baseline EER at {condition_name(base.results, fam, sev)}: not checked")
                continue
            mismatch = (p_new.get((fam, sev)) and p_base.get((fam, sev))
                        and p_new[(fam, sev)] != p_base[(fam, sev)])
            if key_n not in r_new.index and fam in skipped_new:   # named as skipped, never silently missing
                row.update(status="skipped", failed=not allow_missing,
                           reason=f"skipped in the new run (--skip-unavailable): {skipped_new[fam]}"
                           + ("" if not allow_missing else " (allowed by --allow-missing)"))
                rows.append(row)
                continue
            if key_n not in r_new.index or mismatch:
                why = ("its level parameters differ from the baseline's" if mismatch
                       else "missing from the new run")
                row.update(status="missing", failed=not allow_missing,
                           reason=why + ("" if not allow_missing else " (allowed by --allow-missing)"))
                rows.append(row)
                continue
            a = float(r_new["eer"].get(key_n, np.nan))
            row["eer"] = a
            if not np.isfinite(a):
                row.update(status="FAIL", failed=True, reason="no EER in the new run")
                rows.append(row)
                continue
            inc = a - b
            lo, hi, kind = _eer_diff_ci(g_base.get(key_b), g_new.get(key_n), n_boot, seed)
            row.update(increase=inc, ci_low=lo, ci_high=hi, ci_kind=kind, over_limit=_exceeds(inc, lo, x, "threshold"),
                       significant=_exceeds(inc, lo, x, "significant"))
            reasons = []
            if _exceeds(inc, lo, x, mode):
                reasons.append(f"EER rose by more than {100 * x:g} points"
                               + (" (CI lower bound)" if mode == "significant" else ""))
            if far_col in r_new:
                fa = float(r_new[far_col].get(key_n, np.nan))
                row["far"] = fa
                if np.isfinite(fa) and np.isfinite(bfar):
                    flo, fhi, _k = _far_diff_ci(g_base[key_b], g_new[key_n], t_base.get(bm, np.nan),
                                                t_new.get(m, np.nan), n_boot, seed, ties=ties) \
                        if key_b in g_base and key_n in g_new else (np.nan, np.nan, "")
                    row.update(far_increase=fa - bfar, far_ci_low=flo, far_ci_high=fhi)
                    if xf is not None:
                        row["over_limit"] |= _exceeds(fa - bfar, flo, xf, "threshold")
                        row["significant"] |= _exceeds(fa - bfar, flo, xf, "significant")
                    if xf is not None and _exceeds(fa - bfar, flo, xf, mode):
                        reasons.append(f"FAR at {far_point} rose by more than {100 * xf:g} points"
                                       + (" (CI lower bound)" if mode == "significant" else ""))
            if xf is not None and not np.isfinite(row["far_increase"]):
                reasons.append(f"no FAR at {far_point} in both runs to check --max-far-increase against "
                               "(a results.csv from before these columns? give `bench run` again to rewrite it)")
            if mode == "significant" and not np.isfinite(lo):
                notes.append(f"{m} {condition_name(base.results, fam, sev)}: no bootstrap CI (scores.csv missing?), "
                             "so the significance mode "
                             "could not judge it: failed to be safe")
                reasons.append("no CI for the significance test")
            if reasons:
                row.update(status="FAIL", failed=True, reason="; ".join(reasons))
            rows.append(row)
    paired_base = {bm for _m, bm in pairs}
    for bm in [b for b in base.models if b not in paired_base]:   # a baseline model nobody was compared with
        for fam, sev in c_base:
            if (bm, fam, sev) in r_base.index:
                rows.append(dict(model="", baseline_model=bm, family=fam, severity=sev,
                                 condition=condition_name(base.results, fam, sev),
                                 baseline_eer=float(r_base["eer"].get((bm, fam, sev), np.nan)), eer=np.nan,
                                 increase=np.nan, ci_low=np.nan, ci_high=np.nan, ci_kind="", baseline_far=np.nan,
                                 far=np.nan, far_increase=np.nan, far_ci_low=np.nan, far_ci_high=np.nan,
                                 over_limit=False, significant=False, status="missing", failed=not allow_missing,
                                 reason="baseline model missing from the new run"
                                 + ("" if not allow_missing else " (allowed by --allow-missing)")))
    df = pd.DataFrame(rows, columns=COLUMNS).astype({"failed": bool, "over_limit": bool, "significant": bool})
    if df.empty:
        raise RunError("no condition has an EER in the baseline: nothing to check")
    return CheckResult(df, x, list(dict.fromkeys(notes)), mode, xf, allow_missing, far_point,
                       inputs={"new": describe_inputs(new), "baseline": describe_inputs(base)})


def _exceeds(inc: float, ci_low: float, limit: float, mode: str) -> bool:
    if mode == "significant":
        return bool(np.isfinite(ci_low) and ci_low > limit + TOLERANCE)
    return bool(inc > limit + TOLERANCE)
