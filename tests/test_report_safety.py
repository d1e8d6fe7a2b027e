"""Names from a manifest or a model spec are text in the report: Markdown link and image syntax is escaped (no
`![t](http://...)` fetched, no `](javascript:` link), and the report's CSV downloads write spreadsheet formulas as
text, while the run's own scores.csv / results.csv keep every value exact."""
from __future__ import annotations

import pandas as pd

from reports.render import md_escape
from reports.safecsv import safe_cell
from reports.synthetic import make_run

EVIL_MD = "![t](http://203.0.113.9/x.png)"
EVIL_CSV = '=HYPERLINK("http://203.0.113.9","x")'


def test_markdown_escape_breaks_link_and_image_syntax():
    out = md_escape(f"{EVIL_MD} [a](javascript:alert(1))")
    assert "](" not in out and "][" not in out                 # no link destination follows a bracket
    assert out.replace("\\", "") == f"{EVIL_MD} [a](javascript:alert(1))"   # the text itself is kept


def test_csv_cells_that_a_spreadsheet_would_run_are_written_as_text():
    assert [safe_cell(x) for x in ["=1+1", "+x", "@SUM(A1)", "-cmd", "\tx"]] == \
        ["'=1+1", "'+x", "'@SUM(A1)", "'-cmd", "'\tx"]
    assert [safe_cell(x) for x in ["-", "-3.5", "+2e-3", "mp3", 0.25]] == ["-", "-3.5", "+2e-3", "mp3", 0.25]


def test_report_of_a_run_with_hostile_model_names(tmp_path):
    from reports.report import build_report

    run = make_run(tmp_path / "r", models=(EVIL_MD, EVIL_CSV), n_bonafide=12, n_spoof=12,
                   fams={"mp3": ("perturbation", (1, 2))})
    rep = build_report(run, plots=False)
    md = (rep.out / "report.md").read_text()
    assert "![t](" not in md and "![t]\\(http" in md
    deg = pd.read_csv(rep.out / "degradation.csv")
    assert "'" + EVIL_CSV in set(deg["model"]) and EVIL_CSV not in set(deg["model"])
    results = pd.read_csv(run / "results.csv")
    assert {EVIL_MD, EVIL_CSV} <= set(results["model"])              # the run's own table stays exact
