"""Calibration, fusion and operating points end to end on the demo set (8 clips, AASIST-L and AASIST, clean and
one white-noise level), every number checked against an independent computation from scores.csv:
`bench calibrate` (map and fusion), `bench run --calibration --operating-point` (results_calibrated.csv and
results.csv's operating-point columns), `bench score --calibration` (llr, decision), `bench score` of a fusion,
`bench report --calibration` (table and plot) and `bench check --max-far-increase` at the operating point."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import api
from bench import metrics as M
from bench.cli import main
from bench.metrics import calibration as C
from bench.metrics import thresholds as T

DEMO = Path(__file__).resolve().parents[1] / "bench" / "data" / "demo" / "audio"
SUITE = "name: tiny\nconditions:\n  - {family: white-noise, severities: [4]}\n"
MODELS = ("aasist-l", "aasist")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("deploy")
    (d / "tiny.yaml").write_text(SUITE)
    res = api.run(str(d / "tiny.yaml"), models=MODELS, limit=8, out=d / "run", workers=0, progress=False)
    return d, res.out


@pytest.fixture(scope="module")
def cals(run):
    """`bench calibrate` of each model and of their fusion, on the clean condition (the CLI, as a user runs it)."""
    d, out = run
    for args, name in ((["--model", "aasist-l"], "cal.json"), (["--model", "aasist"], "cal-a.json"),
                       (["--fuse"], "fuse.json")):
        assert main(["calibrate", str(out), *args, "--out", str(d / name)]) == 0
    return d


def _scores(run_dir: Path) -> pd.DataFrame:
    from bench.run.results import read_scores_csv

    return read_scores_csv(run_dir / "scores.csv")


def _split(sc, model, family="clean", severity=0):
    g = sc[(sc["model"] == model) & (sc["family"] == family) & (sc["severity"] == severity)]
    return (g.loc[g["label"] == "bonafide", "score"].to_numpy(float),
            g.loc[g["label"] == "spoof", "score"].to_numpy(float), g)


def test_calibrate_fits_on_the_clean_condition(run, cals, capsys):
    d, out = run
    assert main(["calibrate", str(out), "--model", "aasist-l", "--out", str(d / "again.json")]) == 0
    printed = capsys.readouterr().out
    cal = json.loads((d / "cal.json").read_text())
    assert json.loads((d / "again.json").read_text()) == cal              # the same fit, bit for bit
    bona, spoof, _ = _split(_scores(out), "aasist-l")
    pen = 1e-3 if C.separable(bona, spoof) else 0.0
    a, b = C.train_calibration(bona, spoof, prior=0.95 / 1.45, penalty=pen)
    assert cal["map"] == {"a": pytest.approx(a, rel=1e-12), "b": pytest.approx(b, rel=1e-12)}
    assert cal["penalty"] == pen and cal["penalty_auto"] == (pen > 0)
    assert cal["costs"] == {"p_spoof": 0.05, "c_miss": 1.0, "c_fa": 10.0}
    assert cal["cllr_after"] == pytest.approx(C.cllr(a * bona + b, a * spoof + b), rel=1e-9)
    assert "aasist-l: llr = " in printed and "wrote" in printed
    assert main(["calibrate", str(out), "--fuse", "--out", str(d / "fuse2.json"), "--json"]) == 0
    fus = json.loads(capsys.readouterr().out)
    assert fus["members"] == ["aasist", "aasist-l"] and fus == json.loads((d / "fuse.json").read_text())
    assert main(["calibrate", str(out), "--out", str(d / "x.json")]) == 1        # two models: name one
    assert "several models" in capsys.readouterr().err


def test_run_with_calibration_and_an_operating_point(run, cals):
    d, out = run
    cals = [str(d / n) for n in ("cal.json", "cal-a.json", "fuse.json")]
    res = api.run(str(d / "tiny.yaml"), models=MODELS, limit=8, out=out, workers=0, progress=False,
                  calibration=cals, operating_point="far=25%")          # a finished run: only its tables again
    sc = _scores(out)
    table = pd.read_csv(out / "results_calibrated.csv")
    assert set(table["model"]) == {"aasist-l", "aasist", "fuse:aasist+aasist-l"}
    cal, fus = (json.loads((d / n).read_text()) for n in ("cal.json", "fuse.json"))
    wide = sc.pivot_table(index=["utt_id", "family", "severity", "label"], columns="model",
                          values="score").reset_index()
    for (fam, sev), row_l in table[table["model"] == "aasist-l"].set_index(["family", "severity"]).iterrows():
        bona, spoof, _ = _split(sc, "aasist-l", fam, sev)
        lb, ls = cal["map"]["a"] * bona + cal["map"]["b"], cal["map"]["a"] * spoof + cal["map"]["b"]
        assert row_l["cllr"] == pytest.approx(C.cllr(lb, ls), rel=1e-9)
        assert row_l["min_cllr"] == pytest.approx(C.min_cllr(bona, spoof), rel=1e-9)
        t = -np.log(0.95 * 1 / (0.05 * 10))                              # ASVspoof 5: -ln 1.9, by hand
        want = (0.95 * np.mean(lb < t) + 0.5 * np.mean(ls >= t)) / 0.5
        assert row_l["actdcf"] == pytest.approx(want, abs=1e-9)
        assert row_l["eer"] == pytest.approx(M.eer(bona, spoof)[0])
        w = wide[(wide["family"] == fam) & (wide["severity"] == sev)]
        llr = w[fus["members"]].to_numpy(float) @ np.array(fus["weights"]) + fus["bias"]
        row_f = table[(table["model"] == "fuse:aasist+aasist-l") & (table["family"] == fam)].iloc[0]
        is_b = (w["label"] == "bonafide").to_numpy()
        assert row_f["cllr"] == pytest.approx(C.cllr(llr[is_b], llr[~is_b]), rel=1e-9)
    # results.csv: the far=25% threshold of each model's clean scores, FAR/FRR at it everywhere
    r = res.results
    for m in MODELS:
        bona, spoof, _ = _split(sc, m)
        t = T.threshold_at(bona, spoof, far=0.25)
        assert np.mean(spoof >= t) <= 0.25
        for _, row in r[r["model"] == m].iterrows():
            b2, s2, _ = _split(sc, m, row["family"], row["severity"])
            assert row["operating_point"] == "far=0.25" and row["op_threshold"] == t
            assert (row["far_at_op"], row["frr_at_op"]) == T.far_frr(b2, s2, t)
            assert row["far_at_op_ci_low"] <= row["far_at_op"] <= row["far_at_op_ci_high"]
    prov = json.loads((out / "run.json").read_text())
    assert prov["operating_point"]["spec"] == "far=0.25" and len(prov["calibration"]) == 3
    assert prov["config"]["operating_point"] == "far=25%"
    with pytest.raises(ValueError, match="model aasist has no calibration"):
        api.run(str(d / "tiny.yaml"), models=MODELS, limit=8, out=out, workers=0, progress=False,
                calibration=cals[:1], operating_point="bayes")


def test_bayes_operating_point_is_the_calibrations_decision(run, cals):
    d, out = run
    res = api.run(str(d / "tiny.yaml"), models=MODELS, limit=8, out=out, workers=0, progress=False,
                  calibration=[str(d / "cal.json"), str(d / "cal-a.json")], operating_point="bayes")
    sc = _scores(out)
    for m, f in (("aasist-l", "cal.json"), ("aasist", "cal-a.json")):
        cal = json.loads((d / f).read_text())
        a, b = cal["map"]["a"], cal["map"]["b"]
        for _, row in res.results[res.results["model"] == m].iterrows():
            bona, spoof, _ = _split(sc, m, row["family"], row["severity"])
            t = -np.log(1.9)                                             # decisions on the llrs, by hand
            assert row["far_at_op"] == pytest.approx(np.mean(a * spoof + b >= t))
            assert row["frr_at_op"] == pytest.approx(np.mean(a * bona + b < t))
    assert set(pd.read_csv(out / "results_calibrated.csv")["model"]) == set(MODELS)   # this command's files


def test_score_with_a_calibration_and_a_fusion(run, cals, capsys):
    d, out = run
    sc = _scores(out)
    clean = sc[(sc["family"] == "clean")].pivot(index="utt_id", columns="model", values="score")
    utts = list(clean.index[:2])
    files = [str(DEMO / f"{u}.flac") for u in utts]
    assert main(["score", "--model", "aasist-l", "--calibration", str(d / "cal.json"), "--json", *files]) == 0
    rows = json.loads(capsys.readouterr().out)
    cal = json.loads((d / "cal.json").read_text())
    for r, u in zip(rows, utts):
        assert r["score"] == pytest.approx(clean.loc[u, "aasist-l"], abs=1e-5)
        assert r["llr"] == pytest.approx(cal["map"]["a"] * r["score"] + cal["map"]["b"], rel=1e-12)
        assert r["decision"] == ("bonafide" if r["llr"] >= -np.log(1.9) else "spoof")
    fus = json.loads((d / "fuse.json").read_text())
    spec = f"fuse:aasist+aasist-l@{d / 'fuse.json'}"
    assert main(["score", "--model", spec, "--json", *files]) == 0
    rows = json.loads(capsys.readouterr().out)
    for r, u in zip(rows, utts):
        want = sum(w * clean.loc[u, m] for m, w in zip(fus["members"], fus["weights"])) + fus["bias"]
        assert r["score"] == pytest.approx(want, abs=1e-4)
    assert main(["score", "--model", "aasist", "--calibration", str(d / "cal.json"), files[0]]) == 1
    assert "is for model 'aasist-l', not 'aasist'" in capsys.readouterr().err


def test_report_shows_calibration_against_severity(run, cals):
    d, out = run
    rep_dir = d / "report"
    assert main(["report", str(out), "--out", str(rep_dir), "--calibration", str(d / "cal.json"),
                 "--calibration", str(d / "fuse.json")]) == 0
    table = pd.read_csv(rep_dir / "results_calibrated.csv")
    assert list(table.columns[:10]) == ["model", "family", "severity", "n_bonafide", "n_spoof", "cllr", "min_cllr",
                                        "actdcf", "min_dcf", "eer"]
    assert (rep_dir / "plots" / "calibration-white-noise.png").stat().st_size > 5000
    md = (rep_dir / "report.md").read_text()
    assert "Calibration under stress: aasist-l" in md and "Fusion against its members: fuse:aasist+aasist-l" in md


def test_check_reads_far_at_the_common_operating_point(run, tmp_path, capsys):
    d, out = run
    api.run(str(d / "tiny.yaml"), models=MODELS, limit=8, out=out, workers=0, progress=False,
            operating_point="far=25%")
    new = tmp_path / "new"
    shutil.copytree(out, new)
    r = pd.read_csv(new / "results.csv")
    hit = (r["family"] == "white-noise") & (r["model"] == "aasist-l")
    r.loc[hit, "far_at_op"] = r.loc[hit, "far_at_op"] + 0.5             # FAR at the operating point up 50 points
    r.to_csv(new / "results.csv", index=False)
    code = main(["check", str(new), "--baseline", str(out), "--max-eer-increase", "0.5", "--max-far-increase", "0.1",
                 "--n-boot", "50", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["far_at"] == "the operating point far=0.25"
    failed = [c for c in doc["conditions"] if c["failed"]]
    assert [(c["model"], c["family"]) for c in failed] == [("aasist-l", "white-noise")]
    assert "FAR at the operating point far=0.25 rose" in failed[0]["reason"]
    r.loc[:, "operating_point"] = "eer"                                  # another point: the clean threshold
    r.to_csv(new / "results.csv", index=False)
    assert main(["check", str(new), "--baseline", str(out), "--max-eer-increase", "0.5", "--max-far-increase",
                 "0.1", "--n-boot", "50", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["far_at"] == "the clean threshold" and any("different operating points" in n for n in doc["notes"])
