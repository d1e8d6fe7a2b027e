"""bench.metrics against the official reference numbers and a plain-loop reimplementation."""
import numpy as np
import pandas as pd
import pytest

from bench import metrics as M
from bench.metrics import bootstrap as bootstrap_module
from bench.metrics.bootstrap import _eer_rows


def official_eer_loop(bona, spoof):
    """The official compute_eer written as an explicit loop over cuts (independent of M)."""
    items = [(s, 1) for s in bona] + [(s, 0) for s in spoof]
    items = sorted(items, key=lambda t: t[0])          # Python's sort is stable
    nb, ns = len(bona), len(spoof)
    best, best_e, best_t = None, None, None
    rej_b = rej_s = 0
    cuts = [(0.0, 1.0, items[0][0] - 0.001)]
    for s, is_b in items:
        rej_b += is_b
        rej_s += 1 - is_b
        cuts.append((rej_b / nb, (ns - rej_s) / ns, s))
    for frr, far, thr in cuts:
        d = abs(frr - far)
        if best is None or d < best:
            best, best_e, best_t = d, (frr + far) / 2, thr
    return best_e, best_t


@pytest.fixture(scope="module")
def ref(shared_dir):
    return np.load(shared_dir / "fixtures" / "eer_reference.npz")


def test_eer_matches_reference_fixture(ref):
    e, t = M.eer(ref["a_bona"], ref["a_spoof"])
    assert e == float(ref["a_eer"]) and t == float(ref["a_eer_threshold"])
    ae, at = M.eer(ref["asv_tar"], ref["asv_non"])
    assert ae == float(ref["asv_eer"]) and at == float(ref["asv_threshold"])


def test_asv_error_rates_match_fixture(ref):
    r = M.asv_error_rates(ref["asv_tar"], ref["asv_non"], ref["asv_spoof"])
    assert r["Pfa"] == pytest.approx(float(ref["asv_Pfa"]), abs=1e-12)
    assert r["Pmiss"] == pytest.approx(float(ref["asv_Pmiss"]), abs=1e-12)
    assert r["Pmiss_spoof"] == pytest.approx(float(ref["asv_Pmiss_spoof"]), abs=1e-12)


@pytest.mark.parametrize("formula,key", [("2019", "a_min_tdcf_2019"), ("2021", "a_min_tdcf_2021")])
def test_min_tdcf_matches_fixture(ref, formula, key):
    v = M.min_tdcf(ref["a_bona"], ref["a_spoof"], ref["asv_tar"], ref["asv_non"], ref["asv_spoof"],
                   formula=formula)
    assert abs(v - float(ref[key])) < 1e-9


def test_min_tdcf_formulas_differ_and_bad_formula(ref):
    args = (ref["a_bona"], ref["a_spoof"], ref["asv_tar"], ref["asv_non"], ref["asv_spoof"])
    assert M.min_tdcf(*args, formula="2019") != M.min_tdcf(*args, formula="2021")
    with pytest.raises(ValueError, match="formula"):
        M.min_tdcf(*args, formula="2020")


@pytest.mark.parametrize("bona,spoof,expect", [
    ([1.0], [0.0], (0.0, 0.0)),            # separated: threshold is the top spoof score
    ([0.0], [1.0], (1.0, 0.0)),            # inverted
    ([0.5], [0.5], (1.0, 0.5)),            # 1 vs 1 tied: bona fide sorts first, so EER 1
    ([0.3] * 4, [0.3] * 6, (1.0, 0.3)),    # all tied
    ([2.0, 3.0, 4.0], [0.0, 1.0], (0.0, 1.0)),
])
def test_eer_small_cases(bona, spoof, expect):
    e, t = M.eer(bona, spoof)
    assert (e, t) == pytest.approx(expect)
    assert (e, t) == pytest.approx(official_eer_loop(bona, spoof))


def test_eer_agrees_with_loop_on_random_ties():
    rng = np.random.default_rng(3)
    for _ in range(100):
        b = rng.integers(0, 5, rng.integers(1, 12)).astype(float)
        s = rng.integers(0, 5, rng.integers(1, 12)).astype(float)
        assert M.eer(b, s) == pytest.approx(official_eer_loop(list(b), list(s)))


def test_eer_rejects_empty_and_nan():
    with pytest.raises(ValueError, match="no scores"):
        M.eer([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        M.eer([np.nan, 1.0], [0.0])


def test_auc_and_accuracy():
    assert M.auc([3, 4], [1, 2]) == 1.0
    assert M.auc([1, 2], [3, 4]) == 0.0
    assert M.auc([1.0], [1.0]) == 0.5
    assert M.auc([1, 3], [2, 2]) == pytest.approx(0.5)     # one win, one loss
    b, s = [0.2, 0.6, 0.9, 0.95], [0.1, 0.3, 0.7]
    assert M.error_rates(b, s, 0.5) == (0.25, pytest.approx(1 / 3))
    assert M.accuracy(b, s, 0.5) == pytest.approx(5 / 7)
    assert M.balanced_accuracy(b, s, 0.5) == pytest.approx(1 - (0.25 + 1 / 3) / 2)
    # at the EER threshold the rates reproduce the EER when no tie straddles the cut
    e, t = M.eer(b, s)
    frr, far = M.error_rates(b, s)
    assert (frr + far) / 2 == pytest.approx(e)
    assert M.balanced_accuracy(b, s) == pytest.approx(1 - e)


def test_bootstrap_engine_equals_official_eer_per_resample():
    rng = np.random.default_rng(5)
    for _ in range(50):
        allsc = rng.integers(0, 4, 10).astype(float)
        isb = np.arange(10) < rng.integers(1, 9)
        rank = np.empty(10, np.int64)
        rank[np.argsort(allsc, kind="mergesort")] = np.arange(10)
        rows, items, expect = [], [], []
        for r in range(6):
            it = rng.integers(0, 10, rng.integers(1, 15))
            rows += [r] * len(it)
            items += list(it)
            b, s = allsc[it][isb[it]], allsc[it][~isb[it]]
            expect.append(M.eer(b, s)[0] if b.size and s.size else np.nan)
        items = np.array(items)
        got = _eer_rows(np.array(rows), rank[items], isb[items], 6)
        np.testing.assert_allclose(got, expect)


def test_bootstrap_ci_properties():
    rng = np.random.default_rng(0)
    b, s = rng.normal(1, 1, 100), rng.normal(-1, 1, 100)
    e, _ = M.eer(b, s)
    lo, hi = M.bootstrap_eer_ci(b, s, n_boot=1000, seed=0)
    assert lo < e < hi and 0 <= lo and hi <= 1
    assert (lo, hi) == M.bootstrap_eer_ci(b, s, n_boot=1000, seed=0)
    e0 = M.bootstrap_eers(b, s, n_boot=50, seed=0)
    assert np.array_equal(e0, M.bootstrap_eers(b, s, n_boot=50, seed=0))
    assert not np.array_equal(e0, M.bootstrap_eers(b, s, n_boot=50, seed=1))
    lo90, hi90 = M.bootstrap_eer_ci(b, s, n_boot=1000, alpha=0.5, seed=0)
    assert lo <= lo90 and hi90 <= hi


def test_bootstrap_resamples_do_not_depend_on_the_memory_bound(monkeypatch):
    rng = np.random.default_rng(4)
    b, s = rng.normal(1, 1, 70), rng.normal(-1, 1, 90)
    spk = (np.arange(70) % 7, np.arange(90) % 9)
    whole = [M.bootstrap_eers(b, s, n_boot=40, seed=3), M.bootstrap_eers(b, s, n_boot=40, seed=3, groups=spk)]
    monkeypatch.setattr(bootstrap_module, "_CHUNK_ITEMS", 3 * 160 + 1)   # 3 resamples per pass instead of all 40
    np.testing.assert_array_equal(whole[0], M.bootstrap_eers(b, s, n_boot=40, seed=3))
    np.testing.assert_array_equal(whole[1], M.bootstrap_eers(b, s, n_boot=40, seed=3, groups=spk))


def test_cluster_bootstrap_is_wider_for_correlated_speakers():
    rng = np.random.default_rng(1)
    spk = np.repeat(np.arange(10), 20)                  # 10 speakers x 20 utterances per class
    offset = rng.normal(0, 1.5, 10)[spk]                # strong per-speaker shift
    b = 1 + offset + rng.normal(0, 0.3, 200)
    s = -1 + offset + rng.normal(0, 0.3, 200)
    plain = M.bootstrap_eer_ci(b, s, n_boot=500, seed=0)
    clus = M.bootstrap_eer_ci(b, s, n_boot=500, seed=0, groups=(spk, spk))
    assert clus[1] - clus[0] > 1.5 * (plain[1] - plain[0])
    with pytest.raises(ValueError, match="groups"):
        M.bootstrap_eer_ci(b, s, groups=(spk[:5], spk))


def scores_table():
    rng = np.random.default_rng(2)
    rows = []
    for model, shift in [("m1", 2.0), ("m2", 0.5)]:
        for i in range(40):
            rows.append(dict(model=model, label="bonafide", score=rng.normal(shift, 1), attack="-",
                             codec=["none", "mp3"][i % 2], speaker=f"s{i % 4}"))
        for i in range(60):
            rows.append(dict(model=model, label="spoof", score=rng.normal(-shift, 1),
                             attack=["A07", "A08", "A09"][i % 3], codec=["none", "mp3"][i % 2],
                             speaker=f"s{i % 4}"))
    return pd.DataFrame(rows)


def test_summarize_pooled_and_groups():
    df = scores_table()
    pooled = M.summarize(df, n_boot=200)
    assert len(pooled) == 1 and list(pooled.columns) == list(M.SUMMARY_COLUMNS)
    assert pooled.loc[0, "n_bonafide"] == 80 and pooled.loc[0, "n_spoof"] == 120
    per = M.summarize(df, ["model"], n_boot=200).set_index("model")
    m1 = df[df.model == "m1"]
    e, t = M.eer(m1.score[m1.label == "bonafide"], m1.score[m1.label == "spoof"])
    assert per.loc["m1", "eer"] == e and per.loc["m1", "eer_threshold"] == t
    assert per.loc["m1", "eer"] < per.loc["m2", "eer"]
    assert (per.eer_ci_low <= per.eer).all() and (per.eer <= per.eer_ci_high).all()


def test_summarize_attack_uses_all_bonafide():
    df = scores_table()
    t = M.summarize(df, ["model", "attack"], n_boot=0)
    assert sorted(t.attack.unique()) == ["A07", "A08", "A09"]          # no "-" group
    assert (t.n_bonafide == 40).all() and (t.n_spoof == 20).all()
    assert t.eer_ci_low.isna().all()                                   # n_boot=0: no interval
    sub = df[(df.model == "m2") & ((df.attack == "A08") | (df.label == "bonafide"))]
    row = t[(t.model == "m2") & (t.attack == "A08")].iloc[0]
    assert row.eer == M.eer(sub.score[sub.label == "bonafide"], sub.score[sub.label == "spoof"])[0]


def test_summarize_missing_class_gives_nan():
    df = scores_table()
    df.loc[(df.codec == "mp3") & (df.label == "bonafide"), "codec"] = "mp3-bona-only"
    t = M.summarize(df, ["codec"], n_boot=50).set_index("codec")
    assert t.loc["mp3", "n_bonafide"] == 0 and np.isnan(t.loc["mp3", "eer"])
    assert t.loc["mp3-bona-only", "n_spoof"] == 0 and np.isnan(t.loc["mp3-bona-only", "auc"])
    assert np.isfinite(t.loc["none", "eer"])


def test_summarize_cluster_and_errors():
    df = scores_table()
    t = M.summarize(df, ["model"], n_boot=100, cluster="speaker")
    assert t.eer_ci_high.notna().all()
    with pytest.raises(KeyError, match="nope"):
        M.summarize(df, ["nope"])
    bad = df.copy()
    bad.loc[0, "label"] = "fake"
    with pytest.raises(ValueError, match="fake"):
        M.summarize(bad)


def test_breakdowns_long_table():
    df = scores_table()
    t = M.breakdowns(df, by=["model"], n_boot=0)
    assert set(t.factor) == {"pooled", "attack", "codec", "speaker"}   # no 'source' column
    m1 = t[t.model == "m1"]
    assert len(m1[m1.factor == "pooled"]) == 1
    assert sorted(m1[m1.factor == "codec"].level) == ["mp3", "none"]
    assert len(m1[m1.factor == "speaker"]) == 4


def test_competence_says_too_few_clips_when_the_ci_holds_both_a_detector_and_chance():
    import pandas as pd

    from bench.metrics.competence import check, flagged

    res = pd.DataFrame([
        {"model": "few", "family": "clean", "severity": 0, "eer": 0.25, "eer_ci_low": 0.0, "eer_ci_high": 0.75},
        {"model": "coin", "family": "clean", "severity": 0, "eer": 0.45, "eer_ci_low": 0.2, "eer_ci_high": 0.7},
        {"model": "good", "family": "clean", "severity": 0, "eer": 0.05, "eer_ci_low": 0.0, "eer_ci_high": 0.2}])
    c = check(res).set_index("model")
    assert c.loc["few", "status"] == "undetermined" and "too few clips to tell" in c.loc["few", "message"]
    assert c.loc["coin", "status"] == "at-chance" and c.loc["good", "status"] == "ok"
    assert set(flagged(res)) == {"coin"}   # too few clips is said, but does not leave a model out
