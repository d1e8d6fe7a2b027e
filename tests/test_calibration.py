"""bench.metrics.calibration against independent computations: scikit-learn's logistic regression with the BOSARIS
prior weights, a closed-form case, a brute-force search over monotone maps, scikit-learn's isotonic
regression, ASVspoof 5's actDCF/minDCF (its evaluation package's loops, re-typed here) and values by hand."""
import itertools
import math

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from bench.metrics import calibration as C


def _sklearn_fit(tar, non, prior, penalty=0.0):
    """BOSARIS's objective through scikit-learn: per-class weights P/N_tar, (1-P)/N_non (scaled by N, which
    moves no minimiser), the logit(P) offset taken out of the intercept, C = 1/(penalty * scale); the penalty is
    on the weights of standardised scores, so scikit-learn fits those and the weights are mapped back."""
    tar, non = (np.asarray(m, dtype=np.float64).reshape(len(m), -1) for m in (tar, non))
    x = np.concatenate([tar, non])
    mu, sd = x.mean(0), x.std(0)
    y = np.r_[np.ones(len(tar)), np.zeros(len(non))]
    sw = np.where(y > 0, prior / len(tar), (1 - prior) / len(non)) / C.prior_entropy(prior) * len(x)
    c = np.inf if penalty == 0 else 1.0 / (penalty * len(x))
    lr = LogisticRegression(C=c, solver="newton-cholesky", tol=1e-14, max_iter=1000).fit((x - mu) / sd, y,
                                                                                          sample_weight=sw)
    w = lr.coef_[0] / sd
    return w, lr.intercept_[0] - w @ mu - C.logit(prior)


@pytest.mark.parametrize("prior", [0.05, 0.5, 0.9])
def test_calibration_matches_sklearn(prior):
    rng = np.random.default_rng(7)
    tar, non = rng.normal(3.0, 2.0, 150) * 4 + 10, rng.normal(0.0, 1.0, 400) * 4 + 10   # far from llrs
    a, b = C.train_calibration(tar, non, prior=prior)
    w, b_ref = _sklearn_fit(tar, non, prior)
    assert a == pytest.approx(w[0], abs=1e-9) and b == pytest.approx(b_ref, abs=1e-8)
    # the fitted map is the optimum of the documented objective: nudging it only costs
    f = C.cxe(a * tar + b, a * non + b, prior)
    for da, db in ((1e-4, 0), (-1e-4, 0), (0, 1e-3), (0, -1e-3)):
        assert C.cxe((a + da) * tar + b + db, (a + da) * non + b + db, prior) > f


def test_fusion_matches_sklearn_with_and_without_penalty():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(900, 3)) * [1.0, 30.0, 0.01] + [0.0, 100.0, -5.0]
    y = x @ [1.0, 0.02, -40.0] - 200.0 + rng.logistic(size=900) * 2 > 0
    for penalty in (0.0, 0.5):
        w, b = C.train_fusion(x[y], x[~y], prior=0.2, penalty=penalty)
        w_ref, b_ref = _sklearn_fit(x[y], x[~y], 0.2, penalty=penalty)
        np.testing.assert_allclose(w, w_ref, rtol=1e-7, atol=1e-10)
        assert b == pytest.approx(b_ref, rel=1e-7, abs=1e-8)
    assert abs(C.train_fusion(x[y], x[~y], prior=0.2, penalty=0.5)[0][0]) < abs(w_ref[0]) * 10  # finite, shrunk


def test_fit_does_not_depend_on_the_order_of_trials():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(500, 2))
    y = x[:, 0] + 0.3 * x[:, 1] + rng.logistic(size=500) > 0
    ref = C.train_fusion(x[y], x[~y], prior=0.05)
    for seed in range(3):
        p = np.random.default_rng(seed)
        tar, non = x[y][p.permutation(int(y.sum()))], x[~y][p.permutation(int((~y).sum()))]
        w, b = C.train_fusion(tar, non, prior=0.05)
        assert np.array_equal(w, ref[0]) and b == ref[1]                    # bit for bit
    tar, non = x[y, 0], x[~y, 0]
    assert C.train_calibration(tar[::-1], non[::-1]) == C.train_calibration(tar, non)


@pytest.mark.parametrize("prior", [0.05, 0.5, 0.8])
def test_two_score_values_give_the_empirical_ratios_at_any_prior(prior):
    # each of two score values gets its own free llr; the optimum is log(P(s|tar)/P(s|non)) whatever the prior:
    # s=1: (3/4)/(1/4) -> ln 3; s=0: (1/4)/(3/4) -> -ln 3; so a = 2 ln 3, b = -ln 3
    a, b = C.train_calibration([1, 1, 1, 0], [1, 0, 0, 0], prior=prior)
    assert a == pytest.approx(2 * math.log(3), abs=1e-10) and b == pytest.approx(-math.log(3), abs=1e-10)


def test_unfittable_scores_are_refused():
    with pytest.raises(ValueError, match="separate"):
        C.train_calibration([1.0, 2.0], [0.0, 0.5])
    with pytest.raises(ValueError, match="separate"):
        C.train_calibration([1.0, 2.0], [0.0, 1.0])                       # touching at 1.0: quasi-complete
    with pytest.raises(ValueError, match="separate"):                     # separable by x1 + x2 only
        C.train_fusion([[1.0, 1.0], [2.0, -0.5], [-0.4, 2.0]], [[0.0, 0.0], [1.0, -1.5], [-1.2, 1.0]])
    with pytest.raises(ValueError, match="linearly dependent"):
        C.train_fusion([[1.0, 2.0], [3.0, 6.0], [0.0, 0.0]], [[2.0, 4.0], [0.5, 1.0]])
    with pytest.raises(ValueError, match="linearly dependent"):
        C.train_calibration([1.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="prior"):
        C.train_calibration([1.0, 0.0], [0.5, -1.0], prior=1.0)
    with pytest.raises(ValueError, match="NaN"):
        C.train_calibration([1.0, np.nan], [0.5])
    a, _ = C.train_calibration([1.0, 2.0], [0.0, 0.5], penalty=0.1)      # a penalty makes the optimum finite
    assert 0 < a < 100


def test_cllr_by_hand():
    tar, non = [2.0, 0.0], [-1.0, 1.0]
    want = 0.5 * ((math.log(1 + math.exp(-2)) + math.log(2)) / 2
                  + (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(1))) / 2) / math.log(2)
    assert C.cllr(tar, non) == pytest.approx(want, rel=1e-13)
    assert C.cxe(tar, non, 0.5) == pytest.approx(want, rel=1e-13)
    assert C.cllr([0.0] * 3, [0.0] * 5) == 1.0 and C.cxe([0.0], [0.0], 0.05) == pytest.approx(1.0)
    assert C.cllr([800.0, np.inf], [-800.0]) == pytest.approx(0.0, abs=1e-300)


def _brute_min_cllr(tar, non):
    """Every monotone map is constant on runs of the sorted distinct scores: try every split into runs, give
    each run its best llr, keep the splits whose llrs do not decrease."""
    tar, non = np.asarray(tar, float), np.asarray(non, float)
    u = np.unique(np.r_[tar, non])
    t = np.array([np.sum(tar == v) for v in u])
    n = np.array([np.sum(non == v) for v in u])
    best = np.inf
    for cuts in itertools.product([0, 1], repeat=len(u) - 1):
        edges = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [len(u)]
        llrs, cost = [], 0.0
        for lo, hi in zip(edges, edges[1:]):
            bt, bn = t[lo:hi].sum(), n[lo:hi].sum()
            llr = np.inf if bn == 0 else -np.inf if bt == 0 else math.log((bt / tar.size) / (bn / non.size))
            llrs.append(llr)
            cost += (bt * np.logaddexp(0, -llr) if bt else 0) / tar.size
            cost += (bn * np.logaddexp(0, llr) if bn else 0) / non.size
        if all(x <= y for x, y in zip(llrs, llrs[1:])):
            best = min(best, cost / (2 * math.log(2)))
    return best


def test_min_cllr_against_brute_force_and_sklearn_isotonic():
    rng = np.random.default_rng(5)
    worst = 0.0
    for _ in range(25):
        nt, nn = rng.integers(1, 8, size=2)
        tar = rng.integers(0, 8, nt).astype(float) + rng.integers(0, 3)    # integers: many ties
        non = rng.integers(0, 8, nn).astype(float)
        m = C.min_cllr(tar, non)
        worst = max(worst, abs(m - _brute_min_cllr(tar, non)))
        tl, nl = C.pav_llrs(tar, non)
        assert C.cllr(tl, nl) == pytest.approx(m, abs=1e-12)
        # the same posteriors as scikit-learn's isotonic regression (which pools ties)
        iso = IsotonicRegression().fit(np.r_[tar, non], np.r_[np.ones(nt), np.zeros(nn)])
        post = 1 / (1 + np.exp(-(np.r_[tl, nl] + math.log(nt / nn))))
        np.testing.assert_allclose(post, iso.predict(np.r_[tar, non]), atol=1e-12)
        assert len({(s, v) for s, v in zip(np.r_[tar, non], np.r_[tl, nl])}) == len(np.unique(np.r_[tar, non]))
    assert worst < 1e-12
    assert C.min_cllr([3.0] * 4, [3.0] * 6) == pytest.approx(1.0)           # all tied: no information
    assert C.min_cllr([1.0, 2.0], [0.0, -1.0]) == 0.0
    tar, non = rng.normal(1, 1, 100), rng.normal(0, 1, 200)
    a, b = C.train_calibration(tar, non, prior=0.5)
    assert C.min_cllr(tar, non) < C.cllr(a * tar + b, a * non + b) < C.cllr(tar, non)


def _asvspoof5_actdcf(bona, spoof, pspoof, cmiss, cfa):
    """compute_actDCF of ASVspoof 5's evaluation package (calculate_modules.py), re-typed."""
    beta = cmiss * (1 - pspoof) / (cfa * pspoof)
    t = -np.log(beta)
    cost = cmiss * (1 - pspoof) * np.sum(bona < t) / bona.size + cfa * pspoof * np.sum(spoof >= t) / spoof.size
    return cost / np.min([cfa * pspoof, cmiss * (1 - pspoof)])


def _asvspoof5_mindcf(bona, spoof, pspoof, cmiss, cfa):
    """compute_det_curve + compute_mindcf of ASVspoof 5's package, re-typed (cuts of a stable sort)."""
    allsc = np.concatenate([bona, spoof])
    lab = np.concatenate([np.ones(bona.size), np.zeros(spoof.size)])[np.argsort(allsc, kind="mergesort")]
    tar_sums = np.cumsum(lab)
    non_sums = spoof.size - (np.arange(1, allsc.size + 1) - tar_sums)
    frr = np.concatenate([[0], tar_sums / bona.size])
    far = np.concatenate([[1], non_sums / spoof.size])
    p = 1 - pspoof
    return np.min(cmiss * frr * p + cfa * far * (1 - p)) / min(cmiss * p, cfa * (1 - p))


def test_act_dcf_by_hand_and_as_asvspoof5():
    # p 0.5, costs 1: t = 0; tar 0.5 accepted, -0.2 missed; non 0.1 accepted, -3 rejected
    assert C.act_dcf([0.5, -0.2], [0.1, -3.0], 0.5) == pytest.approx(1.0)
    assert C.act_dcf([0.5, -0.2], [0.1, -3.0], 0.5, normalize=False) == pytest.approx(0.5)
    assert C.act_dcf([0.0], [0.0], 0.5) == pytest.approx(1.0)              # at t: the target is kept, the
    assert C.act_dcf([0.0], [-1e-9], 0.5) == 0.0                           # non-target accepted
    # ASVspoof 5: Pspoof 0.05, Cmiss 1, Cfa 10 -> t = -ln 1.9; Pmiss 1/3, Pfa 1/2; (0.95/3 + 0.25) / 0.5
    assert C.bayes_threshold(**C.ASVSPOOF5_CM) == pytest.approx(-math.log(1.9))
    assert C.act_dcf([2.0, 0.0, -1.0], [-1.0, 1.0], **C.ASVSPOOF5_CM) == pytest.approx(1.1333333333333333)
    rng = np.random.default_rng(2)
    for _ in range(20):
        b, s = np.round(rng.normal(1, 2, 40), 1), np.round(rng.normal(-1, 2, 60), 1)
        assert C.act_dcf(b, s, **C.ASVSPOOF5_CM) == pytest.approx(_asvspoof5_actdcf(b, s, 0.05, 1, 10), abs=1e-12)


def test_min_dcf_by_hand_and_as_asvspoof5():
    # accept >= t over t in {0 1 2 3 +inf} (scores tar 3, 1; non 0, 2):
    # (pmiss, pfa) = (0, 1) (0, .5) (.5, .5) (.5, 0) (1, 0); at p 0.5: costs .5 .25 .5 .25 .5 -> .25 / .5
    assert C.min_dcf([3.0, 1.0], [0.0, 2.0], 0.5) == pytest.approx(0.5)
    assert C.min_dcf([3.0, 1.0], [0.0, 2.0], 0.5, normalize=False) == pytest.approx(0.25)
    assert C.min_dcf([1.0], [1.0], 0.3) == pytest.approx(1.0)               # one tie: accept both or neither
    rng = np.random.default_rng(4)
    for _ in range(30):
        b, s = np.round(rng.normal(1, 2, 30)), np.round(rng.normal(-1, 2, 50))   # many ties
        for p, cm, cf in ((0.95, 1, 10), (0.5, 1, 1), (0.01, 1, 10)):
            assert C.min_dcf(b, s, p, cm, cf) == pytest.approx(_asvspoof5_mindcf(b, s, 1 - p, cm, cf), abs=1e-12)
        assert C.min_dcf(b, s, 0.5) <= C.act_dcf(b, s, 0.5) + 1e-15


def test_effective_prior_folds_the_costs_into_the_bayes_threshold():
    # ASVspoof 5: P(bona fide) 0.95, Cmiss 1, Cfa 10 -> 0.95 / (0.95 + 0.5); its threshold -logit is -ln 1.9
    pe = C.effective_prior(**C.ASVSPOOF5_CM)
    assert pe == pytest.approx(0.95 / 1.45) == pytest.approx(C.DEFAULT_PRIOR)
    assert -C.logit(pe) == pytest.approx(C.bayes_threshold(**C.ASVSPOOF5_CM)) == pytest.approx(-math.log(1.9))
    assert C.effective_prior(0.3) == pytest.approx(0.3)                     # equal costs: the prior itself
    # at the effective prior with unit costs, actDCF (unnormalised, scaled) ranks maps as the costly model does
    rng = np.random.default_rng(9)
    b, s = rng.normal(1, 1, 50), rng.normal(-1, 1, 50)
    raw = C.act_dcf(b, s, **C.ASVSPOOF5_CM, normalize=False)
    eff = C.act_dcf(b, s, pe, normalize=False)
    assert raw == pytest.approx(eff * (0.95 + 0.5))


def test_separable_says_when_the_unpenalised_fit_has_no_optimum():
    assert C.separable([1.0, 2.0], [0.0, 0.5]) and C.separable([1.0, 2.0], [0.0, 1.0])
    assert not C.separable([1.0, 2.0, 0.2], [0.0, 0.5])
    assert C.separable([[1.0, 1.0], [2.0, -0.5], [-0.4, 2.0]], [[0.0, 0.0], [1.0, -1.5], [-1.2, 1.0]])
    # the penalty is on standardised weights: scaling the scores scales the weights inversely, llrs unchanged
    tar, non = np.array([1.0, 2.0, 2.5]), np.array([0.0, 0.5, -1.0])
    a1, b1 = C.train_calibration(tar, non, penalty=0.01)
    a2, b2 = C.train_calibration(tar * 1000, non * 1000, penalty=0.01)
    assert a2 * 1000 == pytest.approx(a1, rel=1e-9) and b2 == pytest.approx(b1, rel=1e-9)
