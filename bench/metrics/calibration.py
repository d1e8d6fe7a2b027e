"""Score calibration and fusion (scores -> natural-log likelihood ratios) and the costs that judge them.

Scores: higher = more bona fide. "Target" = bona fide, "non-target" = spoof, as in BOSARIS. Every ``prior`` /
``p_target`` here is the bona fide prior; :func:`effective_prior` folds costs into it, and ``bench calibrate``
(:mod:`bench.run.calibrate`) fits at the effective prior of ASVspoof 5's application (:data:`DEFAULT_PRIOR`).

* :func:`train_fusion` / :func:`train_calibration`: prior-weighted linear logistic regression, the objective
  of BOSARIS's trainer (``train_binary_classifier``, read in pybosaris's Python port; an affine calibration
  is its one-score case, a linear fusion its d-score case): ``llr = w . x + b`` minimises
  ``[P/N_tar sum_tar softplus(-(llr + logit P)) + (1-P)/N_non sum_non softplus(llr + logit P)] / H(P)``,
  with ``H(P)`` the prior entropy in nats, so the objective (:func:`cxe`) is 1.0 for ``llr = 0``. The
  ``logit P`` offset makes ``llr`` a likelihood ratio (the prior is not absorbed in ``b``). No penalty
  by default (as BOSARIS); ``penalty=lam`` adds ``lam/2 * |w|^2`` (never on ``b``). Solved by Newton's
  method with a line search on standardised scores, trials sorted first so that the fit does not depend
  on their order (bit for bit). Data that a linear map separates (no finite optimum) are refused unless
  ``penalty > 0``. (ASVspoof 5's ``Tool-score-fusion`` instead calls scikit-learn with
  ``class_weight={0: 1-p, 1: p}``, p the empirical proportion, and its default L2 penalty: a different
  objective, not followed here.)
* :func:`cllr`: ``(mean_tar log2(1 + e^-llr) + mean_non log2(1 + e^llr)) / 2`` (Brummer & du Preez; the
  same formula as BOSARIS's ``cllr`` and ASVspoof 5's ``calculate_CLLR``).
* :func:`min_cllr`: the Cllr after the optimal monotone (non-decreasing) map, by the pool-adjacent-violators
  algorithm (PAV) on the target indicator sorted by score, llr = logit(PAV posterior) - log(N_tar/N_non).
  Tied scores are pooled (one score gets one llr): BOSARIS's ``rocch`` puts targets before non-targets in
  its stable sort so that PAV pools a tie; here ties are merged before PAV (scipy's weighted PAVA). No
  monotonicity epsilon, no Laplace pseudo-counts: infinite llrs of pure blocks cost exactly 0.
* :func:`act_dcf` / :func:`min_dcf`: BOSARIS's parametrisation (target prior, Cmiss, Cfa), the Bayes
  threshold ``t = -log(P Cmiss / ((1-P) Cfa))``, a target ``llr < t`` is a miss and a non-target
  ``llr >= t`` a false alarm, normalised by ``min(P Cmiss, (1-P) Cfa)``. This is exactly the CM-alone
  actDCF / minDCF of ASVspoof 5 (``compute_actDCF`` / ``compute_mindcf`` of its evaluation package,
  ``Pspoof = 0.05, Cmiss = 1, Cfa = 10``) at ``p_target = 1 - Pspoof``: same threshold (-ln 1.9), same
  tie rule, same normaliser; :data:`ASVSPOOF5_CM` holds those arguments. (Its a-DCF needs ASV scores: it
  rates a spoofing-aware speaker verifier, not a countermeasure alone.) ``min_dcf`` minimises over every
  threshold; ASVspoof 5 minimises over the cuts of its DET curve, which gives the same number (a cut inside
  a tie only adds misses before it removes false alarms, so it never beats the tie's end points).
"""
from __future__ import annotations

import logging

import numpy as np
from scipy.optimize import isotonic_regression, linprog

log = logging.getLogger(__name__)

#: ASVspoof 5's countermeasure cost model (Pspoof 0.05, Cmiss 1, Cfa 10) as act_dcf/min_dcf arguments
ASVSPOOF5_CM = {"p_target": 0.95, "c_miss": 1.0, "c_fa": 10.0}
#: the spoof prior of ASVspoof 5's cost model (``Pspoof``): what ``bench calibrate --prior`` names
DEFAULT_P_SPOOF = 0.05


def _values(x, name: str, allow_inf: bool = False) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name}: no scores (both classes need at least one)")
    bad = np.isnan(a) if allow_inf else ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name}: {int(bad.sum())} of {a.size} values are NaN{'' if allow_inf else ' or infinite'}; "
                         "drop or fix them first")
    return a


def _check_prior(p: float, name: str = "prior") -> float:
    p = float(p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {p}")
    return p


def logit(p: float) -> float:
    return float(np.log(p) - np.log1p(-p))


def effective_prior(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """The bona fide (target) prior that folds the costs in: ``P Cmiss / (P Cmiss + (1-P) Cfa)``. Its Bayes
    threshold equals :func:`bayes_threshold` of ``(P, Cmiss, Cfa)``, so a map fitted at this prior is fitted
    for the decisions that cost model makes (BOSARIS's "effective prior")."""
    p, cm, cf = _costs(p_target, c_miss, c_fa)
    return float(p * cm / (p * cm + (1 - p) * cf))


def prior_entropy(p: float) -> float:
    """``-P ln P - (1-P) ln(1-P)``: the prior-weighted cross-entropy of ``llr = 0`` (nats)."""
    p = _check_prior(p)
    return float(-p * np.log(p) - (1 - p) * np.log1p(-p))


# ---------------------------------------------------------------- cross-entropy costs
def cllr(tar_llr, non_llr) -> float:
    """Log-likelihood-ratio cost in bits (natural-log llrs in); 1.0 for ``llr = 0``, 0 for a perfect system."""
    tar = _values(tar_llr, "tar_llr", allow_inf=True)
    non = _values(non_llr, "non_llr", allow_inf=True)
    return float(0.5 * (np.mean(np.logaddexp(0.0, -tar)) + np.mean(np.logaddexp(0.0, non))) / np.log(2))


def cxe(tar_llr, non_llr, p_target: float) -> float:
    """The calibration objective: prior-weighted cross-entropy at ``p_target`` over ``H(p_target)``.

    Equals :func:`cllr` at ``p_target = 0.5``; 1.0 for ``llr = 0`` at any prior."""
    p = _check_prior(p_target, "p_target")
    tar = _values(tar_llr, "tar_llr", allow_inf=True)
    non = _values(non_llr, "non_llr", allow_inf=True)
    off = logit(p)
    xe = p * np.mean(np.logaddexp(0.0, -(tar + off))) + (1 - p) * np.mean(np.logaddexp(0.0, non + off))
    return float(xe / prior_entropy(p))


def _pav_blocks(tar, non) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unique scores (ascending), targets and non-targets at each, the index of each input score, and the
    PAV posterior P(target | score) per unique score (ties pooled)."""
    scores = np.concatenate([tar, non])
    uniq, inv = np.unique(scores, return_inverse=True)
    n_t = np.bincount(inv[:tar.size], minlength=uniq.size).astype(np.float64)
    n_n = np.bincount(inv[tar.size:], minlength=uniq.size).astype(np.float64)
    w = n_t + n_n
    post = isotonic_regression(n_t / w, weights=w, increasing=True).x
    return uniq, n_t, n_n, inv, np.clip(post, 0.0, 1.0)


def pav_llrs(tar_scores, non_scores) -> tuple[np.ndarray, np.ndarray]:
    """The optimal monotone llrs of the given trials (input order kept); +-inf where a pooled block is pure."""
    tar = _values(tar_scores, "tar_scores")
    non = _values(non_scores, "non_scores")
    _, _, _, inv, post = _pav_blocks(tar, non)
    with np.errstate(divide="ignore"):
        llr = np.log(post) - np.log1p(-post) - np.log(tar.size / non.size)
    return llr[inv[:tar.size]], llr[inv[tar.size:]]


def min_cllr(tar_scores, non_scores) -> float:
    """Cllr (bits) after the optimal monotone calibration (PAV); in [0, 1]."""
    tar = _values(tar_scores, "tar_scores")
    non = _values(non_scores, "non_scores")
    _, n_t, n_n, _, post = _pav_blocks(tar, non)
    # per block: -log sigmoid(llr) = log(1 + (1-p)/p * Nt/Nn); only blocks holding that class contribute
    ratio = tar.size / non.size
    t, n = n_t > 0, n_n > 0
    c_tar = np.sum(n_t[t] * np.log1p((1 - post[t]) / post[t] * ratio)) / tar.size
    c_non = np.sum(n_n[n] * np.log1p(post[n] / (1 - post[n]) / ratio)) / non.size
    return float(0.5 * (c_tar + c_non) / np.log(2))


# ---------------------------------------------------------------- detection costs
def _costs(p_target: float, c_miss: float, c_fa: float) -> tuple[float, float, float]:
    p = _check_prior(p_target, "p_target")
    if not (c_miss > 0 and c_fa > 0):
        raise ValueError(f"c_miss and c_fa must be positive, got c_miss={c_miss}, c_fa={c_fa}")
    return p, float(c_miss), float(c_fa)


def bayes_threshold(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """``-log(P Cmiss / ((1-P) Cfa))``: accept (bona fide) an llr at or above it."""
    p, cm, cf = _costs(p_target, c_miss, c_fa)
    return float(-(np.log(p * cm) - np.log((1 - p) * cf)))


def act_dcf(tar_llr, non_llr, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0,
            normalize: bool = True) -> float:
    """Detection cost of llrs at the Bayes threshold (miss: ``tar < t``; false alarm: ``non >= t``)."""
    p, cm, cf = _costs(p_target, c_miss, c_fa)
    tar = _values(tar_llr, "tar_llr", allow_inf=True)
    non = _values(non_llr, "non_llr", allow_inf=True)
    t = bayes_threshold(p, cm, cf)
    cost = p * cm * np.mean(tar < t) + (1 - p) * cf * np.mean(non >= t)
    return float(cost / min(p * cm, (1 - p) * cf) if normalize else cost)


def min_dcf(tar_scores, non_scores, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0,
            normalize: bool = True) -> float:
    """The lowest detection cost over every threshold (accept ``score >= t``), from accepting all to none."""
    p, cm, cf = _costs(p_target, c_miss, c_fa)
    tar = np.sort(_values(tar_scores, "tar_scores"))
    non = np.sort(_values(non_scores, "non_scores"))
    cand = np.unique(np.concatenate([tar, non]))
    p_miss = np.append(np.searchsorted(tar, cand, side="left") / tar.size, 1.0)   # last: t = +inf
    p_fa = np.append(1.0 - np.searchsorted(non, cand, side="left") / non.size, 0.0)
    cost = float(np.min(p * cm * p_miss + (1 - p) * cf * p_fa))
    return cost / min(p * cm, (1 - p) * cf) if normalize else cost


#: the calibration objective's default bona fide prior: ASVspoof 5's costs folded in (0.95 / 1.45 = 0.655)
DEFAULT_PRIOR = effective_prior(1.0 - DEFAULT_P_SPOOF, ASVSPOOF5_CM["c_miss"], ASVSPOOF5_CM["c_fa"])


# ---------------------------------------------------------------- logistic regression
def _separable(z: np.ndarray, y: np.ndarray) -> bool:
    """True when some affine map puts every trial on its class's side or on the boundary, not all on it:
    the cross-entropy then has no finite minimiser (complete or quasi-complete separation)."""
    if z.shape[1] == 1:
        tar, non = z[y > 0, 0], z[y < 0, 0]
        return bool(non.max() <= tar.min() or tar.max() <= non.min())
    a = y[:, None] * np.column_stack([z, np.ones(len(z))])
    res = linprog(np.zeros(a.shape[1]), A_ub=-a, b_ub=np.zeros(len(a)), A_eq=a.sum(0, keepdims=True),
                  b_eq=[1.0], bounds=[(None, None)] * a.shape[1], method="highs")
    return res.status == 0


def _standardised(tar_matrix, non_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Checked ``[n, d]`` matrices as ``(z, y, mu, sd)``: rows sorted (so the fit does not depend on their order,
    bit for bit), targets first, each column standardised over both classes."""
    tar = np.asarray(tar_matrix, dtype=np.float64)
    non = np.asarray(non_matrix, dtype=np.float64)
    tar, non = (m[:, None] if m.ndim == 1 else m for m in (tar, non))
    if tar.ndim != 2 or non.ndim != 2 or tar.shape[1] != non.shape[1] or tar.shape[1] == 0:
        raise ValueError(f"tar_matrix and non_matrix must be [n, d] with the same d >= 1, "
                         f"got {tar.shape} and {non.shape}")
    for m, name in ((tar, "tar_matrix"), (non, "non_matrix")):
        _values(m, name)
    tar = tar[np.lexsort(tar.T[::-1])]
    non = non[np.lexsort(non.T[::-1])]
    x = np.concatenate([tar, non])
    y = np.concatenate([np.ones(len(tar)), -np.ones(len(non))])
    d = x.shape[1]
    mu, sd = x.mean(0), x.std(0)
    if np.any(sd == 0) or np.linalg.matrix_rank(x - mu) < d:
        raise ValueError("the scores are linearly dependent (a constant member, or one member a multiple of "
                         "another): no unique map; drop the redundant member")
    return (x - mu) / sd, y, mu, sd


def separable(tar_matrix, non_matrix) -> bool:
    """True when a linear map of the scores puts every bona fide trial at or above every spoof (or the
    reverse): the unpenalised fit then has no finite optimum (the llrs would grow without bound)."""
    z, y, _, _ = _standardised(tar_matrix, non_matrix)
    return _separable(z, y)


def train_fusion(tar_matrix, non_matrix, prior: float = DEFAULT_PRIOR, penalty: float = 0.0,
                 max_iter: int = 100) -> tuple[np.ndarray, float]:
    """Fit ``llr = scores @ weights + bias`` (see the module notes) on ``[n_tar, d]`` and ``[n_non, d]``
    member scores. Returns ``(weights[d], bias)``."""
    p = _check_prior(prior)
    if not (np.isfinite(penalty) and penalty >= 0):
        raise ValueError(f"penalty must be a finite number >= 0, got {penalty}")
    z, y, mu, sd = _standardised(tar_matrix, non_matrix)
    n_tar, d = int(np.sum(y > 0)), z.shape[1]
    if penalty == 0 and _separable(z, y):
        raise ValueError("the scores separate bona fide from spoof perfectly (or up to ties on the boundary): "
                         "the likelihood has no finite optimum; fit on a harder condition or pass penalty > 0")
    omega = np.where(y > 0, p / n_tar, (1 - p) / (len(y) - n_tar)) / prior_entropy(p)
    off = logit(p)
    zz = np.column_stack([z, np.ones(len(z))])
    pen = np.append(np.full(d, float(penalty)), 0.0)   # lam/2 |v|^2 on the standardised weights; bias free

    def objective(theta):
        m = y * (zz @ theta + off)
        return float(omega @ np.logaddexp(0.0, -m) + 0.5 * np.sum(pen * theta ** 2)), m

    theta = np.zeros(d + 1)
    f, m = objective(theta)
    for it in range(max_iter):
        s = np.exp(-np.logaddexp(0.0, m))            # sigmoid(-m), stable
        g = -zz.T @ (omega * s * y) + pen * theta
        h = (zz * (omega * s * (1 - s))[:, None]).T @ zz + np.diag(pen)
        step = -np.linalg.solve(h, g)
        dec = -float(g @ step)                       # Newton decrement squared
        if dec < 1e-16:                              # quadratic region: a full step leaves an error ~ dec^2
            theta = theta + step
            break
        t = 1.0
        f_new, m_new = objective(theta + step)
        while f_new > f - 1e-4 * t * dec and t > 1e-10:
            t *= 0.5
            f_new, m_new = objective(theta + t * step)
        if f_new > f - 1e-4 * t * dec:
            break                                    # a descent direction that no longer descends: at precision
        theta, f, m = theta + t * step, f_new, m_new
    else:
        raise RuntimeError(f"the logistic regression did not converge in {max_iter} Newton steps "
                           f"(objective {f:.6g}); scores of extreme scale? pass penalty > 0")
    weights = theta[:d] / sd
    bias = float(theta[d] - weights @ mu)
    log.debug("fusion fit in %d Newton steps, objective %.6g", it, f)
    return weights, bias


def train_calibration(tar_scores, non_scores, prior: float = DEFAULT_PRIOR,
                      penalty: float = 0.0) -> tuple[float, float]:
    """Fit the affine map ``llr = a * score + b`` (see :func:`train_fusion`). Returns ``(a, b)``."""
    tar = _values(tar_scores, "tar_scores")
    non = _values(non_scores, "non_scores")
    w, b = train_fusion(tar[:, None], non[:, None], prior=prior, penalty=penalty)
    return float(w[0]), b
