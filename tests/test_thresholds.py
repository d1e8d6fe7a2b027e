"""bench.metrics.thresholds: thresholds for a target FAR / FRR / the EER on hand-built score sets (ties included), and
FAR/FRR at a fixed threshold with bootstrap intervals (reproducible from a Generator, as resampling
utterances)."""
import numpy as np
import pandas as pd
import pytest

from bench import metrics as M
from bench.metrics import thresholds as T

BONA = [0.4, 1.0, 1.5, 3.0]
SPOOF = [0.1, 0.5, 0.9, 1.3, 2.0]


def test_threshold_for_a_target_far_by_hand():
    # one spoof of five may pass: the 2nd highest (1.3) is rejected, so t = the next score above it, 1.5
    t = T.threshold_at(BONA, SPOOF, far=0.2)
    assert t == 1.5 and T.far_frr(BONA, SPOOF, t) == (0.2, 0.5)
    assert T.threshold_at(BONA, SPOOF, far=0.19) == 3.0                  # none may pass: above 2.0
    assert T.threshold_at(BONA, SPOOF, far=0.0) == 3.0
    t = T.threshold_at(BONA, SPOOF, far=0.4)                             # 2.0, 1.3 pass; 0.9 rejected, so t is
    assert t == 1.0 and T.far_frr(BONA, SPOOF, t) == (0.4, 0.25)         # the bona fide 1.0 just above it
    assert T.threshold_at(BONA, SPOOF, far=1.0) == 0.1                   # accept everything
    # tied spoofs pass or fail together: FAR 1/3 allowed, but the two at 1.0 are one step, so none pass
    t = T.threshold_at([2.0], [1.0, 1.0, 0.0], far=1 / 3)
    assert t == 2.0 and T.far_frr([2.0], [1.0, 1.0, 0.0], t) == (0.0, 0.0)
    # the highest score is a spoof that must be rejected: the next float above it
    t = T.threshold_at([1.0], [5.0], far=0.0)
    assert t > 5.0 and t == np.nextafter(5.0, np.inf) and T.far_frr([1.0], [5.0], t) == (0.0, 1.0)
    # a score at the threshold is accepted: a bona fide tied with the highest rejected spoof is rejected too
    t = T.threshold_at([1.0, 2.0], [1.0, 0.0], far=0.0)
    assert t == 2.0 and T.far_frr([1.0, 2.0], [1.0, 0.0], t) == (0.0, 0.5)


def test_far_target_counts_errors_without_float_drift():
    spoof = np.arange(100, dtype=float)
    t = T.threshold_at([200.0], spoof, far=0.01)
    assert t == 99.0 and T.far_frr([200.0], spoof, t)[0] == 0.01
    t = T.threshold_at([200.0], spoof, far=0.29)                         # 0.29 * 100 = 28.999999999999996
    assert T.far_frr([200.0], spoof, t)[0] == 0.29


def test_threshold_for_a_target_frr_by_hand():
    t = T.threshold_at(BONA, SPOOF, frr=0.25)                            # one bona fide may be rejected
    assert t == 1.0 and T.far_frr(BONA, SPOOF, t) == (0.4, 0.25)
    assert T.threshold_at(BONA, SPOOF, frr=0.0) == 0.4
    assert T.threshold_at(BONA, SPOOF, frr=0.49) == 1.0
    t = T.threshold_at(BONA, SPOOF, frr=1.0)
    assert t > 3.0 and T.far_frr(BONA, SPOOF, t) == (0.0, 1.0)
    t = T.threshold_at([1.0, 1.0, 2.0], [0.0], frr=0.5)                   # ties: rejecting one rejects both
    assert t == 1.0 and T.far_frr([1.0, 1.0, 2.0], [0.0], t)[1] == 0.0


def test_eer_threshold_accepts_what_the_official_eer_threshold_accepts():
    rng = np.random.default_rng(8)
    for _ in range(20):
        b, s = rng.normal(1, 1, 37), rng.normal(-0.5, 1.3, 53)          # no ties
        t = T.threshold_at(b, s, eer=True)
        _, thr = M.eer(b, s)                                             # official: accept score > thr
        assert np.array_equal(b >= t, b > thr) and np.array_equal(s >= t, s > thr)
        # and it is the best balance over every possible threshold
        cands = np.r_[np.unique(np.r_[b, s]), np.inf]
        gaps = [abs(np.mean(b < c) - np.mean(s >= c)) for c in cands]
        far, frr = T.far_frr(b, s, t)
        assert abs(frr - far) == min(gaps)
    assert T.threshold_at([2.0, 3.0], [0.0, 1.0], eer=True) == 2.0
    # |FRR - FAR| = 0.25 at t = 3 (0, 0.25) and at t = 4 (0.5, 0.25): the lower threshold, as the official cut
    b, s = [3.0, 4.0], [0.0, 1.0, 2.0, 5.0]
    assert T.threshold_at(b, s, eer=True) == 3.0 and M.eer(b, s) == (0.125, 2.0)


def test_threshold_arguments_are_checked():
    for kw in ({}, {"far": 0.1, "frr": 0.1}, {"far": 0.1, "eer": True}):
        with pytest.raises(ValueError, match="exactly one"):
            T.threshold_at(BONA, SPOOF, **kw)
    with pytest.raises(ValueError, match="far must be a fraction"):
        T.threshold_at(BONA, SPOOF, far=5)
    with pytest.raises(ValueError, match="NaN"):
        T.threshold_at([np.nan], SPOOF, eer=True)


def test_rates_at_a_fixed_threshold_with_bootstrap_intervals():
    r = T.rates_at(BONA, SPOOF, 1.5, n_boot=2000, rng=np.random.default_rng(0))
    assert (r["far"], r["frr"], r["n_bonafide"], r["n_spoof"]) == (0.2, 0.5, 4, 5)
    assert r["far_ci_low"] <= r["far"] <= r["far_ci_high"] and r["frr_ci_low"] <= r["frr"] <= r["frr_ci_high"]
    again = T.rates_at(BONA, SPOOF, 1.5, n_boot=2000, rng=np.random.default_rng(0))
    assert again == r and T.rates_at(BONA, SPOOF, 1.5, n_boot=2000, rng=0) == r     # a seed = default_rng(seed)
    none = T.rates_at(BONA, SPOOF, 10.0, n_boot=200, rng=1)               # nothing accepted: FAR 0 in every resample
    assert (none["far"], none["far_ci_low"], none["far_ci_high"]) == (0.0, 0.0, 0.0)
    only_spoof = T.rates_at([], SPOOF, 1.5, n_boot=100, rng=1)
    assert np.isnan(only_spoof["frr"]) and np.isnan(only_spoof["frr_ci_low"]) and only_spoof["far"] == 0.2
    with pytest.raises(TypeError, match="Generator"):
        T.rates_at(BONA, SPOOF, 1.5, rng=np.random.RandomState(0))


def test_bootstrap_interval_matches_resampling_utterances():
    rng = np.random.default_rng(9)
    spoof = rng.normal(size=400)
    t = np.quantile(spoof, 0.9)                                           # FAR ~ 0.1
    r = T.rates_at([0.0], spoof, t, n_boot=10000, rng=np.random.default_rng(1))
    idx = np.random.default_rng(2).integers(0, spoof.size, size=(10000, spoof.size))
    lo, hi = np.quantile(np.mean(spoof[idx] >= t, axis=1), [0.025, 0.975])
    assert r["far_ci_low"] == pytest.approx(lo, abs=0.0051) and r["far_ci_high"] == pytest.approx(hi, abs=0.0051)


def _table(rows):
    return pd.DataFrame(rows, columns=["utt_id", "model", "family", "severity", "label", "score"])


def test_operating_points_keep_the_clean_threshold():
    lab = ["bonafide"] * 4 + ["spoof"] * 5
    rows = [(f"u{i}", "m", "clean", 0, lab[i], v) for i, v in enumerate(BONA + SPOOF)]
    stressed = [0.2, 0.3, 1.6, 2.0, 1.5, 1.6, 0.0, 0.0, 0.0]             # spoofs pushed up, bona fide down
    rows += [(f"u{i}", "m", "mp3", 3, lab[i], v) for i, v in enumerate(stressed)]
    op = T.operating_points(_table(rows), far=0.2, n_boot=300, seed=4).set_index("family")
    assert (op["threshold"] == 1.5).all()
    assert (op.loc["clean", "far"], op.loc["clean", "frr"]) == (0.2, 0.5)
    assert (op.loc["mp3", "far"], op.loc["mp3", "frr"]) == (0.4, 0.5)    # 1.5 and 1.6 pass; 0.2, 0.3 rejected
    more = _table(rows + [(f"u{i}", "m", "noise", 1, lab[i], v) for i, v in enumerate(stressed)])
    op2 = T.operating_points(more, far=0.2, n_boot=300, seed=4).set_index("family")
    pd.testing.assert_frame_equal(op2.loc[["clean", "mp3"]], op)         # a row does not depend on the others
    with pytest.raises(ValueError, match="clean condition"):
        T.operating_points(_table([r for r in rows if r[2] != "clean"]), far=0.2)


def test_operating_point_specs_parse_and_pick_their_threshold():
    from bench.metrics.thresholds import OperatingPoint

    assert OperatingPoint.parse("far=1%") == OperatingPoint("far", 0.01) == OperatingPoint.parse(" FAR = 0.01 ")
    assert OperatingPoint.parse("frr=5%") == OperatingPoint("frr", 0.05)
    assert OperatingPoint.parse("eer") == OperatingPoint("eer")
    assert OperatingPoint.parse("threshold=-1.5") == OperatingPoint("threshold", -1.5)
    assert str(OperatingPoint.parse("far=1%")) == "far=0.01" and str(OperatingPoint("bayes")) == "bayes"
    for bad, msg in (("far=5", "fraction in"), ("far=x", "not a number"), ("tpr=1%", "expected one of"),
                     ("threshold=inf", "finite"), ("far=150%", "fraction in")):
        with pytest.raises(ValueError, match=msg):
            OperatingPoint.parse(bad)
    bona, spoof = np.arange(10.0, 20.0), np.arange(0.0, 100.0) / 5       # spoofs 0 .. 19.8
    # far=1%: one spoof (19.8) may be accepted: the threshold is the next score above the second highest (19.6)
    assert OperatingPoint.parse("far=1%").threshold(bona, spoof) == T.threshold_at(bona, spoof, far=0.01) == 19.8
    assert OperatingPoint.parse("threshold=3").threshold(bona, spoof) == 3.0
    assert OperatingPoint.parse("bayes").threshold(bona, spoof, bayes=1.25) == 1.25
    with pytest.raises(ValueError, match="needs the Bayes threshold"):
        OperatingPoint.parse("bayes").threshold(bona, spoof)
