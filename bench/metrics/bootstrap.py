"""Bootstrap confidence intervals of the official EER: :func:`bootstrap_eer_ci` resamples utterances
(bona fide and spoof separately) or whole clusters (speakers) and recomputes the official EER for every
resample, vectorised (:func:`_eer_rows` reproduces the official tie order per resample)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from bench.metrics.detection import _scores

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
