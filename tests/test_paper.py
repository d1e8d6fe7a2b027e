"""Results a paper can use: level labels in physical units, breakdowns per spoof generator, the run's
closing summary and progress line, LaTeX that compiles, and the newcomer's papercuts (did-you-mean,
lossless `bench perturb`, `bench weights --from`, no empty run folder, an unguarded script)."""
from __future__ import annotations

import inspect
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.suites.labels import family_axis, level_label, level_labels
from bench.run.results import by_attack_table, condition_labels
from reports.synthetic import conditions_for, make_run, make_scores

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_WEIGHTS_DIR") or ROOT.parent / "shared" / "weights")


def bench(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


# ---------------------------------------------------------------- labels
def test_levels_are_labelled_by_parameter_name_not_by_family():
    # a made-up family: its labels come from the parameters' names alone
    lv = {1: {"bitrate": 32000, "mode": "x"}, 2: {"bitrate": 16000, "mode": "x"}, 3: {"bitrate": 8000, "mode": "x"}}
    assert level_labels(lv) == {1: "32 kb/s", 2: "16 kb/s", 3: "8 kb/s"}
    ax = family_axis(lv)
    assert ax.values == {1: 32.0, 2: 16.0, 3: 8.0} and ax.log and ax.reversed and "kb/s" in ax.title
    noise = {1: {"snr_db": 20.0}, 2: {"snr_db": 10.0}}
    assert level_labels(noise) == {1: "20 dB SNR", 2: "10 dB SNR"}
    assert not family_axis(noise).log
    assert level_labels({1: {"rt60": 0.6, "dims_min": [3, 3, 2]}}) == {1: "RT60 0.6 s"}
    assert level_labels({1: {"snr_db": 40.0, "eps": None, "steps": 10}}, "attack") == {1: "ε = 40 dB SNR"}
    # only what changes across a ladder is shown; a lone level shows all it has
    g711 = {1: {"bitrate": 64000, "input_level_dbov": -26.0}, 2: {"bitrate": 64000, "input_level_dbov": -46.0}}
    assert level_labels(g711) == {1: "-26 dBov", 2: "-46 dBov"}
    assert level_label({"bitrate": 64000, "input_level_dbov": -26.0}) == "64 kb/s, -26 dBov"
    assert level_label({"bitrate": 64000, "passes": 1}) == "64 kb/s"          # a neutral value says nothing
    chain = {s: {"steps": [{"family": "room", "params": {"rt60": r}}, {"family": "mp3", "params": {"bitrate": b}}]}
             for s, r, b in ((1, 0.2, 64000), (2, 0.7, 16000))}
    assert level_labels(chain) == {1: "RT60 0.2 s → 64 kb/s", 2: "RT60 0.7 s → 16 kb/s"}
    assert family_axis(chain) is None
    assert level_labels({1: {"colour": "red"}, 2: {"colour": "blue"}}) == {1: "colour=red", 2: "colour=blue"}


def test_results_carry_params_and_labels_and_by_attack_has_one_row_per_generator():
    import numpy as np

    conds = conditions_for({"mp3": ("perturbation", (1, 2)), "pgd-linf": ("attack", (1,))})
    assert condition_labels(conds)[("mp3", 2)] == "32 kb/s"
    scores = make_scores(["m"], conds, 30, 45, np.random.default_rng(0))
    from bench.run.results import results_table

    res = results_table(scores, "s", conds, n_boot=20)
    row = res[(res["family"] == "mp3") & (res["severity"] == 1)].iloc[0]
    assert json.loads(row["params"]) == {"bitrate": 64000} and row["level_label"] == "64 kb/s"
    assert res.loc[res["family"] == "pgd-linf", "level_label"].tolist() == ["ε = 50 dB SNR"]
    ba = by_attack_table(scores, "s", conds, n_boot=20)
    assert len(ba) == 4 * 3 and set(ba["attack"]) == {"A01", "A02", "A03"}
    r = ba[(ba["family"] == "mp3") & (ba["severity"] == 1) & (ba["attack"] == "A03")].iloc[0]
    assert r["n_bonafide"] == 30 and r["n_spoof"] == 15 and r["eer_ci_low"] <= r["eer"] <= r["eer_ci_high"]
    # all bona fide against that generator's spoofs
    from bench.metrics import eer

    g = scores[(scores["family"] == "mp3") & (scores["severity"] == 1)]
    want, _ = eer(g.loc[g["label"] == "bonafide", "score"], g.loc[g["attack"] == "A03", "score"])
    assert r["eer"] == pytest.approx(want)


def test_report_shows_generators_per_model_and_speakers_when_asked(tmp_path):
    from bench.metrics import eer
    from reports.load import RunError
    from reports.report import build_report

    run = make_run(tmp_path / "r", fams={"mp3": ("perturbation", (1, 2))}, n_bonafide=24, n_spoof=36, n_boot=20)
    rep = build_report(run, by=("speaker",))
    keys = [t.key for t in rep.tables]
    assert "gen-model-a" in keys and "by-speaker-model-a" in keys
    gen = next(t for t in rep.tables if t.key == "gen-model-a")
    assert gen.columns == ["condition", "A01 (n=12)", "A02 (n=12)", "A03 (n=12)"]
    assert [r[0][0] for r in gen.rows] == ["clean", "mp3 64 kb/s", "mp3 32 kb/s"]
    by = pd.read_csv(rep.out / "by_speaker.csv", keep_default_na=False)
    sc = pd.read_csv(run / "scores.csv", keep_default_na=False)
    g = sc[(sc["model"] == "model-b") & (sc["family"] == "mp3") & (sc["severity"] == 2) & (sc["speaker"] == "spk1")]
    want, _ = eer(g.loc[g["label"] == "bonafide", "score"], g.loc[g["label"] == "spoof", "score"])
    got = by[(by["model"] == "model-b") & (by["family"] == "mp3") & (by["severity"] == 2) & (by["speaker"] == "spk1")]
    assert got["eer"].item() == pytest.approx(want)
    page = (rep.out / "report.html").read_text()
    assert "EER (%) per spoof generator: model-a" in page and "EER (%) per speaker: model-b" in page
    with pytest.raises(RunError, match="no 'language' column"):
        build_report(run, by=("language",))


# ---------------------------------------------------------------- summary and progress
class _Res:
    def __init__(self, results, out="runs/x"):
        self.results, self.out, self.problems = results, Path(out), pd.DataFrame()


def test_summary_has_ci_cells_in_severity_order_a_small_class_warning_and_the_next_step(tmp_path):
    from bench.commands.summary import render, sections

    run = make_run(tmp_path / "r", models=("m",), fams={"mp3": ("perturbation", (3, 1, 2))}, n_bonafide=20,
                   n_spoof=25, n_boot=20)
    res = _Res(pd.read_csv(run / "results.csv", keep_default_na=False), out=run)
    table = sections(res)[0]
    assert table.columns == ["family", "clean", "s1", "s2", "s3"]
    row = table.rows[0]
    r1 = res.results[(res.results["family"] == "mp3") & (res.results["severity"] == 1)].iloc[0]
    assert row[2] == f"{100 * r1['eer']:.1f}\n[{100 * r1['eer_ci_low']:.0f}–{100 * r1['eer_ci_high']:.0f}]\n64 kb/s"
    out, err = io.StringIO(), io.StringIO()
    render(res, {"data_name": "demo", "demo": True}, out=out, err=err)
    assert "16 kb/s" in out.getvalue() and "smoke test" in out.getvalue()
    assert "CIs are wide; do not cite" in err.getvalue()
    assert err.getvalue().strip().splitlines()[-1] == f"next: bench report {run}"


def test_progress_is_one_line_of_80_columns_with_log_lines_above_it():
    from rich.console import Console

    from bench.run.runner import _Progress

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=80, color_system=None)
    root = logging.getLogger()
    handler = logging.StreamHandler(console.file)
    root.addHandler(handler)
    try:
        seen = []
        with _Progress(True, 1000, callback=lambda d, t, c: seen.append((d, t, c)), console=console) as bar:
            bar.describe("room+pink-noise+mp3@5")
            bar.advance(10)
            logging.getLogger("bench.test").warning("a warning while the bar is shown")
            bar.advance(10)
    finally:
        root.removeHandler(handler)
    assert seen == [(10, 1000, "room+pink-noise+mp3@5"), (20, 1000, "room+pink-noise+mp3@5")]
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", buf.getvalue()).replace("\r", "\n")
    lines = [ln for ln in text.split("\n") if ln.strip()]
    assert max(len(ln) for ln in lines) <= 80
    warn = [ln for ln in lines if "a warning while the bar is shown" in ln]
    assert warn and all("/1000" not in ln for ln in warn)          # never on the bar's line


# ---------------------------------------------------------------- LaTeX
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is absent (apt-get install -y "
                    "texlive-latex-base texlive-latex-recommended)")
def test_report_tex_compiles_with_pdflatex_without_overfull_boxes(tmp_path):
    from reports.report import build_report

    fams = {"mp3": ("perturbation", (1, 2, 3, 4, 5)), "room+pink-noise+mp3": ("chain", (1, 2, 3, 4, 5)),
            "pgd-linf": ("attack", (1, 2, 3))}
    run = make_run(tmp_path / "run", models=("aasist", "aasist-l", "a_very_long_model_name&co"), fams=fams,
                   n_bonafide=20, n_spoof=30, n_boot=20)
    rep = build_report(run)
    tex = (rep.out / "report.tex").read_text()
    assert r"\toprule" in tex and r"\includegraphics" in tex and "plots/eer-mp3.pdf" in tex
    p = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report.tex"], cwd=rep.out,
                       capture_output=True, text=True, timeout=120)
    log = (rep.out / "report.log").read_text(errors="replace")
    assert p.returncode == 0, log[-3000:]
    assert "Overfull \\hbox" not in log, [ln for ln in log.splitlines() if "Overfull" in ln]
    assert (rep.out / "report.pdf").stat().st_size > 10_000


# ---------------------------------------------------------------- first hour
def test_misspelt_names_get_suggestions():
    from foundation.registry import UnknownName
    from perturbations import PERTURBATIONS

    with pytest.raises(UnknownName, match="did you mean 'pink-noise'"):
        PERTURBATIONS.get("pinknoise")
    from attacks import ATTACKS

    with pytest.raises(UnknownName, match="did you mean 'pgd-linf'"):
        ATTACKS.get("pgd_linf")
    p = bench("run", "--suite", "compresion", "--limit", "2")
    assert p.returncode == 1 and "did you mean 'compression'?" in p.stderr


def test_perturb_refuses_a_lossy_output_and_prints_one_readable_line(tmp_path):
    from bench.data import load_dataset

    src = next(u.path for u in load_dataset("demo").utterances if u.label == "bonafide")
    p = bench("perturb", "--family", "mp3", "--severity", "4", str(src), str(tmp_path / "out.mp3"))
    assert p.returncode == 1 and "lossy" in p.stderr and "out.wav" in p.stderr
    assert not (tmp_path / "out.mp3").exists()
    p = bench("perturb", "--family", "mp3", "--severity", "4", str(src), str(tmp_path / "out.flac"))
    assert p.returncode == 0, p.stderr
    line = p.stdout.strip()
    assert "\n" not in line and line.startswith(f"wrote {tmp_path / 'out.flac'}: mp3 severity 4 (16 kb/s)")


def test_weights_from_a_folder_skips_cards_without_a_file_there(tmp_path):
    env = {**os.environ, "BENCH_CACHE_DIR": str(tmp_path / "cache")}
    p = subprocess.run([sys.executable, "-m", "bench.cli", "weights", "--from", str(SHARED), "--json"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = {r["model"]: r["status"] for r in json.loads(p.stdout)}
    assert rows["aasist"] == "copied" and rows["ssl-aasist"] == "skipped"
    assert "ssl-aasist: skipped" in p.stderr


def test_api_run_is_documented_and_safe_in_an_unguarded_script(tmp_path):
    from bench import api

    from dataclasses import fields

    from bench.run.runner import RunConfig

    params = inspect.signature(api.run).parameters
    assert {"models", "data", "limit", "out", "workers", "progress"} <= set(params)
    assert {f.name for f in fields(RunConfig)} <= set(params)       # every option of `bench run` is a keyword
    assert "progress(done, total, condition)" in api.run.__doc__
    suite = tmp_path / "s.yaml"
    suite.write_text("name: tiny\nconditions:\n  - {family: mp3, severities: [1]}\n")
    script = tmp_path / "script.py"
    script.write_text(
        "from bench import api\n"
        "seen = []\n"
        f"res = api.run({str(suite)!r}, models='aasist-l', limit=4, workers=1, out={str(tmp_path / 'run')!r},\n"
        "              progress=lambda done, total, cond: seen.append(done))\n"
        "print('EER', len(res.results), seen[-1])\n")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip() == "EER 2 8"                          # clean + mp3@1; 4 clips x 2 conditions
    run = tmp_path / "run"
    assert not (run / "run.lock").exists()                         # a finished run leaves no lock
    sc = pd.read_csv(run / "scores.csv", dtype=str, keep_default_na=False)
    assert {"speaker", "attack", "language"} <= set(sc.columns) and (sc["speaker"] != "").all()
    spoof_gen = set(sc.loc[sc["label"] == "spoof", "attack"])
    ba = pd.read_csv(run / "results_by_attack.csv", keep_default_na=False)
    assert set(ba["attack"]) == spoof_gen and set(ba["family"]) == {"clean", "mp3"}
    res = pd.read_csv(run / "results.csv", keep_default_na=False)
    assert res.set_index("family").at["mp3", "level_label"] == "64 kb/s"
    assert json.loads(res.set_index("family").at["mp3", "params"])["bitrate"] == 64000


def test_a_run_that_fails_at_its_start_leaves_no_folder(tmp_path):
    out = tmp_path / "run"
    p = bench("run", "--suite", "clean", "--model", "aasit", "--limit", "2", "--out", str(out))
    assert p.returncode == 1 and "did you mean 'aasist'" in p.stderr
    assert not out.exists()
    out.mkdir()
    (out / "mine.txt").write_text("kept")
    p = bench("run", "--suite", "clean", "--model", "aasit", "--limit", "2", "--out", str(out))
    assert p.returncode == 1 and (out / "mine.txt").is_file()     # a folder it did not create is left alone


def test_a_custom_ladder_shows_its_units_in_results_report_and_axes(tmp_path):
    """Issue 15's "Done when": a suite with its own ladders (`levels:`) gives kb/s and dB in results.csv, in the
    report's tables and on its plots' x axes."""
    from bench import api
    from reports.load import load_run
    from reports.plots import x_axis
    from reports.report import build_report

    suite = tmp_path / "ladder.yaml"
    suite.write_text("name: ladder\nconditions:\n"
                     "  - {family: mp3, levels: [{bitrate: 32000}, {bitrate: 16000}, {bitrate: 8000}]}\n"
                     "  - {name: hiss, family: white-noise, levels: [{snr_db: 25}, {snr_db: 12}]}\n")
    res = api.run(str(suite), models=("aasist-l",), limit=4, device="cpu", workers=1, n_boot=20,
                  out=str(tmp_path / "run"), progress=False)
    r = res.results.set_index(["family", "severity"])
    assert [r.loc[("mp3", s), "level_label"] for s in (1, 2, 3)] == ["32 kb/s", "16 kb/s", "8 kb/s"]
    assert [r.loc[("hiss", s), "level_label"] for s in (1, 2)] == ["25 dB SNR", "12 dB SNR"]
    assert json.loads(r.loc[("mp3", 2), "params"])["bitrate"] == 16000
    run = load_run(tmp_path / "run")
    mp3, hiss = x_axis(run.results, "mp3"), x_axis(run.results, "hiss")
    assert "kb/s" in mp3.title and mp3.values == {1: 32.0, 2: 16.0, 3: 8.0} and mp3.log
    assert "dB" in hiss.title and hiss.values == {1: 25.0, 2: 12.0}
    rep = build_report(tmp_path / "run")
    md = (rep.out / "report.md").read_text()
    assert "16 kb/s" in md and "12 dB SNR" in md
    svgs = sorted(p.name for p in (rep.out / "plots").glob("*.svg"))
    assert any("mp3" in n for n in svgs) and any("hiss" in n for n in svgs)
    assert "kb/s" in next(p for p in (rep.out / "plots").glob("*mp3*.svg")).read_text()


# ---------------------------------------------------------------- figures and tables for a paper
FIG_FAMS = {"mp3": ("perturbation", (1, 2, 3, 4, 5)), "pink-noise": ("perturbation", (1, 2, 3, 4, 5)),
            "room+pink-noise+mp3": ("chain", (1, 2, 3, 4, 5)), "pgd-linf": ("attack", (1, 2, 3, 4, 5))}


@pytest.fixture(scope="module")
def fig_run(tmp_path_factory):
    from reports.load import load_run

    folder = make_run(tmp_path_factory.mktemp("figs") / "run", models=("aasist", "a_very_long_model_name&co"),
                      fams=FIG_FAMS, n_bonafide=16, n_spoof=20, n_boot=20, quality=True)
    return load_run(folder)


def _figures(run, style):
    from reports import plots as P
    from reports.plots_quality import fig_eer_vs_pesq

    res, sc = run.results, run.scores
    figs = {"overview": P.fig_overview(res, style=style), "heatmap": P.fig_heatmap(res, style=style),
            "eer-vs-pesq": fig_eer_vs_pesq(res, style=style),
            "det": P.fig_det(sc, res, "room+pink-noise+mp3", style=style),
            "hist": P.fig_histograms(sc, res, "mp3", style=style)}
    figs.update({f"eer-{f}": P.fig_eer_curve(res, f, style=style) for f in FIG_FAMS})
    return figs


def _legends(fig):
    return list(fig.legends) + [a.get_legend() for a in fig.axes if a.get_legend() is not None]


def test_every_paper_figure_fits_one_column_with_text_of_6_pt_inside_it(fig_run):
    """Issue "Every figure and table printable", item 5: at 8.5 cm wide no text is under 6 pt; no tick or cell
    label leaves the figure or its axes (renderer bounding boxes); tick labels do not overlap; figures with
    several series have a legend, never placed by loc='best'."""
    from reports.figure import COLUMN_IN, layout_problems

    figs = _figures(fig_run, "paper")
    for name, fig in figs.items():
        assert fig.get_figwidth() <= COLUMN_IN + 1e-9, name
        assert layout_problems(fig, printed_width_in=COLUMN_IN) == [], name
        if name not in ("overview", "heatmap"):
            assert _legends(fig), f"{name} has no legend"
        assert all(leg._loc != 0 for leg in _legends(fig)), f"{name}: a legend placed by loc='best'"
    texts = [t.get_fontsize() for f in figs.values() for t in f.findobj(lambda a: hasattr(a, "get_fontsize"))]
    assert min(texts) >= 6.0


def test_screen_figures_keep_their_text_inside_too(fig_run):
    from reports.figure import layout_problems

    for name, fig in _figures(fig_run, "screen").items():
        assert fig.get_figwidth() <= 13.0 and layout_problems(fig) == [], name


def test_layout_check_sees_text_outside_small_fonts_and_overlapping_ticks():
    from reports.figure import PAPER, layout_problems, new_figure

    fig = new_figure(6.0, 3.0, PAPER)        # a paper figure is at most one column wide
    assert fig.get_figwidth() == PAPER.width
    ax = fig.add_subplot()
    ax.text(1.4, 0.5, "outside the axes", transform=ax.transAxes)
    ax.set_xticks([0, 0.01], ["a long tick label", "another long one"])
    ax.set_title("tiny", fontsize=4)
    found = "\n".join(layout_problems(fig, printed_width_in=PAPER.width))
    assert "'outside the axes' reaches outside its axes" in found
    assert "'tiny' is 4.0 pt" in found and "overlap" in found


def test_eer_vs_pesq_has_one_colour_and_marker_per_family_a_legend_and_padded_axes(fig_run):
    """Item 3: no pile of per-point labels; each family one look, named in the legend; axes padded to the data."""
    from reports.plots_quality import fig_eer_vs_pesq

    res = fig_run.results
    fig = fig_eer_vs_pesq(res, style="paper")
    panels = [a for a in fig.axes if a.get_lines()]
    assert len(panels) == 2 and all(not a.texts for a in panels)       # one panel per model, no point labels
    fams = [f for f in dict.fromkeys(res["family"]) if f != "clean"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == fams + ["clean EER"]
    for ax, model in zip(panels, fig_run.models):
        series = [ln for ln in ax.get_lines() if ln.get_linestyle() != "--"]
        looks = {(ln.get_color(), ln.get_marker()) for ln in series}
        assert len(series) == len(looks) == len(fams)
        sub = res[(res["model"] == model) & res["pesq"].notna()]
        lo, hi = sorted(ax.get_xlim())
        assert ax.xaxis_inverted() and lo < sub["pesq"].min() and sub["pesq"].max() < hi
        span = sub["pesq"].max() - sub["pesq"].min()
        assert hi - lo < 1.3 * span                                     # padded to the data, not 1..4.7
        ylo, yhi = ax.get_ylim()
        assert ylo < 100 * sub["eer"].min() and 100 * sub["eer"].max() < yhi


def test_overview_rows_by_family_name_levels_in_units_and_fit_1400_px(fig_run):
    """Item 4: a block per family with its own level labels (never s1..s5), uncut, readable when the page
    shows the figure at its size (96 px per inch: text >= 12 px)."""
    from reports import plots as P
    from reports.figure import display_width

    fig = P.fig_overview(fig_run.results)
    blocks = [a for a in fig.axes if a.images]
    assert [a.get_title(loc="left") for a in blocks] == list(FIG_FAMS)
    for ax, fam in zip(blocks, FIG_FAMS):
        ticks = [t.get_text().replace("\n", " ") for t in ax.get_xticklabels()]
        want = ["clean"] + [lab for _, lab in sorted(level_labels_of(fig_run.results, fam).items())]
        assert ticks == want and not any(t.startswith("s") and t[1:].isdigit() for t in ticks)
        assert all("…" not in t and "..." not in t for t in ticks)
    assert display_width(fig) <= 1400 - 40
    assert min(t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_fontsize"))) * 96 / 72 >= 12


def level_labels_of(results, family):
    from reports.load import level_labels

    return level_labels(results, family)


def test_latex_family_tables_keep_one_table_ci_on_the_line_and_rows_in_units(fig_run):
    """Item 6: a 5-level family is one table (no "part 2" of one column), its CI in \\scriptsize on the EER's
    line (no \\shortstack), its rows the levels in units; a wide table's parts share the columns evenly and a
    long one continues by rows."""
    from reports import render as R
    from reports import tables as T
    from reports.operating import operating_tables

    res = fig_run.results
    tex = R.to_latex(T.eer_table(res, "pink-noise"))
    assert "part" not in tex and r"\shortstack" not in tex
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert [ln.split(" & ")[0] for ln in body] == ["clean", "25 dB SNR", "20 dB SNR", "15 dB SNR", "10 dB SNR",
                                                    "5 dB SNR"]
    assert all(ln.count(r"{\scriptsize [") == 2 for ln in body)
    wide = T.Table("wide", ["model"] + [f"column {i}" for i in range(7)],
                   [[(f"m{k}", f"m{k}")] + [("12.34 [10.00, 14.00]", 0.1234)] * 7 for k in range(10)])
    parts = R.to_latex(wide).split(r"\begin{table}")[1:]
    sizes = [p.split(r"\midrule")[0].count(" & ") for p in parts]
    assert len(parts) > 1 and max(sizes) - min(sizes) <= 1 and min(sizes) >= 2
    ops = R.to_latex(operating_tables(res, fig_run.models)[0])
    assert "pink-noise 20 dB SNR" in ops and "pink-noise s2" not in ops and r"\shortstack" not in ops
    for part in ops.split(r"\begin{table}")[1:]:
        rows = part.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
        assert sum(r.count(r"\\") for r in rows) <= R.MAX_LINES + len(rows)


def test_report_in_paper_style_writes_column_wide_pdfs_without_matplotlib_warnings(fig_run, tmp_path):
    """`bench report --style paper`: every PDF is 8.5 cm wide; no matplotlib warning leaks (loc='best' can be
    slow, collapsed layouts); degradation.csv carries rounded numbers."""
    import re
    import warnings

    from reports.cli import add_parser
    from reports.report import build_report

    fams = {"room+pink-noise+mp3": ("chain", (1, 3, 5))}
    run = make_run(tmp_path / "run", models=("aasist", "aasist-l"), fams=fams, n_bonafide=12, n_spoof=16, n_boot=10,
                   quality=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = build_report(run, out=tmp_path / "rep", style="paper")
    leaked = [str(w.message) for w in caught if "matplotlib" in w.filename or "loc=" in str(w.message)]
    assert leaked == []
    pdfs = sorted((tmp_path / "rep" / "plots").glob("*.pdf"))
    assert len(pdfs) == 2 + 3 * len(fams)
    column_pt = 8.5 / 2.54 * 72
    for pdf in pdfs:
        box = re.search(rb"MediaBox \[ *0 0 ([0-9.]+) ", pdf.read_bytes())
        assert box and float(box.group(1)) < column_pt + 0.5, pdf.name            # never wider than a column
        if pdf.name.startswith(("eer-", "det-", "hist-")):
            assert abs(float(box.group(1)) - column_pt) < 0.5, pdf.name
    deg = (tmp_path / "rep" / "degradation.csv").read_text()
    assert not re.search(r"\d\.\d{7,}", deg) and "mean_increase" in deg
    import argparse

    sub = argparse.ArgumentParser().add_subparsers()
    assert add_parser(sub, "report").parse_args([str(fig_run.path), "--style", "paper"]).style == "paper"
    assert add_parser(sub, "compare").parse_args(["a", "b"]).style == "screen"
    assert rep.files["report.tex"].is_file()


def test_terminal_tables_are_not_cut_in_a_log_file_and_wrap_on_a_narrow_terminal():
    """Item 7: written to a file or pipe a table keeps every column whole (no `archite…`); on a terminal of 60
    columns long cells wrap onto more lines instead of being cut."""
    from rich.console import Console

    from bench.terminal import table

    rows = [{"name": "aasist", "architecture": "an-architecture-with-a-long-name", "params": "297866",
             "training data": "ASVspoof 2019 LA train", "licence": "MIT", "s5": "4 kb/s"}]
    buf = io.StringIO()
    table(rows, list(rows[0]), "Detectors", file=buf)
    text = buf.getvalue()
    assert "an-architecture-with-a-long-name" in text and "…" not in text and "4 kb/s" in text
    assert max(len(line) for line in text.splitlines()) > 80
    narrow = io.StringIO()
    table(rows, list(rows[0]), out=Console(file=narrow, width=60, force_terminal=True, color_system=None))
    lines = narrow.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 60 and "…" not in narrow.getvalue()
    body = [line.split("│")[1:-1] for line in lines if line.startswith("│")]
    column = ["".join(r[i].strip() for r in body) for i in range(len(rows[0]))]
    assert column[1] == "an-architecture-with-a-long-name" and column[5] == "4 kb/s"


def test_a_breakdown_on_a_few_clips_says_why_it_is_empty_and_a_served_model_is_named(tmp_path):
    """Item 9: `--by speaker` on four clips explains its empty table; a model scored over HTTP is shown with the
    model and checkpoint digest its service reported (/health), not as a bare URL."""
    from reports.report import build_report

    url = "http://127.0.0.1:8000"
    health = {"status": "ok", "model": "aasist", "architecture": "aasist", "checkpoint_sha256": "ab" * 32}
    run = make_run(tmp_path / "r", models=(url,), fams={"mp3": ("perturbation", (1,))}, n_bonafide=2, n_spoof=2,
                   n_boot=10, model_meta={url: {"card": {"architecture": "remote", "extra": {"health": health}}}})
    rep = build_report(run, plots=False, by=("speaker",))
    why = [n for n in rep.notes if n.startswith("--by speaker:")]
    assert why and "no speaker has both bona fide and spoof clips" in why[0] and "spk0: 1 bona fide, 0 spoof" in why[0]
    table = next(t for t in rep.tables if t.key == f"by-speaker-{url}")
    assert all(c[0] == "–" for r in table.rows for c in r[1:]) and table.notes == [why[0][len("--by speaker: "):]]
    md = (rep.out / "report.md").read_text()
    assert f"**model {url}**: a service at this URL serving aasist (architecture aasist, checkpoint sha256 " \
           f"{'ab' * 8})" in md
    assert "score more clips per speaker" in (rep.out / "report.html").read_text()
