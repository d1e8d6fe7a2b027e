"""bench.run.calibrate on small scores.csv files written in tmp_path: CAL.json fitting (one model, a fusion
joined on utt_id), saving and validated loading, calibrated per-condition results, and the refusals."""
import hashlib
import math
import json

import numpy as np
import pandas as pd
import pytest

from bench import metrics as M

from bench.run import calibrate as R
from bench.run import calibrated as A
from bench.metrics import calibration as C


def _rows(model, family, severity, bona, spoof, prefix="u"):
    rows = [(f"{prefix}b{i}", model, family, severity, "bonafide", v) for i, v in enumerate(bona)]
    return rows + [(f"{prefix}s{i}", model, family, severity, "spoof", v) for i, v in enumerate(spoof)]


def _run(tmp_path, rows, name="run", run_json=None):
    d = tmp_path / name
    d.mkdir()
    df = pd.DataFrame(rows, columns=["utt_id", "model", "family", "severity", "label", "score"])
    df.assign(policy="official").to_csv(d / "scores.csv", index=False)
    if run_json is not None:
        (d / "run.json").write_text(json.dumps(run_json))
    return d


def _scores(rng, n_b=60, n_s=90, shift=0.0):
    """Overlapping classes on a scale far from llrs (x5, +20), so a calibration has work to do."""
    return 5 * rng.normal(1.5 - shift, 1, n_b) + 20, 5 * rng.normal(0, 1, n_s) + 20


def test_fit_calibration_on_the_clean_condition(tmp_path):
    rng = np.random.default_rng(0)
    cb, cs = _scores(rng)
    mb, ms = _scores(rng, shift=1.0)
    prov = {"data": {"sha256": "d" * 64}, "seed": 3, "suite": {"name": "compression", "version": 2},
            "models": [{"name": "aasist", "sha256": "c" * 64, "card": {}}]}
    run = _run(tmp_path, _rows("aasist", "clean", 0, cb, cs) + _rows("aasist", "mp3", 3, mb, ms), run_json=prov)
    cal = R.fit_calibration(run, p_spoof=0.2, c_fa=4.0)
    a, b = C.train_calibration(cb, cs, prior=0.8 / (0.8 + 0.2 * 4.0))     # the effective bona fide prior
    assert cal["costs"] == {"p_spoof": 0.2, "c_miss": 1.0, "c_fa": 4.0} and cal["prior"] == pytest.approx(0.5)
    assert (cal["map"]["a"], cal["map"]["b"]) == (a, b)                    # the clean rows only
    assert cal["model"] == "aasist" and cal["condition"] == {"family": "clean", "severity": 0}
    assert (cal["n_bonafide"], cal["n_spoof"], cal["n_trials"]) == (60, 90, 150)
    assert cal["run"]["scores_sha256"] == hashlib.sha256((run / "scores.csv").read_bytes()).hexdigest()
    assert cal["run"]["identity"] == {"data_sha256": "d" * 64, "seed": 3,
                                      "suite": {"name": "compression", "version": 2},
                                      "models": [{"name": "aasist", "sha256": "c" * 64}]}
    assert cal["cllr_before"] == C.cllr(cb, cs) > 1.0 > cal["cllr_after"] == C.cllr(a * cb + b, a * cs + b)
    assert cal["min_cllr"] == pytest.approx(C.min_cllr(cb, cs)) and cal["min_cllr"] < cal["cllr_after"]
    other = R.fit_calibration(run, condition="mp3")                      # a family with one severity
    assert other["condition"] == {"family": "mp3", "severity": 3}
    assert other["map"]["a"] == C.train_calibration(mb, ms)[0]                # default: ASVspoof 5's application
    assert other["prior"] == pytest.approx(0.95 / 1.45) == C.DEFAULT_PRIOR
    assert (other["penalty"], other["penalty_auto"]) == (0.0, False)


def test_model_and_condition_selection_is_refused_clearly(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for m in ("aasist", "rawnet2"):
        for sev in (0, 1, 2):
            rows += _rows(m, "clean" if sev == 0 else "mp3", sev, *_scores(rng))
    run = _run(tmp_path, rows)
    with pytest.raises(ValueError, match=r"several models \['aasist', 'rawnet2'\]"):
        R.fit_calibration(run)
    with pytest.raises(ValueError, match="'ssl' is not in the run"):
        R.fit_calibration(run, model="ssl")
    with pytest.raises(ValueError, match=r"severities \[1, 2\].*mp3@SEVERITY"):
        R.fit_calibration(run, model="aasist", condition="mp3")
    assert R.fit_calibration(run, model="aasist", condition="mp3@2")["condition"]["severity"] == 2
    with pytest.raises(ValueError, match="'opus' is not in the run"):
        R.fit_calibration(run, model="aasist", condition="opus")
    with pytest.raises(FileNotFoundError, match="scores.csv"):
        R.fit_calibration(tmp_path / "nowhere")


def test_unfittable_runs_are_refused(tmp_path):
    sep = _run(tmp_path, _rows("m", "clean", 0, [3.0, 4.0], [1.0, 2.0]), name="separable")
    with pytest.raises(ValueError, match="model 'm', condition clean@0: the scores separate"):
        R.fit_calibration(sep, penalty=0)
    assert R.fit_calibration(sep, penalty=0.1)["map"]["a"] > 0
    with pytest.raises(ValueError, match="penalty must be 'auto' or"):
        R.fit_calibration(sep, penalty="lots")
    with pytest.raises(ValueError, match=r"spoof prior \(--prior\) must lie strictly between 0 and 1"):
        R.fit_calibration(sep, p_spoof=1.0)
    nan = _run(tmp_path, _rows("m", "clean", 0, [3.0, np.nan], [1.0, 3.5]), name="nan")
    with pytest.raises(ValueError, match="not finite.*'ub1'"):
        R.fit_calibration(nan)
    bad = _run(tmp_path, _rows("m", "clean", 0, [1.0], [0.0]) + [("x", "m", "clean", 0, "fake", 1.0)], name="lab")
    with pytest.raises(ValueError, match="column 'label' has \\['fake'\\]"):
        R.fit_calibration(bad)
    dup = _run(tmp_path, _rows("m", "clean", 0, [1.0, 0.0], [0.0, 1.0]) * 2, name="dup")
    with pytest.raises(ValueError, match="duplicate rows"):
        R.fit_calibration(dup)


def _fusion_run(tmp_path, rng, drop=None):
    n_b, n_s = 50, 70
    truth = np.r_[rng.normal(1, 1, n_b), rng.normal(-1, 1, n_s)]
    labels = ["bonafide"] * n_b + ["spoof"] * n_s
    members = {"a": 3 * truth + rng.normal(0, 2, truth.size) + 5, "b": 0.5 * truth ** 3 + rng.normal(0, 1, truth.size),
               "c": truth + rng.normal(0, 1.5, truth.size)}
    rows = []
    for fam, sev in (("clean", 0), ("noise", 2)):
        for m, v in members.items():
            rows += [(f"utt{i:03d}", m, fam, sev, labels[i], v[i] + (0.3 * sev)) for i in range(truth.size)]
    rows = [rows[i] for i in rng.permutation(len(rows))]                   # no order to rely on
    if drop:
        rows = [r for r in rows if not (r[0] == drop[0] and r[1] == drop[1])]
    return _run(tmp_path, rows, name=f"fusion{'-gap' if drop else ''}"), members, np.array(labels)


def test_fit_fusion_joins_members_on_utt_id(tmp_path):
    rng = np.random.default_rng(2)
    run, members, labels = _fusion_run(tmp_path, rng)
    cal = R.fit_fusion(run, models=["c", "a"])
    x = np.column_stack([members["c"], members["a"]])
    w, b = C.train_fusion(x[labels == "bonafide"], x[labels == "spoof"], prior=C.DEFAULT_PRIOR)
    assert cal["penalty_auto"] is False
    assert cal["members"] == ["c", "a"] and cal["weights"] == [w[0], w[1]] and cal["bias"] == b
    assert cal["n_trials"] == 120 and set(cal["cllr_before"]) == {"c", "a"}
    everyone = R.fit_fusion(run)
    assert everyone["members"] == ["a", "b", "c"] and len(everyone["weights"]) == 3
    with pytest.raises(ValueError, match="two or more distinct models"):
        R.fit_fusion(run, models=["a"])
    with pytest.raises(ValueError, match=r"\['zz'\] are not in the run"):
        R.fit_fusion(run, models=["a", "zz"])
    gap, _, _ = _fusion_run(tmp_path, np.random.default_rng(2), drop=("utt007", "b"))
    with pytest.raises(ValueError, match=r"not every utterance is scored by every member.*'b': 1.*utt007"):
        R.fit_fusion(gap)


def test_save_and_load_validate_the_file(tmp_path):
    rng = np.random.default_rng(3)
    run = _run(tmp_path, _rows("m", "clean", 0, *_scores(rng)))
    cal = R.fit_calibration(run)
    path = R.save_calibration(cal, tmp_path / "CAL.json")
    assert R.load_calibration(path) == cal
    cases = [({"format": "other"}, "field 'format'"), ({"version": 9}, "field 'version'"),
             ({"prior": 1.5}, "field 'prior'"), ({"map": {"a": 1.0}}, "field 'map.b' is missing"),
             ({"costs": {"p_spoof": 0.05, "c_miss": 1}}, "field 'costs.c_fa' is missing"),
             ({"costs": {"p_spoof": 0.05, "c_miss": 1, "c_fa": -1}}, "field 'costs.c_fa' must be positive"),
             ({"map": {"a": "x", "b": 0.0}}, "field 'map.a' must be a finite number"),
             ({"kind": "isotonic"}, "field 'kind'"), ({"condition": {"family": "clean"}}, "condition.severity")]
    for change, msg in cases:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**cal, **change}))
        with pytest.raises(ValueError, match=f"{bad}.*{msg}"):
            R.load_calibration(bad)
    fus = {**{k: v for k, v in cal.items() if k not in ("model", "map")}, "kind": "fusion",
           "members": ["a", "b"], "weights": [1.0], "bias": 0.0}
    with pytest.raises(ValueError, match="CAL2.json: field 'weights' must hold one number per member"):
        R.save_calibration(fus, tmp_path / "CAL2.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        R.load_calibration(tmp_path / "broken.json")
    nan = tmp_path / "nan.json"
    nan.write_text(json.dumps({**fus, "weights": [1.0, float("nan")]}))
    with pytest.raises(ValueError, match=r"field 'weights\[1\]' must be a finite number"):
        R.load_calibration(nan)


def test_calibrated_results_per_condition(tmp_path):
    rng = np.random.default_rng(4)
    cb, cs = _scores(rng)
    mb, ms = _scores(rng, shift=1.0)
    rows = _rows("m", "clean", 0, cb, cs) + _rows("m", "mp3", 3, mb, ms) + _rows("m", "only-spoof", 1, [], ms[:5])
    run = _run(tmp_path, rows + _rows("other", "clean", 0, cb, cs))
    cal = R.fit_calibration(run, model="m")
    res = A.calibrated_results(R.read_scores(run), cal).set_index("family")
    assert list(res.columns) == ["model", "severity", "n_bonafide", "n_spoof", "cllr", "min_cllr", "actdcf",
                                 "min_dcf", "eer"]
    assert set(res["model"]) == {"m"}                                     # the map is only for its own model
    a, b = cal["map"]["a"], cal["map"]["b"]
    for fam, (bona, spoof) in {"clean": (cb, cs), "mp3": (mb, ms)}.items():
        lb, ls = a * bona + b, a * spoof + b
        row = res.loc[fam]
        assert (row["n_bonafide"], row["n_spoof"]) == (bona.size, spoof.size)
        assert row["cllr"] == pytest.approx(C.cllr(lb, ls), rel=1e-12)
        assert row["min_cllr"] == pytest.approx(C.min_cllr(bona, spoof), rel=1e-12)   # monotone map, a > 0
        assert row["actdcf"] == pytest.approx(C.act_dcf(lb, ls, 0.95, 1, 10), rel=1e-12)
        assert row["min_dcf"] == pytest.approx(C.min_dcf(bona, spoof, 0.95, 1, 10), rel=1e-12)
        assert row["eer"] == M.eer(bona, spoof)[0]                           # a monotone map keeps the EER
    assert res.loc["mp3", "cllr"] > res.loc["clean", "cllr"]                # the stressed condition costs more
    assert np.isnan(res.loc["only-spoof", "cllr"]) and res.loc["only-spoof", "n_spoof"] == 5
    with pytest.raises(ValueError, match="model 'm', which the scores do not hold"):
        A.calibrated_results(R.read_scores(run).query("model == 'other'"), cal)


def test_calibrated_results_of_a_fusion(tmp_path):
    rng = np.random.default_rng(5)
    run, members, labels = _fusion_run(tmp_path, rng)
    cal = R.fit_fusion(run, models=["a", "c"])
    res = A.calibrated_results(R.read_scores(run), cal).set_index("family")
    assert set(res["model"]) == {"fuse:a+c"}
    llr = np.column_stack([members["a"], members["c"]]) @ np.array(cal["weights"]) + cal["bias"]
    assert res.loc["clean", "cllr"] == pytest.approx(cal["cllr_after"], rel=1e-12)
    assert res.loc["clean", "cllr"] == pytest.approx(C.cllr(llr[labels == "bonafide"], llr[labels == "spoof"]))
    shifted = (members["a"] + 0.6) * cal["weights"][0] + (members["c"] + 0.6) * cal["weights"][1] + cal["bias"]
    assert res.loc["noise", "cllr"] == pytest.approx(C.cllr(shifted[labels == "bonafide"], shifted[labels == "spoof"]))


def test_a_separable_condition_falls_back_to_the_recorded_penalty(tmp_path):
    rng = np.random.default_rng(6)
    bona, spoof = rng.normal(6, 1, 20), rng.normal(-2, 1, 30)             # separated by a wide gap
    run = _run(tmp_path, _rows("m", "clean", 0, bona, spoof))
    cal = R.fit_calibration(run)
    assert cal["penalty_auto"] is True and cal["penalty"] == R.AUTO_PENALTY
    a, b = C.train_calibration(bona, spoof, prior=C.DEFAULT_PRIOR, penalty=R.AUTO_PENALTY)
    assert (cal["map"]["a"], cal["map"]["b"]) == (a, b)
    llr_b, llr_s = a * bona + b, a * spoof + b
    assert llr_b.min() > 0 > llr_s.max() and np.all(np.isfinite(np.r_[llr_b, llr_s]))
    assert cal["cllr_after"] < 0.05                                         # confident, and finite
    path = R.save_calibration(cal, tmp_path / "CAL.json")
    assert R.load_calibration(path)["penalty_auto"] is True


def test_bayes_threshold_on_the_models_scores(tmp_path):
    rng = np.random.default_rng(8)
    run = _run(tmp_path, _rows("m", "clean", 0, *_scores(rng)))
    cal = R.fit_calibration(run, p_spoof=0.1, c_miss=2.0, c_fa=5.0)
    t_llr = A.bayes_threshold(cal)
    assert t_llr == pytest.approx(-math.log(0.9 * 2 / (0.1 * 5)))
    t = A.score_threshold(cal)
    a, b = cal["map"]["a"], cal["map"]["b"]
    assert a * t + b == pytest.approx(t_llr)
    s = np.linspace(t - 1, t + 1, 201)
    np.testing.assert_array_equal(s >= t, a * s + b >= t_llr - 1e-12)
    inverted = {**cal, "map": {"a": -a, "b": b}}
    with pytest.raises(ValueError, match="slope .* <= 0"):
        A.score_threshold(inverted)


def test_calibrated_table_keeps_the_run_order_and_refuses_two_maps_for_one_model(tmp_path):
    rng = np.random.default_rng(10)
    rows = []
    for m in ("x", "y"):
        rows += _rows(m, "clean", 0, *_scores(rng)) + _rows(m, "mp3", 2, *_scores(rng, shift=0.5))
    run = _run(tmp_path, rows)
    scores = R.read_scores(run)
    cx, cy = R.fit_calibration(run, model="x"), R.fit_calibration(run, model="y")
    results = pd.DataFrame({"model": ["y", "y", "x", "x"], "family": ["clean", "mp3"] * 2, "severity": [0, 2] * 2,
                            "level_label": ["clean", "64 kb/s"] * 2})
    t = A.calibrated_table(scores, [("cx.json", cx), ("cy.json", cy)], results)
    assert list(zip(t["model"], t["family"])) == [("x", "clean"), ("x", "mp3"), ("y", "clean"), ("y", "mp3")]
    assert list(t["level_label"]) == ["clean", "64 kb/s"] * 2 and list(t["calibration"][:2]) == ["cx.json"] * 2
    with pytest.raises(ValueError, match="two calibrations give rows for model 'x'"):
        A.calibrated_table(scores, [("a.json", cx), ("b.json", cx)])
    with pytest.raises(ValueError, match="both for x"):
        A.check_models([("a.json", cx), ("b.json", cx)], ["x", "y"])
    with pytest.raises(ValueError, match=r"--calibration a.json: it is for model \['x'\], which the run does not"):
        A.check_models([("a.json", cx)], ["y"])
