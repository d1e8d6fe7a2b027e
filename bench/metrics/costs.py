"""Costs and the deployed operating point, beside the EER of :mod:`bench.metrics`.

* :func:`cllr`, :func:`act_dcf`, :func:`min_dcf`: as ASVspoof 5 defines them (its evaluation package,
  track 1: Pspoof 0.05, Cmiss 1, Cfa 10), with the scores taken as natural-log likelihood ratios.
* :func:`bootstrap_rate_ci`: the CI of an error rate at a fixed threshold (the clean condition's EER
  threshold: what a deployed detector keeps), by utterance or by cluster (speaker).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from bench.metrics.detection import _scores, det_curve

#: ASVspoof 5 (track 1) detection cost parameters, as in its evaluation package (calculate_metrics.py)
DCF_COSTS = {"Pspoof": 0.05, "Cmiss": 1.0, "Cfa": 10.0}


def cllr(bonafide_scores, spoof_scores) -> float:
    """Log-likelihood-ratio cost in bits, as ASVspoof 5 defines it (``calculate_CLLR``): the scores are
    taken as natural-log likelihood ratios (bona fide vs spoof), and
    ``Cllr = (mean(log(1 + e^-s_bona)) + mean(log(1 + e^s_spoof))) / (2 ln 2)``. 1.0 = an uninformative
    but calibrated system (all scores 0); larger = miscalibrated (the scale of the scores matters)."""
    bona = _scores(bonafide_scores, "bonafide_scores")
    spoof = _scores(spoof_scores, "spoof_scores")
    return float(0.5 * (np.mean(np.logaddexp(0.0, -bona)) + np.mean(np.logaddexp(0.0, spoof))) / np.log(2))


def act_dcf(bonafide_scores, spoof_scores, p_spoof: float = DCF_COSTS["Pspoof"], c_miss: float = DCF_COSTS["Cmiss"],
            c_fa: float = DCF_COSTS["Cfa"]) -> float:
    """Actual normalised DCF as ASVspoof 5 defines it (``compute_actDCF``): the Bayes threshold of
    log-likelihood-ratio scores, ``t = -ln(beta)`` with ``beta = Cmiss (1 - Pspoof) / (Cfa Pspoof)``;
    a bona fide score ``< t`` is a miss, a spoof score ``>= t`` a false acceptance;
    ``(Cmiss (1 - Pspoof) Pmiss + Cfa Pspoof Pfa) / min(Cfa Pspoof, Cmiss (1 - Pspoof))``."""
    bona = _scores(bonafide_scores, "bonafide_scores")
    spoof = _scores(spoof_scores, "spoof_scores")
    beta = c_miss * (1 - p_spoof) / (c_fa * p_spoof)
    t = -np.log(beta)
    p_miss, p_fa = np.mean(bona < t), np.mean(spoof >= t)
    cost = c_miss * (1 - p_spoof) * p_miss + c_fa * p_spoof * p_fa
    return float(cost / min(c_fa * p_spoof, c_miss * (1 - p_spoof)))


def min_dcf(bonafide_scores, spoof_scores, p_spoof: float = DCF_COSTS["Pspoof"], c_miss: float = DCF_COSTS["Cmiss"],
            c_fa: float = DCF_COSTS["Cfa"]) -> float:
    """Minimum normalised DCF over the official DET curve's cuts (ASVspoof 5 ``compute_mindcf``)."""
    frr, far, _ = det_curve(bonafide_scores, spoof_scores)
    c = c_miss * (1 - p_spoof) * frr + c_fa * p_spoof * far
    return float(np.min(c) / min(c_miss * (1 - p_spoof), c_fa * p_spoof))


def bootstrap_rate_ci(errors, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                      groups: Sequence | None = None) -> tuple[float, float]:
    """Percentile bootstrap CI of an error rate (the mean of a boolean array) at a fixed threshold.

    Without ``groups`` the items are resampled with replacement; with ``groups`` (one key per item,
    e.g. its speaker) whole clusters are resampled and the rate is errors / items over the drawn
    clusters. The threshold is not re-estimated: it is the deployed one (e.g. the clean EER's)."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    if e.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    if groups is None:
        draws = rng.binomial(e.size, e.mean(), size=int(n_boot)) / e.size   # = resampling the items
    else:
        keys = np.asarray([str(g) for g in groups])
        if keys.size != e.size:
            raise ValueError("groups must hold one entry per item")
        _, gid = np.unique(keys, return_inverse=True)
        err_k = np.bincount(gid, weights=e)
        n_k = np.bincount(gid).astype(np.float64)
        pick = rng.integers(0, n_k.size, size=(int(n_boot), n_k.size))
        draws = err_k[pick].sum(1) / n_k[pick].sum(1)
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)
