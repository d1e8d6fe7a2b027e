"""A family that cannot run here never vanishes: its resources are checked before any audio is read, the
suite is refused naming the family and the fix, and ``--skip-unavailable`` runs the rest while the terminal
summary, run.json, skipped.csv, the report and ``bench check`` each name the skipped family.

The missing library is simulated: the AMR-WB encoder (libvo-amrwbenc, loaded through ctypes) is installed on
this machine and cannot be made absent for real, so its loader is pointed at a library name that does not
exist (``ctypes.util.find_library`` patched, the loader's cache cleared). Everything else is real: the demo
set, the runner, a tiny detector (tests/userplugin) and the report and check code."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

SUITE = """name: avail
conditions:
  - {family: white-noise, severities: [1]}
  - {family: amr-wb, severities: [1, 2]}
"""


def _tiny_detector(tmp_path: Path) -> tuple[str, str]:
    import torch
    from userplugin.tiny_detector import TinyDetector

    torch.manual_seed(0)
    path = tmp_path / "tiny.pth"
    torch.save(TinyDetector().state_dict(), path)
    return "userplugin.tiny_detector:TinyDetector", str(path)


@pytest.fixture
def no_amrwb(monkeypatch):
    """libvo-amrwbenc "not installed": its loader looks for a library that is not there."""
    from perturbations.codecs import amr_wb

    amr_wb._encoder_lib.cache_clear()
    monkeypatch.setattr(amr_wb.ctypes.util, "find_library", lambda name: "libnot-there-amrwb.so")
    yield
    amr_wb._encoder_lib.cache_clear()


def _amrwb_installed() -> bool:
    from perturbations import make, unavailable

    return unavailable(make("amr-wb", 1)) is None


def test_check_resources_names_the_family_and_the_fix(no_amrwb):
    from perturbations import ResourceUnavailable, make, unavailable

    with pytest.raises(ResourceUnavailable, match=r"amr-wb cannot run here.*apt-get install libvo-amrwbenc0"):
        make("amr-wb", 3).check_resources()
    assert "libvo-amrwbenc0" in unavailable(make("amr-wb", 1))
    assert unavailable(make("mp3", 1)) is None   # a family PyAV has stays available


def test_suite_with_an_unavailable_family_is_refused_before_any_audio(no_amrwb, tmp_path):
    from bench import api

    (tmp_path / "suite.yaml").write_text(SUITE)
    model, ckpt = _tiny_detector(tmp_path)
    with pytest.raises(RuntimeError, match=r"amr-wb@1.*libvo-amrwbenc0.*--skip-unavailable"):
        api.run(str(tmp_path / "suite.yaml"), models=(model,), checkpoint=ckpt, data="demo", limit=4,
                out=str(tmp_path / "run"), workers=0, device="cpu", n_boot=10, progress=False)
    assert not (tmp_path / "run").exists()   # refused up front: no folder, nothing scored


def test_skip_unavailable_names_the_family_in_every_output(tmp_path, monkeypatch, capsys):
    from bench.cli import main
    from reports.check import check_runs
    from reports.check_format import format_result
    from reports.report import build_report

    if not _amrwb_installed():
        pytest.skip("the baseline run needs libvo-amrwbenc (apt-get install libvo-amrwbenc0)")
    (tmp_path / "suite.yaml").write_text(SUITE)
    model, ckpt = _tiny_detector(tmp_path)
    args = ["run", "--suite", str(tmp_path / "suite.yaml"), "--model", model, "--checkpoint", ckpt, "--data", "demo",
            "--limit", "4", "--workers", "0", "--device", "cpu"]
    assert main(args + ["--out", str(tmp_path / "base")]) == 0   # the baseline, with the library
    base = json.loads((tmp_path / "base" / "run.json").read_text())
    assert base["skipped"] == [] and not (tmp_path / "base" / "skipped.csv").exists()

    from perturbations.codecs import amr_wb

    amr_wb._encoder_lib.cache_clear()
    monkeypatch.setattr(amr_wb.ctypes.util, "find_library", lambda name: "libnot-there-amrwb.so")
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "new"), "--skip-unavailable"]) == 0
    amr_wb._encoder_lib.cache_clear()
    new = tmp_path / "new"
    # terminal summary
    err = capsys.readouterr().err
    assert "SKIPPED amr-wb (severities 1, 2)" in err and "libvo-amrwbenc0" in err
    # results.csv holds what ran; skipped.csv and run.json name what did not
    with open(new / "results.csv", newline="") as f:
        fams = {r["family"] for r in csv.DictReader(f)}
    assert "white-noise" in fams and "amr-wb" not in fams
    with open(new / "skipped.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["family"], r["severities"]) for r in rows] == [("amr-wb", "1 2")]
    assert "libvo-amrwbenc0" in rows[0]["reason"]
    meta = json.loads((new / "run.json").read_text())
    assert meta["status"] == "complete" and [s["family"] for s in meta["skipped"]] == ["amr-wb"]
    # the report
    rep = build_report(new, out=tmp_path / "report", plots=False)
    md = next(Path(tmp_path / "report").glob("*.md")).read_text()
    assert any("SKIPPED amr-wb" in n for n in rep.notes) and "SKIPPED amr-wb" in md
    # bench check: the baseline's amr-wb conditions are "skipped", not silently missing, and fail the gate
    res = check_runs(new, tmp_path / "base", 0.5, n_boot=10)
    sk = res.rows[res.rows["family"] == "amr-wb"]
    assert len(sk) == 2 and set(sk["status"]) == {"skipped"} and sk["failed"].all() and not res.ok
    text = format_result(res)
    assert "SKIPPED" in text and "2 baseline conditions were SKIPPED" in text and "libvo-amrwbenc0" in text
    allowed = check_runs(new, tmp_path / "base", 0.5, n_boot=10, allow_missing=True)
    assert allowed.ok and "skipped (allowed)" in format_result(allowed)
