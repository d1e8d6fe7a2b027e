"""The deployed operating point (FAR/FRR at the clean EER threshold) and ASVspoof 5's Cllr and actDCF,
against values computed by hand; the speaker-cluster bootstrap when the data names enough speakers."""
import math

import numpy as np
import pandas as pd
import pytest

from bench.metrics import costs as C
from bench import metrics as M
from bench.run.results import MIN_SPEAKERS, results_table
from reports.synthetic import conditions_for


def test_cllr_by_hand():
    bona, spoof = [2.0, 0.0], [-1.0, 1.0]
    # (mean(log(1 + e^-2), log 2) + mean(log(1 + e^-1), log(1 + e^1))) / (2 ln 2)
    want = 0.5 * ((math.log(1 + math.exp(-2)) + math.log(2)) / 2
                  + (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(1))) / 2) / math.log(2)
    assert C.cllr(bona, spoof) == pytest.approx(want, rel=1e-12)
    assert C.cllr([0.0] * 3, [0.0] * 5) == pytest.approx(1.0)          # uninformative: 1 bit
    assert np.isfinite(C.cllr([800.0], [-800.0]))                     # no overflow


def test_act_dcf_by_hand():
    # Pspoof 0.05, Cmiss 1, Cfa 10: beta = 0.95 / 0.5 = 1.9, threshold -ln 1.9 = -0.6419
    bona, spoof = [2.0, 0.0, -1.0], [-1.0, 1.0]
    p_miss, p_fa = 1 / 3, 1 / 2                                      # -1 < t; 1 >= t
    want = (1 * 0.95 * p_miss + 10 * 0.05 * p_fa) / min(10 * 0.05, 1 * 0.95)
    assert C.act_dcf(bona, spoof) == pytest.approx(want) == pytest.approx(1.1333333333)
    assert C.act_dcf([-0.64], [-0.65]) == pytest.approx(0.0)          # both sides of t = -0.6419
    assert C.act_dcf([-0.65], [-0.64]) == pytest.approx((0.95 + 0.5) / 0.5)


def test_min_dcf_by_hand():
    bona, spoof = [3.0, 1.0], [0.0, 2.0]
    # cuts of the DET curve (sorted 0s,1b,2s,3b): (frr, far) = (0,1) (0,.5) (.5,.5) (.5,0) (1,0)
    costs = [0.95 * frr + 0.5 * far for frr, far in ((0, 1), (0, .5), (.5, .5), (.5, 0), (1, 0))]
    assert C.min_dcf(bona, spoof) == pytest.approx(min(costs) / 0.5)


def _scores(rows):
    return pd.DataFrame(rows, columns=["utt_id", "model", "family", "severity", "label", "score"])


def test_far_and_frr_at_the_clean_threshold_by_hand():
    conds = conditions_for({"mp3": ("perturbation", (1,))})
    ids = ["b1", "b2", "b3", "b4", "s1", "s2", "s3", "s4"]
    lab = ["bonafide"] * 4 + ["spoof"] * 4
    clean = [4.0, 3.0, 2.0, 0.5, -3.0, -2.0, 1.0, 0.0]        # EER cut between 0.5 and 1.0 -> threshold
    mp3 = [4.0, 0.2, 0.1, 0.0, 2.5, 2.0, 1.5, -3.0]            # spoofs pushed up, bona fide down
    rows = [(u, "m", "clean", 0, l, s) for u, l, s in zip(ids, lab, clean)]
    rows += [(u, "m", "mp3", 1, l, s) for u, l, s in zip(ids, lab, mp3)]
    res = results_table(_scores(rows), "t", conds, n_boot=200, seed=0).set_index("family")
    thr = M.eer(clean[:4], clean[4:])[1]
    assert res.loc["clean", "clean_threshold"] == res.loc["mp3", "clean_threshold"] == thr
    b, s = np.array(mp3[:4]), np.array(mp3[4:])
    assert res.loc["mp3", "far_at_clean_threshold"] == np.mean(s > thr)
    assert res.loc["mp3", "frr_at_clean_threshold"] == np.mean(b <= thr)
    # by hand: the clean threshold is 0.5 (the cut after b4): spoofs > 0.5 are 3 of 4, bona fide <= 0.5 are 3 of 4
    assert thr == 0.5
    assert res.loc["mp3", "far_at_clean_threshold"] == 0.75 and res.loc["mp3", "frr_at_clean_threshold"] == 0.75
    assert res.loc["mp3", "far_ci_low"] <= 0.75 <= res.loc["mp3", "far_ci_high"]
    assert res.loc["mp3", "cllr"] == pytest.approx(C.cllr(b, s))
    assert res.loc["mp3", "actdcf"] == pytest.approx(C.act_dcf(b, s))
    from types import SimpleNamespace

    from bench.commands.summary import operating_point
    sec = operating_point(SimpleNamespace(results=res.reset_index()), {})
    assert sec.columns == ["family", "clean", "s1"] and sec.rows[0][0] == "mp3"
    assert sec.rows[0][2].startswith("75.0\n[") and sec.rows[0][2].endswith("FRR 75.0")


def test_speaker_clusters_used_when_the_data_names_enough_speakers():
    rng = np.random.default_rng(0)
    conds = conditions_for({})
    n = 120
    ids = [f"u{i}" for i in range(n)]
    lab = np.where(np.arange(n) % 2 == 0, "bonafide", "spoof")
    spk = {u: f"spk{i % (2 * MIN_SPEAKERS)}" for i, u in enumerate(ids)}
    # a strong speaker effect: utterances of one speaker move together
    eff = {s: rng.normal(0, 2) for s in set(spk.values())}
    score = np.where(lab == "bonafide", 1.0, -1.0) + np.array([eff[spk[u]] for u in ids]) + 0.1 * rng.normal(size=n)
    df = _scores([(u, "m", "clean", 0, l, s) for u, l, s in zip(ids, lab, score)])
    plain = results_table(df, "t", conds, n_boot=300, seed=1).iloc[0]
    clustered = results_table(df, "t", conds, n_boot=300, seed=1, speakers=spk).iloc[0]
    bona, spoof = score[lab == "bonafide"], score[lab == "spoof"]
    sp = np.array([spk[u] for u in ids])
    want = M.bootstrap_eer_ci(bona, spoof, n_boot=300, seed=1, groups=(sp[lab == "bonafide"], sp[lab == "spoof"]))
    assert (clustered["eer_ci_low"], clustered["eer_ci_high"]) == pytest.approx(want)
    assert (clustered["eer_ci_high"] - clustered["eer_ci_low"]) > (plain["eer_ci_high"] - plain["eer_ci_low"])
    few = {u: f"spk{i % 3}" for i, u in enumerate(ids)}                   # too few clusters: utterances
    again = results_table(df, "t", conds, n_boot=300, seed=1, speakers=few).iloc[0]
    assert (again["eer_ci_low"], again["eer_ci_high"]) == (plain["eer_ci_low"], plain["eer_ci_high"])


def test_runner_uses_speaker_clusters_when_the_data_has_them():
    from bench.data import load_dataset
    from bench.run.runner import _speakers

    full = load_dataset("demo")
    sp = _speakers(full)
    assert sp is not None and len(set(sp.values())) >= MIN_SPEAKERS
    assert _speakers(load_dataset("demo", limit=6)) is None            # too few speakers for clusters


def test_report_shows_the_operating_point(tmp_path):
    from reports.report import build_report
    from reports.synthetic import make_run

    run = make_run(tmp_path / "run", fams={"mp3": ("perturbation", (1, 2))}, n_bonafide=20, n_spoof=20, n_boot=20)
    rep = build_report(run, plots=False)
    md = (rep.out / "report.md").read_text()
    assert "Operating point of model-a" in md and "FAR %" in md and "actDCF" in md
    res = pd.read_csv(run / "results.csv")
    r = res[(res["model"] == "model-a") & (res["family"] == "mp3") & (res["severity"] == 2)].iloc[0]
    assert f"{100 * r['far_at_clean_threshold']:.2f} [" in md
    assert "Operating point" in (rep.out / "report.html").read_text()
