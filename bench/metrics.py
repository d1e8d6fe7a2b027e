"""Detection metrics for anti-spoofing scores (higher score = more bona fide).

* :func:`eer` is the official ASVspoof / AASIST ``compute_eer``: every cut of the stable
  ascending sort (bona fide before spoof within a tie), the FIRST cut that minimises
  ``|FRR - FAR|``, reported as ``(FRR + FAR) / 2``, no interpolation. A consequence of that
  tie rule: a constant detector (all scores tied) gets EER 1.0, not 0.5.
* :func:`min_tdcf` is the ASVspoof 2019 legacy t-DCF (what AASIST reports) or the revised
  formulation used for ASVspoof 2021 ranking (``tDCF_python_v2``).
* :func:`bootstrap_eer_ci` resamples utterances (bona fide and spoof separately) or whole
  clusters (speakers) and recomputes the official EER for every resample, vectorised.
* :func:`summarize` / :func:`breakdowns` turn a scores table into per-condition rows.

Threshold semantics follow the official DET curve: a score ``<= threshold`` is rejected
(classified spoof), a score ``> threshold`` is accepted as bona fide.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

import numpy as np

BONAFIDE, SPOOF = "bonafide", "spoof"

#: t-DCF costs and priors of ASVspoof 2019 / 2021 (identical numbers, different formulas).
PSPOOF = 0.05
TDCF_COSTS = {
    "Pspoof": PSPOOF,
    "Ptar": (1 - PSPOOF) * 0.99,   # 0.9405
    "Pnon": (1 - PSPOOF) * 0.01,   # 0.0095
    "Cmiss": 1.0,                  # legacy names: Cmiss_asv = Cmiss_cm
    "Cfa": 10.0,                   # legacy: Cfa_asv
    "Cfa_spoof": 10.0,             # legacy: Cfa_cm
}


def _scores(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name}: no scores (an EER needs at least one bona fide and one spoof score)")
    if not np.all(np.isfinite(a)):
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise ValueError(f"{name}: {bad} of {a.size} scores are NaN or infinite; "
                         "drop or fix them before computing metrics")
    return a


def det_curve(bonafide_scores, spoof_scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Official DET curve: ``(frr, far, thresholds)`` over all ``n + 1`` cuts.

    Cut 0 rejects nothing (threshold = lowest score - 0.001); cut k rejects the k lowest
    scores of the stable sort, with bona fide placed before spoof within a tie.
    """
    bona = _scores(bonafide_scores, "bonafide_scores")
    spoof = _scores(spoof_scores, "spoof_scores")
    allsc = np.concatenate([bona, spoof])
    is_bona = np.concatenate([np.ones(bona.size), np.zeros(spoof.size)])
    order = np.argsort(allsc, kind="mergesort")
    lab = is_bona[order]
    tar_sums = np.cumsum(lab)
    non_sums = spoof.size - (np.arange(1, allsc.size + 1) - tar_sums)
    frr = np.concatenate([[0.0], tar_sums / bona.size])
    far = np.concatenate([[1.0], non_sums / spoof.size])
    thr = np.concatenate([[allsc[order[0]] - 0.001], allsc[order]])
    return frr, far, thr


def eer(bonafide_scores, spoof_scores) -> tuple[float, float]:
    """Equal error rate and its threshold, exactly as the official ``compute_eer``."""
    frr, far, thr = det_curve(bonafide_scores, spoof_scores)
    k = int(np.argmin(np.abs(frr - far)))
    return float(np.mean((frr[k], far[k]))), float(thr[k])


# ---------------------------------------------------------------- t-DCF
def asv_error_rates(asv_target, asv_nontarget, asv_spoof) -> dict[str, float]:
    """ASV operating point fixed at its EER threshold, as the official ``obtain_asv_error_rates``."""
    tar = _scores(asv_target, "asv_target")
    non = _scores(asv_nontarget, "asv_nontarget")
    spf = _scores(asv_spoof, "asv_spoof")
    _, thr = eer(tar, non)
    pmiss_spoof = float(np.sum(spf < thr) / spf.size)
    return {"threshold": thr,
            "Pfa": float(np.sum(non >= thr) / non.size),
            "Pmiss": float(np.sum(tar < thr) / tar.size),
            "Pmiss_spoof": pmiss_spoof,
            "Pfa_spoof": float(np.sum(spf >= thr) / spf.size)}


def tdcf_curve(bonafide_scores, spoof_scores, asv_target, asv_nontarget, asv_spoof,
               formula: str = "2019", costs: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Normalised t-DCF at every CM cut: ``(tdcf, cm_thresholds)``.

    ``"2019"``: legacy ASVspoof 2019 formula ``(C1 Pmiss_cm + C2 Pfa_cm) / min(C1, C2)``.
    ``"2021"``: revised formula ``(C0 + C1 Pmiss_cm + C2 Pfa_cm) / (C0 + min(C1, C2))``.
    """
    c = dict(TDCF_COSTS, **(costs or {}))
    if min(c["Ptar"], c["Pnon"], c["Pspoof"]) < 0 or abs(c["Ptar"] + c["Pnon"] + c["Pspoof"] - 1) > 1e-10:
        raise ValueError(f"t-DCF priors must be non-negative and sum to 1, got {c}")
    asv = asv_error_rates(asv_target, asv_nontarget, asv_spoof)
    pmiss_cm, pfa_cm, thr = det_curve(bonafide_scores, spoof_scores)
    formula = str(formula)
    if formula == "2019":
        c1 = c["Ptar"] * (c["Cmiss"] - c["Cmiss"] * asv["Pmiss"]) - c["Pnon"] * c["Cfa"] * asv["Pfa"]
        c2 = c["Cfa_spoof"] * c["Pspoof"] * (1 - asv["Pmiss_spoof"])
        if c1 <= 0 or c2 <= 0:
            raise ValueError(f"t-DCF weights must be positive (C1={c1}, C2={c2}): check the ASV scores")
        return (c1 * pmiss_cm + c2 * pfa_cm) / min(c1, c2), thr
    if formula == "2021":
        c0 = c["Ptar"] * c["Cmiss"] * asv["Pmiss"] + c["Pnon"] * c["Cfa"] * asv["Pfa"]
        c1 = c["Ptar"] * c["Cmiss"] - c0
        c2 = c["Pspoof"] * c["Cfa_spoof"] * asv["Pfa_spoof"]
        if c0 < 0 or c1 < 0 or c2 < 0 or c0 + min(c1, c2) <= 0:
            raise ValueError(f"t-DCF weights must be non-negative (C0={c0}, C1={c1}, C2={c2}): "
                             "check the ASV scores")
        return (c0 + c1 * pmiss_cm + c2 * pfa_cm) / (c0 + min(c1, c2)), thr
    raise ValueError(f"formula must be '2019' (legacy, AASIST) or '2021' (revised), got {formula!r}")


def min_tdcf(bonafide_scores, spoof_scores, asv_target, asv_nontarget, asv_spoof,
             formula: str = "2019", costs: dict | None = None) -> float:
    """Minimum normalised t-DCF over all CM thresholds (see :func:`tdcf_curve`)."""
    curve, _ = tdcf_curve(bonafide_scores, spoof_scores, asv_target, asv_nontarget, asv_spoof,
                          formula=formula, costs=costs)
    return float(np.min(curve))


# ---------------------------------------------------------------- threshold metrics
def auc(bonafide_scores, spoof_scores) -> float:
    """ROC AUC: P(bona fide score > spoof score), ties counted as 0.5 (Mann-Whitney U).

    Written here (five lines of ranks) rather than taken from scikit-learn's ``roc_auc_score``, which gives
    the same number but would add scikit-learn and its compiled dependencies for this one function."""
    bona = _scores(bonafide_scores, "bonafide_scores")
    spoof = _scores(spoof_scores, "spoof_scores")
    _, inv, cnt = np.unique(np.concatenate([bona, spoof]), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(cnt) - (cnt - 1) / 2.0)[inv]          # average 1-based ranks of tied groups
    u = ranks[:bona.size].sum() - bona.size * (bona.size + 1) / 2.0
    return float(u / (bona.size * spoof.size))


def error_rates(bonafide_scores, spoof_scores, threshold: float | None = None) -> tuple[float, float]:
    """``(FRR, FAR)`` at a threshold (score > threshold accepted); None = the EER threshold."""
    bona = _scores(bonafide_scores, "bonafide_scores")
    spoof = _scores(spoof_scores, "spoof_scores")
    if threshold is None:
        threshold = eer(bona, spoof)[1]
    return float(np.mean(bona <= threshold)), float(np.mean(spoof > threshold))


def accuracy(bonafide_scores, spoof_scores, threshold: float | None = None) -> float:
    """Fraction of all utterances classified correctly (None = at the EER threshold)."""
    bona = _scores(bonafide_scores, "bonafide_scores")
    spoof = _scores(spoof_scores, "spoof_scores")
    frr, far = error_rates(bona, spoof, threshold)
    return float(((1 - frr) * bona.size + (1 - far) * spoof.size) / (bona.size + spoof.size))


def balanced_accuracy(bonafide_scores, spoof_scores, threshold: float | None = None) -> float:
    """Mean of the per-class accuracies (None = at the EER threshold)."""
    frr, far = error_rates(bonafide_scores, spoof_scores, threshold)
    return float(1 - (frr + far) / 2)


# ---------------------------------------------------------------- bootstrap
def _eer_rows(rows: np.ndarray, ranks: np.ndarray, is_bona: np.ndarray, n_rows: int) -> np.ndarray:
    """Official EER of many resamples at once.

    ``rows[i]`` says which resample item i belongs to, ``ranks[i]`` its position in the global
    stable sort of the original scores (so the per-row sort reproduces the official tie order),
    ``is_bona[i]`` its class. Returns one EER per row (NaN where a row lacks a class).
    """
    n_rank = int(ranks.max()) + 1 if ranks.size else 1
    lab_of_rank = np.zeros(n_rank)
    lab_of_rank[ranks] = is_bona
    # counting sort by (row, rank): linear time; copies of one item are tied and share a label
    mult = np.bincount(rows.astype(np.int64) * n_rank + ranks, minlength=n_rows * n_rank)
    lab = np.repeat(np.tile(lab_of_rank, n_rows), mult)
    per_rank = mult.reshape(n_rows, n_rank)
    counts = per_rank.sum(axis=1)
    nb = per_rank @ lab_of_rank                            # bona fide items per row
    ns = counts - nb
    starts = np.cumsum(counts) - counts
    csum = np.cumsum(lab)
    base = np.concatenate([[0.0], csum])[starts]
    rep = lambda v: np.repeat(v, counts)                   # noqa: E731 - per-row value per item
    tar = csum - rep(base)                                 # bona fide rejected so far in the row
    pos = np.arange(lab.size) - rep(starts) + 1            # items rejected so far in the row
    nb_i, ns_i = rep(nb), rep(ns)
    with np.errstate(divide="ignore", invalid="ignore"):
        frr = tar / nb_i
        far = (ns_i - (pos - tar)) / ns_i
        diff = np.abs(frr - far)
    out = np.full(n_rows, np.nan)
    ok = (nb > 0) & (ns > 0)
    if not ok.any():
        return out
    diff[~rep(ok)] = np.inf
    nz = counts > 0
    seg_min = np.full(n_rows, np.inf)
    seg_min[nz] = np.minimum.reduceat(diff, starts[nz])
    # first cut per row reaching the row minimum (rows are contiguous and in order)
    hit = np.flatnonzero(diff == rep(seg_min))
    hit_rows = np.repeat(np.arange(n_rows), counts)[hit]
    keep = np.concatenate([[True], hit_rows[1:] != hit_rows[:-1]])
    first = np.full(n_rows, -1)
    first[hit_rows[keep]] = hit[keep]
    sel = ok & (first >= 0)
    e = (frr[first[sel]] + far[first[sel]]) / 2
    # cut 0 (|0 - 1| = 1) would come first only if no later cut did better
    out[sel] = np.where(seg_min[sel] < 1.0, e, 0.5)
    return out


_CHUNK_ITEMS = 1_000_000   # resampled items handled per vectorised pass: bounds memory (~120 MB)


def bootstrap_eers(bonafide_scores, spoof_scores, n_boot: int = 1000, seed: int = 0,
                   groups: tuple[Sequence, Sequence] | None = None) -> np.ndarray:
    """The official EER of ``n_boot`` resamples (see :func:`bootstrap_eer_ci`)."""
    bona = _scores(bonafide_scores, "bonafide_scores")
    spoof = _scores(spoof_scores, "spoof_scores")
    n_boot = int(n_boot)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    # bona fide and spoof draws come from two streams of the seed, so the resamples do not depend on
    # how many are drawn per pass (_CHUNK_ITEMS): memory can be bounded without changing any CI
    rng, rng_spoof = np.random.default_rng(seed).spawn(2)
    allsc = np.concatenate([bona, spoof])
    is_bona = np.concatenate([np.ones(bona.size, bool), np.zeros(spoof.size, bool)])
    rank = np.empty(allsc.size, np.int64)
    rank[np.argsort(allsc, kind="mergesort")] = np.arange(allsc.size)
    if groups is not None:
        gb, gs = groups
        if len(gb) != bona.size or len(gs) != spoof.size:
            raise ValueError("groups must be (bonafide_groups, spoof_groups) with one entry per score")
        keys = np.asarray([str(g) for g in list(gb) + list(gs)])
        uniq, gid = np.unique(keys, return_inverse=True)
        members = np.argsort(gid, kind="stable")                 # items grouped by cluster
        sizes = np.bincount(gid, minlength=uniq.size)
        offs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out = np.empty(n_boot)
    chunk = max(1, _CHUNK_ITEMS // max(1, allsc.size))
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        if groups is None:
            ib = rng.integers(0, bona.size, size=(m, bona.size))
            is_ = rng_spoof.integers(0, spoof.size, size=(m, spoof.size)) + bona.size
            items = np.concatenate([ib, is_], axis=1).ravel()
            rows = np.repeat(np.arange(m), allsc.size)
        else:
            pick = rng.integers(0, uniq.size, size=(m, uniq.size)).ravel()
            psz = sizes[pick]
            rows = np.repeat(np.repeat(np.arange(m), uniq.size), psz)
            within = np.arange(psz.sum()) - np.repeat(np.cumsum(psz) - psz, psz)
            items = members[np.repeat(offs[pick], psz) + within]
        out[start:start + m] = _eer_rows(rows, rank[items], is_bona[items], m)
    return out


def bootstrap_eer_ci(bonafide_scores, spoof_scores, n_boot: int = 1000, alpha: float = 0.05,
                     seed: int = 0, groups: tuple[Sequence, Sequence] | None = None) -> tuple[float, float]:
    """Percentile bootstrap confidence interval ``(low, high)`` of the official EER.

    Without ``groups``: bona fide and spoof utterances are resampled with replacement, each
    class keeping its size. With ``groups=(bonafide_groups, spoof_groups)`` (for example the
    speaker of every score): whole clusters are resampled (cluster bootstrap), so correlated
    utterances of one speaker move together; resamples lacking a class are skipped.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    eers = bootstrap_eers(bonafide_scores, spoof_scores, n_boot=n_boot, seed=seed, groups=groups)
    eers = eers[np.isfinite(eers)]
    if eers.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(eers, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


# ---------------------------------------------------------------- tables
SUMMARY_COLUMNS = ("n_bonafide", "n_spoof", "eer", "eer_threshold", "eer_ci_low", "eer_ci_high", "auc")
#: grouping columns whose value describes the spoof only (bona fide rows carry "-"): a group is
#: that value's spoofs against all bona fide of the enclosing group, as in the official packages.
SPOOF_ONLY = ("attack",)


def _seed_for(seed: int, key) -> int:
    h = hashlib.blake2b(repr(key).encode(), digest_size=4).digest()
    return int(seed) * 1_000_003 + int.from_bytes(h, "little")


def _row(sub, n_boot: int, alpha: float, seed: int, cluster: str | None) -> dict:
    lab = sub["label"].to_numpy()
    sc = sub["score"].to_numpy(dtype=np.float64)
    ok = np.isfinite(sc)
    bmask, smask = (lab == BONAFIDE) & ok, (lab == SPOOF) & ok
    b, s = sc[bmask], sc[smask]
    row = {"n_bonafide": int(b.size), "n_spoof": int(s.size), "eer": np.nan, "eer_threshold": np.nan,
           "eer_ci_low": np.nan, "eer_ci_high": np.nan, "auc": np.nan}
    if b.size and s.size:
        row["eer"], row["eer_threshold"] = eer(b, s)
        row["auc"] = auc(b, s)
        if n_boot > 0:
            groups = None
            if cluster is not None:
                g = sub[cluster].astype(str).to_numpy()
                groups = (g[bmask], g[smask])
            row["eer_ci_low"], row["eer_ci_high"] = bootstrap_eer_ci(
                b, s, n_boot=n_boot, alpha=alpha, seed=seed, groups=groups)
    return row


def summarize(df, by: Iterable[str] | None = None, *, n_boot: int = 1000, alpha: float = 0.05,
              seed: int = 0, cluster: str | None = None, spoof_only: Iterable[str] = SPOOF_ONLY):
    """Per-group metrics of a scores table.

    ``df`` has a ``label`` column (``bonafide``/``spoof``), a ``score`` column and the grouping
    columns ``by``. Returns one row per group with the ``by`` columns and ``n_bonafide``,
    ``n_spoof``, ``eer``, ``eer_threshold``, ``eer_ci_low``, ``eer_ci_high``, ``auc``; with no
    ``by`` a single pooled row. Groups lacking a class get NaN metrics. Columns listed in
    ``spoof_only`` (default ``attack``) are grouped on the spoof rows only and each group is
    scored against all bona fide rows that share the other ``by`` values. ``cluster`` names a
    column (for example ``speaker``) for the cluster bootstrap. Non-finite scores are left out
    of the counts. The bootstrap seed of each group derives from ``seed`` and the group key, so
    a group's interval does not depend on which other groups are present.
    """
    import pandas as pd

    by = list(by or [])
    need = {"label", "score", *by} | ({cluster} if cluster else set())
    missing = sorted(need - set(df.columns))
    if missing:
        raise KeyError(f"scores table lacks column(s) {missing}; it has {list(df.columns)}")
    bad = sorted(set(df["label"].unique()) - {BONAFIDE, SPOOF})
    if bad:
        raise ValueError(f"label column must hold 'bonafide'/'spoof', found {bad}")
    so = [c for c in by if c in set(spoof_only)]
    plain = [c for c in by if c not in so]
    rows = []
    outer = [((), df)] if not plain else [
        (k if isinstance(k, tuple) else (k,), g) for k, g in df.groupby(plain, sort=True, dropna=False)]
    for pkey, g in outer:
        base = dict(zip(plain, pkey))
        if not so:
            rows.append({**base, **_row(g, n_boot, alpha, _seed_for(seed, pkey), cluster)})
            continue
        bona = g[g["label"] == BONAFIDE]
        spoofs = g[g["label"] == SPOOF]
        for skey, sg in spoofs.groupby(so, sort=True, dropna=False):
            skey = skey if isinstance(skey, tuple) else (skey,)
            sub = pd.concat([bona, sg])
            rows.append({**base, **dict(zip(so, skey)),
                         **_row(sub, n_boot, alpha, _seed_for(seed, pkey + skey), cluster)})
    out = pd.DataFrame(rows, columns=by + list(SUMMARY_COLUMNS))
    return out.astype({"n_bonafide": int, "n_spoof": int})


def breakdowns(df, by: Iterable[str] = (), factors: Iterable[str] = ("attack", "codec", "speaker", "source"),
               **kwargs):
    """Pooled and per-factor rows in one long table.

    For every group of ``by`` (for example model, family, severity): one ``factor="pooled"``,
    ``level="all"`` row, then one row per level of each factor column present in ``df``
    (missing factor columns are skipped). Keyword arguments go to :func:`summarize`.
    """
    import pandas as pd

    by = list(by)
    parts = []
    pooled = summarize(df, by, **kwargs)
    pooled.insert(len(by), "factor", "pooled")
    pooled.insert(len(by) + 1, "level", "all")
    parts.append(pooled)
    for f in factors:
        if f not in df.columns or f in by:
            continue
        t = summarize(df, by + [f], **kwargs).rename(columns={f: "level"})
        t.insert(len(by), "factor", f)
        t["level"] = t["level"].astype(str)
        parts.append(t)
    return pd.concat(parts, ignore_index=True)
