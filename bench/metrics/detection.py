"""Detection metrics for anti-spoofing scores (higher score = more bona fide).

* :func:`eer` is the official ASVspoof / AASIST ``compute_eer``: every cut of the stable
  ascending sort (bona fide before spoof within a tie), the FIRST cut that minimises
  ``|FRR - FAR|``, reported as ``(FRR + FAR) / 2``, no interpolation. A consequence of that
  tie rule: a constant detector (all scores tied) gets EER 1.0, not 0.5.
* :func:`min_tdcf` is the ASVspoof 2019 legacy t-DCF (what AASIST reports) or the revised
  formulation used for ASVspoof 2021 ranking (``tDCF_python_v2``).

Threshold semantics follow the official DET curve: a score ``<= threshold`` is rejected
(classified spoof), a score ``> threshold`` is accepted as bona fide.
"""
from __future__ import annotations

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
