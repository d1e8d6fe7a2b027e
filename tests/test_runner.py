"""`bench run` end to end on real audio and the real AASIST-L weights: resume after kill -9,
broken inputs, reproducibility, and the contract's files."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from bench.data import load_dataset

SUITE = "name: mini\nconditions:\n  - {family: white-noise, severities: [1, 4]}\n  - {family: mp3, severities: [5]}\n"


def bench_cmd(*args):
    return [sys.executable, "-m", "bench.cli", *args]


def run_cli(*args, timeout=600):
    p = subprocess.run(bench_cmd(*args), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-2000:]
    return p


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("suite") / "mini.yaml"
    p.write_text(SUITE)
    return p


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, suite_file):
    out = tmp_path_factory.mktemp("runs") / "straight"
    run_cli("run", "--suite", str(suite_file), "--model", "aasist-l", "--limit", "6", "--batch-size", "1",
            "--workers", "1", "--out", str(out))
    return out


def test_contract_files(uninterrupted):
    res = pd.read_csv(uninterrupted / "results.csv")
    for col in ["model", "suite", "family", "severity", "n_bonafide", "n_spoof", "eer", "eer_ci_low",
                "eer_ci_high", "auc"]:
        assert col in res.columns
    assert list(zip(res.family, res.severity)) == [("clean", 0), ("white-noise", 1), ("white-noise", 4), ("mp3", 5)]
    assert (res.n_bonafide == 3).all() and (res.n_spoof == 3).all()
    assert ((res.eer >= 0) & (res.eer <= 1)).all()
    assert (res.eer_ci_low <= res.eer + 1e-12).all() and (res.eer <= res.eer_ci_high + 1e-12).all()
    sc = pd.read_csv(uninterrupted / "scores.csv")
    assert {"utt_id", "model", "family", "severity", "label", "score"} <= set(sc.columns)
    assert len(sc) == 4 * 6
    prov = json.loads((uninterrupted / "run.json").read_text())
    assert prov["status"] == "complete" and prov["seed"] == 0
    assert prov["models"][0]["sha256"] == "814331d088032bb4c3fa61cc014789eadeed464209dd094ab3a2dd6ffbdce27a"
    assert prov["versions"]["torch"] and prov["suite"]["sha256"]


def test_kill_9_then_resume_equals_uninterrupted(tmp_path, suite_file, uninterrupted):
    out = tmp_path / "killed"
    args = ["run", "--suite", str(suite_file), "--model", "aasist-l", "--limit", "6", "--batch-size", "1",
            "--workers", "1", "--out", str(out)]
    proc = subprocess.Popen(bench_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    db = out / "store.sqlite"
    n = 0
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as c:
                    n = c.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
            except sqlite3.OperationalError:
                n = 0
            if n >= 5:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as c:
        partial = c.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    assert 5 <= partial < 24
    assert not (out / "results.csv").exists()
    run_cli(*args)
    a = pd.read_csv(uninterrupted / "scores.csv")
    b = pd.read_csv(out / "scores.csv")
    pd.testing.assert_frame_equal(a, b)
    ra = pd.read_csv(uninterrupted / "results.csv")
    rb = pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(ra, rb)


def test_rerun_of_finished_run_computes_nothing_new(uninterrupted, suite_file):
    before = pd.read_csv(uninterrupted / "scores.csv")
    run_cli("run", "--suite", str(suite_file), "--model", "aasist-l", "--limit", "6", "--out", str(uninterrupted),
            "--workers", "0")
    pd.testing.assert_frame_equal(before, pd.read_csv(uninterrupted / "scores.csv"))


def test_different_configuration_in_same_folder_is_refused(uninterrupted, suite_file):
    p = subprocess.run(bench_cmd("run", "--suite", str(suite_file), "--model", "aasist-l", "--limit", "4",
                                 "--out", str(uninterrupted)), capture_output=True, text=True)
    assert p.returncode == 1 and "different configuration" in p.stderr and "limit" in p.stderr


def test_broken_files_are_listed_and_the_rest_is_scored(tmp_path):
    demo = load_dataset("demo")
    good = [u for u in demo.utterances if u.label == "bonafide"][:2] + \
           [u for u in demo.utterances if u.label == "spoof"][:2]
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "garbage.flac").write_bytes(os.urandom(2048))
    sf.write(tmp_path / "nan.wav", np.full(16000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    rows = [(str(u.path), u.label) for u in good] + [
        ("empty.wav", "spoof"), ("garbage.flac", "bonafide"), ("nan.wav", "spoof"), ("missing.wav", "spoof")]
    man = tmp_path / "m.csv"
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(man, index=False)
    out = tmp_path / "run"
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nconditions:\n  - {family: quantization, severities: [2]}\n")
    run_cli("run", "--suite", str(suite), "--model", "aasist-l", "--data", str(man), "--out", str(out),
            "--workers", "0")
    sc = pd.read_csv(out / "scores.csv")
    assert sorted(set(sc.utt_id)) == sorted(Path(u.path).stem for u in good)
    assert len(sc) == 2 * len(good)
    probs = pd.read_csv(out / "problems.csv")
    for name in ("empty", "garbage", "nan", "missing"):
        hit = probs[probs.utt_id.astype(str).str.contains(name) | probs.path.astype(str).str.contains(name)]
        assert len(hit) >= 1, f"{name} not listed in problems.csv:\n{probs}"
        assert hit.reason.astype(str).str.len().min() > 5
