"""`bench check` as a CI gate (issue 13): missing or unmatched baseline conditions fail, runs on other data
or suites are refused unless asked, every condition is printed with both EERs, the difference and its
paired-bootstrap CI, the mode is named, `--significant` judges the CI's lower bound, and
`--max-far-increase` gates the deployed operating point."""
import json

import numpy as np
import pandas as pd
import pytest

from bench.cli import main as bench_main
from reports.check import check_runs
from reports.synthetic import conditions_for, write_run


def scores(fams, n=40, seed=0, model="m", shift=None, noise=None):
    """Bona fide ~ N(+1), spoof ~ N(-1) per utterance (fixed across conditions, so runs pair); ``shift`` adds
    a constant to every score of a condition, ``noise`` replaces a condition's scores with random ones."""
    rng = np.random.default_rng(seed)
    ids = [f"b{i}" for i in range(n)] + [f"s{i}" for i in range(n)]
    lab = ["bonafide"] * n + ["spoof"] * n
    base = np.r_[rng.normal(1, 1, n), rng.normal(-1, 1, n)]
    rows = []
    for c in conditions_for(fams):
        sc = base.copy()
        if noise and (c.family, c.severity) in noise:
            sc = np.random.default_rng(noise[(c.family, c.severity)]).normal(0, 1, 2 * n)
        sc = sc + (shift or {}).get((c.family, c.severity), 0.0)
        rows.append(pd.DataFrame({"utt_id": ids, "model": model, "family": c.family, "severity": c.severity,
                                  "label": lab, "score": sc, "policy": "official"}))
    return pd.concat(rows, ignore_index=True)


def run(tmp_path, name, fams, suite="synthetic", data="demo", **kw):
    return write_run(tmp_path / name, scores(fams, **kw), conditions_for(fams), data_spec=data, suite=suite, n_boot=50)


MP3 = {"mp3": ("perturbation", (1, 2))}


def test_missing_baseline_condition_fails_unless_allowed(tmp_path, capsys):
    base = run(tmp_path, "base", MP3)
    new = run(tmp_path, "new", {"mp3": ("perturbation", (1,))})
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "mp3 32 kb/s" in out and "MISSING" in out and "missing from the new run" in out
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.5",
                       "--allow-missing"]) == 0
    assert "missing (allowed)" in capsys.readouterr().out


def test_runs_sharing_only_clean_fail(tmp_path, capsys):
    base = run(tmp_path, "base", MP3)
    new = run(tmp_path, "new", {"opus": ("perturbation", (1,))})
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: 2 of 3" in out and "not in the baseline (not checked): opus 64 kb/s" in out


def test_other_data_or_suite_is_refused_unless_asked(tmp_path, capsys):
    base = run(tmp_path, "base", MP3)
    other_data = run(tmp_path, "d", MP3, data="elsewhere.csv")
    other_suite = run(tmp_path, "s", MP3, suite="another")
    for new, flag in ((other_data, "--allow-data-change"), (other_suite, "--allow-suite-change")):
        assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.5"]) == 2
        assert flag in capsys.readouterr().err
        assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.5", flag]) == 0
        assert "checked although the runs differ" in capsys.readouterr().out


def test_changed_level_parameters_do_not_match(tmp_path, capsys):
    base = run(tmp_path, "base", MP3)
    new = run(tmp_path, "new", MP3)
    res = pd.read_csv(new / "results.csv")
    res.loc[(res["family"] == "mp3") & (res["severity"] == 2), "params"] = '{"bitrate": 8000}'
    res.to_csv(new / "results.csv", index=False)
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.5"]) == 1
    assert "level parameters differ" in capsys.readouterr().out


def test_table_of_every_condition_with_paired_ci_and_mode(tmp_path, capsys):
    base = run(tmp_path, "base", MP3)
    new = run(tmp_path, "new", MP3, shift=None, noise={("mp3", 2): 7})
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.05"]) == 1
    out = capsys.readouterr().out
    assert "mode threshold" in out
    header = next(line for line in out.splitlines() if line.startswith("model"))
    for col in ("base EER %", "new EER %", "diff", "95% CI"):
        assert col in header
    # conditions are named in their units
    a, b = header.index("condition"), header.index("base EER %")
    lines = {line[a:b].strip(): line for line in out.splitlines() if line.startswith("m ")}
    assert set(lines) == {"clean", "mp3 64 kb/s", "mp3 32 kb/s"}
    assert lines["mp3 64 kb/s"].rstrip().endswith("ok") and "FAIL" in lines["mp3 32 kb/s"]
    res = check_runs(new, base, 0.05)
    r = res.rows.set_index("family").loc["mp3"].set_index("severity").loc[2]
    assert r["ci_kind"] == "paired" and r["ci_low"] <= r["increase"] <= r["ci_high"]
    clean = res.rows.set_index("family").loc["clean"]
    assert clean["ci_low"] == 0 == clean["ci_high"]


def test_significance_mode_needs_the_ci_lower_bound_above_the_limit(tmp_path, capsys):
    small = {"mp3": ("perturbation", (1,))}
    base = run(tmp_path, "base", small, n=8, seed=3)
    new = run(tmp_path, "new", small, n=8, seed=3, noise={("mp3", 1): 11})       # 16 clips, random scores
    res = check_runs(new, base, 0.10)
    r = res.rows[res.rows["family"] == "mp3"].iloc[0]
    assert r["increase"] > 0.10 and r["ci_low"] <= 0.10                          # a rise, but not evidence
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.10"]) == 1
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.10",
                       "--significant"]) == 0
    assert "mode significant" in capsys.readouterr().out
    big = {"mp3": ("perturbation", (1,))}
    base2 = run(tmp_path, "base2", big, n=300, seed=4)
    new2 = run(tmp_path, "new2", big, n=300, seed=4, noise={("mp3", 1): 12})      # a real collapse
    assert bench_main(["check", str(new2), "--baseline", str(base2), "--max-eer-increase", "0.10",
                       "--significant"]) == 1


def test_far_at_the_clean_threshold_gate(tmp_path, capsys):
    base = run(tmp_path, "base", MP3)
    new = run(tmp_path, "new", MP3, shift={("mp3", 1): 1.5})     # same ranking (same EER), spoofs now accepted
    res = check_runs(new, base, 0.01)
    r = res.rows.set_index(["family", "severity"]).loc[("mp3", 1)]
    assert abs(r["increase"]) < 1e-12 and r["far_increase"] > 0.2 and r["far_ci_low"] > 0
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.01"]) == 0
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.01",
                       "--max-far-increase", "0.05"]) == 1
    out = capsys.readouterr().out
    assert "FAR at the clean threshold rose" in out and "base FAR %" in out


def test_json_is_strict_and_names_the_mode(tmp_path, capsys):
    base = run(tmp_path, "base", MP3)
    new = run(tmp_path, "new", {"mp3": ("perturbation", (1,))})

    def bad(name):
        raise ValueError(name)
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.5", "--json",
                       "--significant", "--allow-missing"]) == 0
    doc = json.loads(capsys.readouterr().out, parse_constant=bad)
    assert doc["mode"] == "significant" and doc["ok"] is True
    miss = [c for c in doc["conditions"] if c["status"] == "missing"]
    assert [(c["family"], c["severity"]) for c in miss] == [("mp3", 2)] and miss[0]["eer"] is None


def test_a_baseline_model_missing_from_the_new_run_fails(tmp_path, capsys):
    fams = {"mp3": ("perturbation", (1,))}
    two = pd.concat([scores(fams, model="a"), scores(fams, model="b", seed=1)], ignore_index=True)
    base = write_run(tmp_path / "base", two, conditions_for(fams), n_boot=20)
    new = write_run(tmp_path / "new", scores(fams, model="a"), conditions_for(fams), n_boot=20)
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "baseline model missing from the new run" in out and "(vs b)" in out
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.5",
                       "--allow-missing"]) == 0


def test_a_far_gate_without_far_columns_fails_rather_than_passing_silently(tmp_path, capsys):
    base = run(tmp_path, "base", MP3)
    new = run(tmp_path, "new", MP3)
    res = pd.read_csv(new / "results.csv")
    res.drop(columns=[c for c in res.columns if c.startswith(("far", "frr", "clean_threshold"))]).to_csv(
        new / "results.csv", index=False)
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.05"]) == 0
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.05",
                       "--max-far-increase", "0.05"]) == 1
    assert "no FAR at the clean threshold" in capsys.readouterr().out


def test_ci_resamples_whole_speakers_when_scores_name_them(tmp_path):
    fams = {"mp3": ("perturbation", (1,))}
    n, n_spk = 120, 20
    rng = np.random.default_rng(5)
    ids = [f"b{i}" for i in range(n)] + [f"s{i}" for i in range(n)]
    lab = ["bonafide"] * n + ["spoof"] * n
    spk = [f"spk{i % n_spk}" for i in range(2 * n)]
    effect = rng.normal(0, 1.5, n_spk)                                  # utterances of a speaker move together
    base = np.r_[np.ones(n), -np.ones(n)] + np.array([effect[int(s[3:])] for s in spk]) + 0.3 * rng.normal(size=2 * n)

    def frame(extra):
        rows = []
        for c in conditions_for(fams):
            sc = base + (extra if c.family == "mp3" else 0) + 0.2 * rng.normal(size=2 * n)
            rows.append(pd.DataFrame({"utt_id": ids, "model": "m", "family": c.family, "severity": c.severity,
                                      "label": lab, "score": sc, "policy": "official", "speaker": spk}))
        return pd.concat(rows, ignore_index=True)
    a, b = frame(0.0), frame(np.r_[np.zeros(n), 0.8 * np.ones(n)])
    base_run = write_run(tmp_path / "a", a, conditions_for(fams), n_boot=20)
    new_run = write_run(tmp_path / "b", b, conditions_for(fams), n_boot=20)
    by_spk = check_runs(new_run, base_run, 0.5).rows.set_index("family").loc["mp3"]
    assert by_spk["ci_kind"] == "paired by speaker" and by_spk["far_ci_low"] <= by_spk["far_increase"]
    write_run(tmp_path / "a2", a.drop(columns="speaker"), conditions_for(fams), n_boot=20)
    write_run(tmp_path / "b2", b.drop(columns="speaker"), conditions_for(fams), n_boot=20)
    by_utt = check_runs(tmp_path / "b2", tmp_path / "a2", 0.5).rows.set_index("family").loc["mp3"]
    assert by_utt["ci_kind"] == "paired" and by_utt["increase"] == pytest.approx(by_spk["increase"])
    assert by_spk["ci_high"] - by_spk["ci_low"] > by_utt["ci_high"] - by_utt["ci_low"]


def test_a_check_across_precisions_says_so(tmp_path, capsys):
    import json

    base = run(tmp_path, "base", MP3)
    new = run(tmp_path, "new", MP3)
    meta = json.loads((new / "run.json").read_text())
    meta["config"]["precision"] = "bf16"
    (new / "run.json").write_text(json.dumps(meta))
    assert bench_main(["check", str(new), "--baseline", str(base), "--max-eer-increase", "0.5"]) == 0
    assert "the runs differ in precision: bf16 (new) vs fp32 (baseline)" in capsys.readouterr().out
    assert bench_main(["check", str(base), "--baseline", str(base), "--max-eer-increase", "0.5"]) == 0
    assert "differ in precision" not in capsys.readouterr().out
