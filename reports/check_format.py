"""The text `bench check` prints: the verdict and its mode, a table of every condition, then notes."""
from __future__ import annotations

import numpy as np

from reports.check import CheckResult


def _pct(v: float, signed: bool = False) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    return f"{100 * v:+.2f}" if signed else f"{100 * v:.2f}"


def format_result(res: CheckResult) -> str:
    """The verdict and mode, then a table of every condition (baseline EER, new EER, difference with
    its 95% CI, verdict; with --max-far-increase the FAR columns too), then notes."""
    n = len(res.rows)
    rule = (f"fail when the EER rose by more than {100 * res.max_increase:g} points"
            + (f" or the FAR at {res.far_point} by more than {100 * res.max_far_increase:g} points"
               if res.max_far_increase is not None else ""))
    how = ("mode significant: a condition fails only when the lower bound of the 95% paired-bootstrap CI of "
           "the increase exceeds the limit" if res.mode == "significant"
           else "mode threshold: the point estimate of the increase is compared with the limit")
    nf = int(res.rows["failed"].sum())
    n_missing = int((res.rows["status"] == "missing").sum())
    n_skipped = int((res.rows["status"] == "skipped").sum())
    head = (f"OK: {n} conditions checked, none failed" if res.ok
            else f"FAIL: {nf} of {n} conditions failed")
    lines = [head + f" ({rule}; {how})"]
    sig = significance_line(res)
    if sig:
        lines.append(sig)
    lines += [f"{who}: {describe(d)}" for who, d in (("new", res.inputs.get("new")),
                                                      ("baseline", res.inputs.get("baseline"))) if d]
    if n_missing:
        lines.append(f"{n_missing} baseline conditions are missing from the new run or differ in their parameters"
                     + (" (allowed by --allow-missing)" if res.allow_missing else ""))
    if n_skipped:
        lines.append(f"{n_skipped} baseline conditions were SKIPPED in the new run (their family could not run there)"
                     + (" (allowed by --allow-missing)" if res.allow_missing else ""))
    far = res.max_far_increase is not None or res.rows["far"].notna().any()
    hdr = ["model", "condition", "base EER %", "new EER %", "diff", "95% CI"]
    if far:
        hdr += ["base FAR %", "new FAR %", "FAR diff", "FAR 95% CI"]
    hdr += ["verdict"]
    table = [hdr]
    for r in res.rows.itertuples():
        who = (r.model if r.model == r.baseline_model else f"{r.model} (vs {r.baseline_model})") if r.model \
            else f"- (vs {r.baseline_model})"
        ci = (f"[{_pct(r.ci_low, True)}, {_pct(r.ci_high, True)}]"
              + {"unpaired": " unpaired", "paired by speaker": " spk"}.get(r.ci_kind, "")
              if np.isfinite(r.ci_low) else "-")
        cells = [who, r.condition, _pct(r.baseline_eer), _pct(r.eer), _pct(r.increase, True), ci]
        if far:
            fci = f"[{_pct(r.far_ci_low, True)}, {_pct(r.far_ci_high, True)}]" if np.isfinite(r.far_ci_low) else "-"
            cells += [_pct(r.baseline_far), _pct(r.far), _pct(r.far_increase, True), fci]
        verdict = {"ok": "ok", "missing": "MISSING" if r.failed else "missing (allowed)",
                   "skipped": "SKIPPED" if r.failed else "skipped (allowed)"}.get(r.status, "FAIL")
        cells.append(verdict + (f": {r.reason}" if r.reason and r.status == "FAIL" else ""))
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(hdr) - 1)]
    for row in table:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1])
    lines.append("differences are in percentage points (new - baseline); CIs by paired bootstrap over utterances, "
                 "over whole speakers where marked spk, independent where marked unpaired")
    for r in res.failed.itertuples():
        who = r.model if r.model == r.baseline_model else f"{r.model or '-'} (baseline {r.baseline_model})"
        if r.status in ("missing", "skipped"):
            lines.append(f"  {who} {r.condition}: {r.reason}")
            continue
        new = "none" if not np.isfinite(r.eer) else f"{100 * r.eer:.2f}%"
        inc = "" if not np.isfinite(r.increase) else f" ({100 * r.increase:+.2f} points)"
        lines.append(f"  {who} {r.condition}: baseline {100 * r.baseline_eer:.2f}% -> {new}{inc}: {r.reason}")
    lines += [f"note: {n_}" for n_ in res.notes]
    return "\n".join(lines)


def significance_line(res: CheckResult) -> str:
    """How many conditions are over the limit and how many of those are significant at 95% (the CI's lower
    bound over the limit too); '' when none is over it."""
    over, sig = res.n_over, res.n_significant
    if not over:
        return ""
    word = "condition" if over == 1 else "conditions"
    text = f"{over} {word} over the limit, {sig} significant at 95%"
    if sig < over:
        text += (": the others may be sampling noise - consider --significant or more data" if res.mode == "threshold"
                 else ": only those fail in mode significant")
    return text


def describe(d: dict) -> str:
    """One run as compared: its folder, each model's checkpoint digest, its utterance counts."""
    models = ", ".join(f"{m.get('name')} (sha256 {str(m['sha256'])[:12]})" if m.get("sha256") else
                       f"{m.get('name')} (no checkpoint digest)" for m in d.get("models", []))
    n, nb = d.get("n_utterances"), d.get("n_bonafide")
    clips = f"{n} utterances" + (f", {nb} bona fide" if nb is not None else "") if n is not None else "utterances ?"
    return f"{d.get('path')}: {models}; data {d.get('data') or '?'}, {clips}"
