"""Matching two runs: models (by name, else in order) and conditions ((family, severity)).

Model pairing rule (used by `bench check` and `bench compare`): models that have the same name in
both runs are paired by name. When the runs share no model name (the usual case of a new checkpoint
under another name), models are paired in order, first with first, second with second; models left
over on either side are not compared (a note says so).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from reports.load import Run


def pair_models(new: list[str], base: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """[(new model, baseline model)] and notes about models that were left out or paired by order."""
    notes: list[str] = []
    common = [m for m in new if m in base]
    if common:
        pairs = [(m, m) for m in common]
        left_new = [m for m in new if m not in common]
        left_base = [m for m in base if m not in common]
        if left_new:
            notes.append(f"models without a namesake in the baseline are not compared: {', '.join(left_new)}")
        if left_base:
            notes.append(f"baseline models absent from the new run: {', '.join(left_base)}")
        return pairs, notes
    pairs = list(zip(new, base))
    if pairs:
        notes.append("no model name is shared, so models are paired in order: "
                     + ", ".join(f"{a} vs {b}" for a, b in pairs))
    if len(new) != len(base):
        extra = new[len(pairs):] or base[len(pairs):]
        notes.append(f"left unpaired: {', '.join(extra)}")
    return pairs, notes


def condition_params(run: Run) -> dict[tuple[str, int], str]:
    """(family, severity) -> its params JSON (the first model's; '' when unknown)."""
    out: dict[tuple[str, int], str] = {}
    for f, s, p in zip(run.results["family"], run.results["severity"], run.results["params"]):
        out.setdefault((str(f), int(s)), str(p))
    return out


def differences(runs: list[Run]) -> list[str]:
    """What differs between the first run and each other one: data, utterance count, conditions, levels."""
    out: list[str] = []
    first = runs[0]
    c0 = condition_params(first)
    d0 = first.meta.get("data", {}) if isinstance(first.meta.get("data"), dict) else {}
    for r in runs[1:]:
        d = r.meta.get("data", {}) if isinstance(r.meta.get("data"), dict) else {}
        for who, dd in ((first, d0), (r, d)):
            if not dd:
                out.append(f"{who.path}: run.json has no data record, so the data cannot be verified")
        if d0 and d:
            for k in ("spec", "n_utterances", "n_bonafide"):
                if k in d0 or k in d:
                    if d0.get(k) != d.get(k):
                        out.append(f"data {k}: {d0.get(k)!r} in {first.name} but {d.get(k)!r} in {r.name}")
        c = condition_params(r)
        only0 = sorted(set(c0) - set(c))
        only1 = sorted(set(c) - set(c0))
        if only0:
            out.append(f"conditions only in {first.name}: {_conds(only0)}")
        if only1:
            out.append(f"conditions only in {r.name}: {_conds(only1)}")
        changed = sorted(k for k in set(c0) & set(c) if c0[k] and c[k] and c0[k] != c[k])
        if changed:
            out.append(f"level parameters differ between {first.name} and {r.name} for: {_conds(changed)}")
    return list(dict.fromkeys(out))


def _conds(cs, limit: int = 12) -> str:
    text = ", ".join(f"{f}@{s}" for f, s in cs[:limit])
    return text + (f" (+{len(cs) - limit} more)" if len(cs) > limit else "")


def paired_diff_ci(scores_a: pd.DataFrame, scores_b: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                   alpha: float = 0.05) -> tuple[float, float] | None:
    """CI of EER(b) - EER(a) by a paired bootstrap over utterances, or None when they do not match.

    Both frames hold one condition of one model (utt_id, label, score). They match when they hold the
    same (utt_id, label) pairs with finite scores. Each resample draws bona fide and spoof utterances
    with replacement (class sizes kept, as the CIs in results.csv) and takes the same utterances from both
    sides: both sides are sorted by utt_id and :func:`bench.metrics.bootstrap_eers` is called with the same
    seed and sizes, so it draws the same positions, i.e. the same utterances (tests check this pairing).
    """
    from bench.metrics import bootstrap_eers

    parts = []
    for df in (scores_a, scores_b):
        d = df[np.isfinite(df["score"].to_numpy(float))]
        if d["utt_id"].duplicated().any():
            return None
        parts.append(d.set_index("utt_id")[["label", "score"]].sort_index())
    a, b = parts
    if len(a) == 0 or not a.index.equals(b.index) or not (a["label"] == b["label"]).all():
        return None
    eers = []
    for d in (a, b):
        bona = (d["label"] == "bonafide").to_numpy()
        spoof = (d["label"] == "spoof").to_numpy()
        if not bona.any() or not spoof.any():
            return None
        sc = d["score"].to_numpy(float)
        eers.append(bootstrap_eers(sc[bona], sc[spoof], n_boot=n_boot, seed=seed))
    diff = eers[1] - eers[0]
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return None
    lo, hi = np.quantile(diff, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)
