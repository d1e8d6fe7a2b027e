"""The pass/fail gate end to end: a run passes against itself; a checkpoint with random weights
fails against the official AASIST (issue: reports, "Done when")."""
import subprocess
import sys

import pytest
import torch

from models import CARDS, ARCHITECTURES


def bench(*args):
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    card = CARDS.get("aasist")
    torch.manual_seed(1234)
    rnd = ARCHITECTURES.get(card.architecture).from_config(card.config)
    ckpt = root / "random.pth"
    torch.save(rnd.state_dict(), ckpt)
    common = ["run", "--suite", "clean", "--model", "aasist", "--limit", "12", "--workers", "0"]
    a = bench(*common, "--out", str(root / "official"))
    assert a.returncode == 0, a.stderr[-2000:]
    b = bench(*common, "--checkpoint", str(ckpt), "--out", str(root / "random"))
    assert b.returncode == 0, b.stderr[-2000:]
    return root / "official", root / "random"


def test_run_passes_against_itself(runs):
    official, _ = runs
    p = bench("check", str(official), "--baseline", str(official), "--max-eer-increase", "0")
    assert p.returncode == 0, p.stdout + p.stderr


def test_random_weights_fail_against_official(runs):
    official, random_run = runs
    p = bench("check", str(random_run), "--baseline", str(official), "--max-eer-increase", "0.05")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "clean" in p.stdout + p.stderr


def test_report_on_a_finished_run_writes_tables_plots_and_html(runs):
    official, _ = runs
    p = bench("report", str(official))
    assert p.returncode == 0, p.stderr[-2000:]
    rep = official / "report"
    html = (rep / "report.html").read_text()
    assert "smoke test, not a benchmark" in html and "<table" in html and "data:image/png;base64," in html
    assert (rep / "report.md").read_text().count("|") > 10
    assert any(rep.glob("plots/*.png"))
