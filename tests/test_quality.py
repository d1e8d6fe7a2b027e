"""The quality columns of results.csv (snr_db, wide-band PESQ, STOI): they follow the ladders, fall with
severity, are stored with the scores (a resume measures only what it scores), and run folders from
before the columns existed stay readable."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tiny_detector(tmp_path: Path) -> tuple[str, str]:
    """A small user detector (tests/userplugin) and its checkpoint: a run's plumbing without AASIST's cost."""
    import torch
    from userplugin.tiny_detector import TinyDetector

    torch.manual_seed(0)
    path = tmp_path / "tiny.pth"
    torch.save(TinyDetector().state_dict(), path)
    return "userplugin.tiny_detector:TinyDetector", str(path)


SUITE = """name: quality
conditions:
  - {family: white-noise, severities: [1, 3, 5]}
  - {attack: fgsm, severities: [1]}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from bench import api

    tmp = tmp_path_factory.mktemp("quality")
    (tmp / "suite.yaml").write_text(SUITE)
    model, ckpt = _tiny_detector(tmp)
    res = api.run(str(tmp / "suite.yaml"), models=(model,), checkpoint=ckpt, limit=6, out=str(tmp / "run"),
                  workers=0, device="cpu", n_boot=10)
    return res, tmp, model, ckpt


def _row(results, family, severity):
    r = results[(results["family"] == family) & (results["severity"] == severity)]
    assert len(r) == 1
    return r.iloc[0]


def test_columns_follow_the_ladder_and_fall_with_severity(run):
    import pandas as pd

    res, _, _, _ = run
    table = pd.read_csv(res.out / "results.csv")
    assert {"snr_db", "pesq", "stoi"} <= set(table.columns)
    for sev, snr in ((1, 30.0), (3, 10.0), (5, 0.0)):
        assert abs(_row(table, "white-noise", sev)["snr_db"] - snr) <= 0.5
    pesq = [_row(table, "white-noise", s)["pesq"] for s in (1, 3, 5)]
    stoi = [_row(table, "white-noise", s)["stoi"] for s in (1, 3, 5)]
    assert 1.0 <= pesq[2] < pesq[1] < pesq[0] <= 4.65 and stoi[2] < stoi[1] < stoi[0] <= 1.0
    clean = _row(table, "clean", 0)
    assert np.isnan(clean["snr_db"]) and np.isnan(clean["pesq"])
    # attacks are measured too: FGSM's budget is an SNR (the crafted crop against the clean crop)
    fgsm = _row(table, "fgsm", 1)
    assert abs(fgsm["snr_db"] - 50.0) <= 0.5 and fgsm["pesq"] > pesq[0]


def test_replay_quality_falls_with_severity():
    from bench.metrics.quality import measure
    from foundation.audio import load_audio
    from perturbations import make

    x, _ = load_audio(ROOT / "bench" / "data" / "demo" / "audio" / "D0001.flac", 16000)
    q = [measure(x, make("replay", k)(x, 16000, np.random.default_rng(0)), 16000) for k in (1, 3, 5)]
    assert q[0][1] > q[1][1] > q[2][1] and q[0][2] > q[2][2]


def test_resume_measures_only_what_it_scores(run, monkeypatch):
    import bench.metrics.quality
    from bench import api
    from bench.run.store import Store

    res, tmp, model, ckpt = run
    with Store(res.out / "store.sqlite") as st:
        before = st.db.execute("SELECT COUNT(*) FROM quality").fetchone()[0]
        with st.db:
            st.db.execute("DELETE FROM scores WHERE family='white-noise' AND severity=5")
            st.db.execute("DELETE FROM quality WHERE family='white-noise' AND severity=5")
    calls = []
    real = bench.metrics.quality.measure
    monkeypatch.setattr(bench.metrics.quality, "measure", lambda *a, **k: calls.append(a[-1]) or real(*a, **k))
    again = api.run(str(tmp / "suite.yaml"), models=(model,), checkpoint=ckpt, limit=6, out=str(res.out),
                    workers=0, device="cpu", n_boot=10)
    assert len(calls) == 6    # the six clips of the one condition that was missing, nothing else
    with Store(res.out / "store.sqlite") as st:
        assert st.db.execute("SELECT COUNT(*) FROM quality").fetchone()[0] == before
    for sev in (1, 3, 5):
        assert _row(again.results, "white-noise", sev)["pesq"] == pytest.approx(
            _row(res.results, "white-noise", sev)["pesq"])


def test_a_store_from_before_the_quality_table_stays_readable(tmp_path):
    from bench.run.results import results_from_store
    from bench.run.store import Store
    from bench.suites.suite import Condition

    db = sqlite3.connect(tmp_path / "store.sqlite")
    db.executescript("""
        CREATE TABLE scores (model TEXT NOT NULL, family TEXT NOT NULL, severity INTEGER NOT NULL,
            utt_id TEXT NOT NULL, label TEXT NOT NULL, score REAL NOT NULL, policy TEXT NOT NULL,
            condition_key TEXT NOT NULL, PRIMARY KEY (model, family, severity, utt_id));
        CREATE TABLE problems (utt_id TEXT NOT NULL, path TEXT NOT NULL, stage TEXT NOT NULL,
            family TEXT NOT NULL, severity INTEGER NOT NULL, model TEXT NOT NULL, reason TEXT NOT NULL,
            PRIMARY KEY (utt_id, stage, family, severity, model));
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);""")
    db.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [("m", "clean", 0, f"u{i}", "bonafide" if i % 2 else "spoof", 10.0 * (i % 2) + i, "official", "k")
                    for i in range(6)])
    db.commit()
    db.close()
    with Store(tmp_path / "store.sqlite") as st:
        table = results_from_store(st, "old", [Condition("clean", 0, "perturbation", {"family": "clean"})],
                                   n_boot=10)
    assert len(table) == 1 and np.isnan(table.loc[0, "pesq"]) and table.loc[0, "eer"] == 0.0


def test_pesq_subset_is_deterministic(monkeypatch):
    from bench.metrics import quality

    rng = np.random.default_rng(0)
    x = rng.standard_normal(32000) * 0.1
    y = x + 0.01 * rng.standard_normal(32000)
    monkeypatch.setenv("BENCH_PESQ_EVERY", "3")
    kept = [u for u in (f"utt{i}" for i in range(30)) if not np.isnan(quality.measure(x, y, 16000, u)[1])]
    assert 0 < len(kept) < 30
    assert kept == [u for u in (f"utt{i}" for i in range(30)) if not np.isnan(quality.measure(x, y, 16000, u)[1])]
    monkeypatch.setenv("BENCH_PESQ_EVERY", "0")
    with pytest.raises(ValueError, match="BENCH_PESQ_EVERY"):
        quality.measure(x, y, 16000, "u")


def test_report_plots_eer_against_pesq(run, tmp_path):
    import shutil

    import pandas as pd

    from reports.report import build_report

    res, _, _, _ = run
    rep = build_report(res.out, out=tmp_path / "report")
    png = tmp_path / "report" / "plots" / "eer-vs-pesq.png"
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    assert "EER against the median PESQ" in (tmp_path / "report" / "report.html").read_text()
    # a run folder from before the quality columns: the report says so instead of failing
    old = tmp_path / "old"
    old.mkdir()
    pd.read_csv(res.out / "results.csv").drop(columns=["snr_db", "pesq", "stoi"]).to_csv(old / "results.csv",
                                                                                         index=False)
    shutil.copy(res.out / "run.json", old / "run.json")
    rep = build_report(old, out=tmp_path / "old-report")
    assert any("no PESQ" in n for n in rep.notes)
    assert not (tmp_path / "old-report" / "plots" / "eer-vs-pesq.png").exists()
