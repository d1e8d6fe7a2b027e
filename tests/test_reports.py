"""Reports: tables, mCE arithmetic, plots, `bench check` and `bench compare` on synthetic run folders."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from bench.cli import main as bench_main
from reports import plots as P
from reports import render as R
from reports import tables as T
from reports.check import check_runs
from reports.compare import compare_runs
from reports.load import RunError, load_run
from reports.pairing import paired_diff_ci
from reports.synthetic import make_run

FAMS = {"mp3": ("perturbation", (1, 2, 3)), "pgd-linf": ("attack", (1, 2))}


def _results(rows):
    """A results table from (model, family, severity, eer[, kind, params]) rows."""
    out = []
    for r in rows:
        m, f, s, e = r[:4]
        out.append({"model": m, "suite": "t", "family": f, "severity": s, "n_bonafide": 10, "n_spoof": 10,
                    "eer": e, "eer_ci_low": e - 0.01, "eer_ci_high": e + 0.02, "auc": 0.9, "eer_threshold": 0.0,
                    "kind": r[4] if len(r) > 4 else "perturbation", "params": r[5] if len(r) > 5 else "{}"})
    return pd.DataFrame(out)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "base", fams=FAMS, n_boot=30, seed=1)


@pytest.fixture(scope="module")
def worse_dir(tmp_path_factory):
    """The same utterances and noise as run_dir, but model-a separates the classes much worse."""
    return make_run(tmp_path_factory.mktemp("runs") / "worse", fams=FAMS, n_boot=30, seed=1,
                    separation={"model-a": 1.0})


# ---------------------------------------------------------------- tables
def test_eer_grid_places_values_in_model_rows_and_severity_columns():
    rows = [("A", "clean", 0, 0.10), ("B", "clean", 0, 0.20)]
    rows += [(m, "mp3", s, round(0.1 * (i + 1) + 0.01 * s, 4)) for i, m in enumerate("AB") for s in (2, 1, 3)]
    rows += [("A", "opus", 1, 0.5)]
    res = _results(rows)
    g = T.eer_grid(res, "mp3")
    assert list(g.columns) == ["clean", "s1", "s2", "s3"]
    assert list(g.index) == ["A", "B"]
    assert g.at["A", "clean"] == pytest.approx(0.10) and g.at["B", "clean"] == pytest.approx(0.20)
    assert g.at["A", "s3"] == pytest.approx(0.13) and g.at["B", "s1"] == pytest.approx(0.21)
    opus = T.eer_grid(res, "opus")
    assert list(opus.columns) == ["clean", "s1"] and np.isnan(opus.at["B", "s1"])
    t = T.eer_table(res, "mp3")
    assert t.rows[1][0] == ("B", "B")
    assert t.rows[1][3][0] == "22.00 [21.00, 24.00]" and t.rows[1][3][1] == pytest.approx(0.22)
    assert T.eer_table(res, "opus").rows[1][2] == ("–", None)


def test_markdown_and_latex_escape_and_hold_cells():
    res = _results([("m_1 & 50%", "clean", 0, 0.1), ("m_1 & 50%", "mp3", 1, 0.25)])
    t = T.eer_table(res, "mp3")
    md = R.to_markdown(t)
    assert "| m_1 & 50% | 10.00 [9.00, 12.00] | 25.00 [24.00, 27.00] |" in md
    tex = R.to_latex(t)
    # a family's table is set with its levels as rows, the CI on the EER's line in a smaller font
    assert r"level & m\_1 \& 50\% \\" in tex and r"clean & 10.00 {\scriptsize [9.00, 12.00]} \\" in tex
    assert r"25.00 {\scriptsize [24.00, 27.00]} \\" in tex and r"\shortstack" not in tex
    assert "|" not in R.md_escape("a|b").replace("\\|", "")


def test_level_caption_and_budget_labels():
    res = _results([("A", "clean", 0, 0.1),
                    ("A", "pgd", 1, 0.2, "attack", json.dumps({"snr_db": 40.0, "steps": 10})),
                    ("A", "pgd", 2, 0.3, "attack", json.dumps({"snr_db": 30.0, "steps": 10}))])
    assert T.level_caption(res, "pgd") == ("s1 = ε = 40 dB SNR (snr_db=40.0, steps=10); "
                                           "s2 = ε = 30 dB SNR (snr_db=30.0, steps=10)")
    assert T.eer_table(res, "pgd").columns == ["model", "clean", "ε = 40 dB SNR", "ε = 30 dB SNR"]
    ticks, axis = P.budget_labels(res, "pgd")
    assert ticks == ["clean", "40 dB", "30 dB"] and "SNR" in axis


def test_degradation_and_mce_arithmetic():
    res = _results([("A", "clean", 0, 0.10), ("A", "f", 1, 0.20), ("A", "f", 2, 0.30),
                    ("B", "clean", 0, 0.05), ("B", "f", 1, 0.30), ("B", "f", 2, 0.50),
                    ("A", "g", 1, 0.10), ("B", "g", 1, 0.20)])
    d = T.degradation(res).set_index(["model", "family"])
    assert d.loc[("B", "f"), "ce"] == pytest.approx(0.8 / 0.5)
    assert d.loc[("B", "f"), "rel_ce"] == pytest.approx((0.25 + 0.45) / (0.10 + 0.20))
    assert d.loc[("B", "f"), "mean_increase"] == pytest.approx(0.40 - 0.05)
    assert d.loc[("A", "f"), "ce"] == pytest.approx(1.0)
    assert d.loc[("B", "g"), "ce"] == pytest.approx(2.0)
    assert np.isnan(d.loc[("B", "g"), "rel_ce"])      # the reference does not degrade on g
    w = T.mce(T.degradation(res), "ce")
    assert w.at["B", "mean"] == pytest.approx((1.6 + 2.0) / 2)
    d2 = T.degradation(res, reference="B").set_index(["model", "family"])
    assert d2.loc[("A", "f"), "ce"] == pytest.approx(0.5 / 0.8)
    with pytest.raises(ValueError, match="reference model 'C'"):
        T.degradation(res, reference="C")


# ---------------------------------------------------------------- plots
def test_eer_curve_has_one_line_per_model_in_the_family_unit(run_dir):
    run = load_run(run_dir)
    fig = P.fig_eer_curve(run.results, "mp3")
    clean_ax, ax = fig.axes
    assert len(ax.get_lines()) == len(run.models) == 2
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:2] == run.models and "95% bootstrap CI" in legend[2]
    grid = T.eer_grid(run.results, "mp3")
    for line, m in zip(ax.get_lines(), run.models):
        assert np.allclose(line.get_ydata(), 100 * grid.loc[m].to_numpy()[1:])
    # synthetic mp3 levels are 64, 32, 16 kb/s: a log bitrate axis, harsher (lower) to the right
    assert ax.get_xscale() == "log" and ax.xaxis_inverted()
    assert list(ax.get_lines()[0].get_xdata()) == [64.0, 32.0, 16.0]
    assert "kb/s" in ax.get_xlabel() and clean_ax.get_ylabel() == "EER (%)"
    assert [t.get_text() for t in clean_ax.get_xticklabels()] == ["clean"]
    att = P.fig_eer_curve(run.results, "pgd-linf").axes[1]
    assert list(att.get_lines()[0].get_xdata()) == [50.0, 40.0] and "SNR" in att.get_xlabel()
    assert "budget" in att.get_xlabel()


def test_every_figure_is_written_as_png_svg_with_text_and_pdf(run_dir, tmp_path):
    run = load_run(run_dir)
    data = P.save_figure(P.fig_eer_curve(run.results, "mp3"), tmp_path / "eer")
    assert data["png"][:8] == b"\x89PNG\r\n\x1a\n" and data["pdf"][:5] == b"%PDF-"
    svg = (tmp_path / "eer.svg").read_text()
    assert "EER against bitrate: mp3" in svg and "<text" in svg      # svg.fonttype none: text stays text
    assert (tmp_path / "eer.pdf").read_bytes() == data["pdf"]


def test_overview_is_one_block_per_family_with_its_levels_in_units(run_dir):
    run = load_run(run_dir)
    fig = P.fig_overview(run.results)
    panels = [a for a in fig.axes if a.images]
    assert [a.get_title(loc="left") for a in panels] == ["mp3", "pgd-linf"]
    mp3 = panels[0]
    assert [t.get_text() for t in mp3.get_yticklabels()] == run.models
    assert [t.get_text() for t in mp3.get_xticklabels()] == ["clean", "64 kb/s", "32 kb/s", "16 kb/s"]
    data = mp3.images[0].get_array()
    assert data.shape == (2, 4)                                # models x clean, 3 levels
    idx = run.results.set_index(["model", "family", "severity"])["eer"]
    assert data[0, 3] == pytest.approx(100 * idx[("model-a", "mp3", 3)])
    texts = [t.get_text() for t in mp3.texts]
    assert f"{100 * idx[('model-a', 'mp3', 3)]:.1f}" in texts
    pgd = [t.get_text() for t in panels[1].get_xticklabels()]
    assert pgd[0] == "clean" and "SNR" in pgd[1] and "s1" not in pgd


def test_det_histogram_and_heatmap_figures(run_dir):
    run = load_run(run_dir)
    det = P.fig_det(run.scores, run.results, "mp3")
    assert len(det.axes) == 4                                   # clean, s1, s2, s3
    assert [a.get_title() for a in det.axes] == ["clean", "mp3 64 kb/s", "mp3 32 kb/s", "mp3 16 kb/s"]
    for a in det.axes:
        assert len([ln for ln in a.get_lines() if not ln.get_label().startswith("_")]) == 2
    hist = P.fig_histograms(run.scores, run.results, "mp3")
    assert len(hist.axes) == 2
    worst = P.worst_severity(run.results, "model-a", "mp3")
    sub = run.results[(run.results["model"] == "model-a") & (run.results["family"] == "mp3")]
    assert sub.set_index("severity").at[worst, "eer"] == sub["eer"].max()
    from reports.load import level_labels

    title = hist.axes[0].get_title()
    assert level_labels(run.results, "mp3")[worst] in title and f"s{worst}" not in title   # named in its unit
    heat = P.fig_heatmap(run.results)
    data = heat.axes[0].images[0].get_array()
    mat = P.heatmap_matrix(run.results)
    assert data.shape == (2, 6) and list(mat.columns)[:2] == ["clean", "mp3 s1"]
    assert np.allclose(np.ma.filled(data, np.nan), 100 * mat.to_numpy(), equal_nan=True)


def test_safe_label_keeps_dollar_and_underscore_names_visible():
    assert P.safe_label("$x$") == r"\$x\$"
    assert not P.safe_label("_hidden").startswith("_")


# ---------------------------------------------------------------- report files and CLI
def test_bench_report_writes_tables_plots_and_page(run_dir, tmp_path, capsys):
    out = tmp_path / "rep"
    assert bench_main(["report", str(run_dir), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.html")
    md = (out / "report.md").read_text()
    assert "### EER (%) against severity: mp3" in md and "a smoke test, not a benchmark" in md
    assert "min t-DCF is not reported" in md
    assert r"\begin{tabular}" in (out / "report.tex").read_text()
    deg = pd.read_csv(out / "degradation.csv")
    assert set(deg["family"]) == {"mp3", "pgd-linf"} and set(deg["model"]) == {"model-a", "model-b"}
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == sorted(["overview.png", "eer-mp3.png", "det-mp3.png", "hist-mp3.png", "eer-pgd-linf.png",
                           "det-pgd-linf.png", "hist-pgd-linf.png"])
    for p in pngs:
        assert (out / "plots" / p.replace(".png", ".svg")).is_file() and (out / "plots" / p.replace(".png", ".pdf")).is_file()
    assert "![EER against bitrate: mp3](plots/eer-mp3.png)" in md or "](plots/eer-mp3.png)" in md
    assert "| model | clean | 64 kb/s | 32 kb/s | 16 kb/s |" in md
    assert all((out / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_every_subcommand_has_help(capsys):
    for name in ("report", "compare", "check"):
        with pytest.raises(SystemExit) as e:
            bench_main([name, "--help"])
        assert e.value.code == 0
        assert "usage: bench " + name in capsys.readouterr().out


def test_min_tdcf_table_when_the_run_has_asv_scores(run_dir, tmp_path):
    from bench.metrics import min_tdcf
    from reports.report import NO_TDCF, build_report

    run = tmp_path / "asv"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("report"))
    rng = np.random.default_rng(5)
    asv = pd.DataFrame({"label": ["target"] * 40 + ["nontarget"] * 40 + ["spoof"] * 40,
                        "score": np.concatenate([rng.normal(3, 1, 40), rng.normal(-3, 1, 40), rng.normal(1, 1, 40)])})
    asv.to_csv(run / "asv_scores.csv", index=False)
    rep = build_report(run, plots=False)
    assert NO_TDCF not in rep.notes
    tab = next(t for t in rep.tables if t.key == "tdcf")
    assert tab.columns == ["condition", "model-a", "model-b"] and tab.rows[0][0][0] == "clean"
    sc = load_run(run).scores
    g = sc[(sc["model"] == "model-b") & (sc["family"] == "mp3") & (sc["severity"] == 2)]
    want = min_tdcf(g.loc[g["label"] == "bonafide", "score"], g.loc[g["label"] == "spoof", "score"],
                    *(asv.loc[asv["label"] == k, "score"] for k in ("target", "nontarget", "spoof")))
    row = next(r for r in tab.rows if r[0][0] == "mp3 32 kb/s")          # rows named in units
    assert row[2][1] == pytest.approx(want)


# ---------------------------------------------------------------- check
def _copy_with(src, dst, change):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report"))
    res = pd.read_csv(dst / "results.csv")
    change(res)
    res.to_csv(dst / "results.csv", index=False)
    return dst


def test_check_passes_against_itself_and_fails_on_one_raised_condition(run_dir, tmp_path, capsys):
    assert bench_main(["check", str(run_dir), "--baseline", str(run_dir), "--max-eer-increase", "0"]) == 0
    assert capsys.readouterr().out.startswith("OK: 12 conditions checked")

    def raise_one(res):
        i = res.index[(res["model"] == "model-b") & (res["family"] == "mp3") & (res["severity"] == 2)][0]
        res.loc[i, "eer"] += 0.03
    new = _copy_with(run_dir, tmp_path / "new", raise_one)
    assert bench_main(["check", str(new), "--baseline", str(run_dir), "--max-eer-increase", "0.02"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: 1 of 12" in out and "model-b mp3 32 kb/s" in out and "(+3.00 points)" in out
    # the scores did not change, so the rise is not significant; both runs are named with digests and counts
    assert "1 condition over the limit, 0 significant at 95%" in out and "consider --significant or more data" in out
    assert f"baseline: {run_dir}: model-a (sha256 ffffffffffff)" in out and "70 utterances, 30 bona fide" in out
    assert bench_main(["check", str(new), "--baseline", str(run_dir), "--max-eer-increase", "0.04"]) == 0
    assert bench_main(["check", str(new), "--baseline", str(run_dir), "--max-eer-increase", "0.02",
                       "--exclude-families", "mp3"]) == 0
    d = check_runs(new, run_dir, 0.02).to_dict()
    assert d["n_over_limit"] == 1 and d["n_significant"] == 0
    assert d["inputs"]["new"]["n_utterances"] == 70 and d["inputs"]["baseline"]["models"][0]["sha256"] == "f" * 64
    res = check_runs(new, run_dir, 0.02, families="mp3")
    assert len(res.rows) == 6 and list(res.failed["severity"]) == [2]


def test_check_fails_a_condition_without_eer_and_prints_json(run_dir, tmp_path, capsys):
    new = _copy_with(run_dir, tmp_path / "nan", lambda r: r.__setitem__(
        "eer", r["eer"].where(~((r["family"] == "pgd-linf") & (r["severity"] == 1)))))
    assert bench_main(["check", str(new), "--baseline", str(run_dir), "--max-eer-increase", "0.5", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    bad = [c for c in doc["conditions"] if c["failed"]]
    assert doc["ok"] is False and {(c["family"], c["severity"]) for c in bad} == {("pgd-linf", 1)}
    assert all(c["reason"] == "no EER in the new run" and c["eer"] is None for c in bad)


def test_check_pairs_models_in_order_when_names_differ(run_dir, tmp_path):
    new = _copy_with(run_dir, tmp_path / "renamed",
                     lambda r: r.__setitem__("model", r["model"].map({"model-a": "new-a", "model-b": "new-b"})))
    res = check_runs(new, run_dir, 0.0)
    assert res.ok
    assert set(zip(res.rows["model"], res.rows["baseline_model"])) == {("new-a", "model-a"), ("new-b", "model-b")}
    assert any("paired in order" in n for n in res.notes)


def test_check_exit_2_on_unusable_inputs(run_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert bench_main(["check", str(tmp_path / "empty"), "--baseline", str(run_dir),
                       "--max-eer-increase", "0.01"]) == 2
    assert "results.csv does not exist" in capsys.readouterr().err
    other = make_run(tmp_path / "other", fams={"opus": ("perturbation", (1,))}, n_bonafide=8, n_spoof=8, n_boot=5)
    assert bench_main(["check", str(other), "--baseline", str(run_dir), "--max-eer-increase", "0.01",
                       "--families", "opus,mp3"]) == 2
    assert "not comparable: data" in capsys.readouterr().err   # other data: refused unless allowed
    assert bench_main(["check", str(other), "--baseline", str(run_dir), "--max-eer-increase", "0.01",
                       "--families", "opus,mp3", "--allow-data-change"]) == 2
    assert "no (family, severity) condition in common" in capsys.readouterr().err
    assert bench_main(["check", str(run_dir), "--baseline", str(run_dir), "--max-eer-increase", "5"]) == 2
    assert "0.01 = one EER point" in capsys.readouterr().err
    broken = _copy_with(run_dir, tmp_path / "pct", lambda r: r.__setitem__("eer", 100 * r["eer"]))
    with pytest.raises(RunError, match="must be a fraction in \\[0, 1\\]"):
        load_run(broken)
    (broken / "results.csv").write_text("model,family\na,clean\n")
    with pytest.raises(RunError, match=r"results.csv lacks column\(s\) \['severity', 'eer'\]"):
        load_run(broken)
    with pytest.raises(RunError, match="'nope' is in neither run"):
        check_runs(run_dir, run_dir, 0.01, families="nope")


# ---------------------------------------------------------------- compare
def test_paired_bootstrap_pairs_utterances():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"utt_id": [f"u{i}" for i in range(60)], "label": ["bonafide"] * 25 + ["spoof"] * 35,
                       "score": rng.normal(size=60)})
    assert paired_diff_ci(df, df.sample(frac=1, random_state=0), n_boot=200) == (0.0, 0.0)
    shifted = df.assign(score=df["score"] + np.where(df["label"] == "bonafide", 3.0, 0.0))
    lo, hi = paired_diff_ci(df, shifted, n_boot=200)
    assert hi < 0                                    # separating the classes lowers the EER
    assert paired_diff_ci(df, df.iloc[1:], n_boot=50) is None


def test_compare_marks_significant_differences_and_writes_pages(run_dir, worse_dir, tmp_path, capsys):
    cmp = compare_runs([run_dir, worse_dir], n_boot=200)
    t = cmp.table.set_index(["label", "family", "severity"])
    assert cmp.labels == ["model-a@base", "model-b@base", "model-a@worse", "model-b@worse"]
    b = t.loc[("model-b@worse", "mp3", 1)]
    assert b["diff"] == 0 and not b["significant"] and b["method"] == "paired"
    a = t.loc[("model-a@worse", "clean", 0)]
    assert a["reference"] == "model-a@base" and a["diff"] > 0 and a["significant"]
    assert a["diff_ci_low"] > 0
    from reports.compare import summary
    from reports.load import condition_name

    names = {condition_name(load_run(run_dir).results, f, s) for f, s in load_run(run_dir).conditions()}
    at = summary(cmp)["max_at"]
    assert len(at) == 2 and set(at) <= names and not any("@" in x for x in at)   # "largest difference at" in units
    out = tmp_path / "cmp"
    assert bench_main(["compare", str(run_dir), str(worse_dir), "--out", str(out), "--n-boot", "50",
                       "--no-plots"]) == 0
    md = (out / "compare.md").read_text()
    assert "| model-a@worse |" in md and "*)" in md
    assert (out / "compare.html").is_file() and (out / "compare.csv").is_file()


def test_compare_refuses_differing_conditions_unless_forced(run_dir, tmp_path, capsys):
    other = make_run(tmp_path / "fewer", fams={"mp3": ("perturbation", (1, 2))}, n_boot=10, seed=1)
    assert bench_main(["compare", str(run_dir), str(other), "--out", str(tmp_path / "c1")]) == 2
    err = capsys.readouterr().err
    assert "conditions only in base: mp3@3, pgd-linf@1, pgd-linf@2" in err and "--force" in err
    assert not (tmp_path / "c1").exists()
    assert bench_main(["compare", str(run_dir), str(other), "--out", str(tmp_path / "c2"), "--force",
                       "--n-boot", "20", "--no-plots"]) == 0
    assert "compared with --force although conditions only in base" in capsys.readouterr().err
    cmp_csv = pd.read_csv(tmp_path / "c2" / "compare.csv")
    assert set(zip(cmp_csv["family"], cmp_csv["severity"])) == {("clean", 0), ("mp3", 1), ("mp3", 2)}
    assert "Compared with --force" in (tmp_path / "c2" / "compare.md").read_text()
