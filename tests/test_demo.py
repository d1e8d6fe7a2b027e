"""The built-in demo set: loads from the package, both classes, valid audio, small, licensed."""
from __future__ import annotations

import csv
import fnmatch
import importlib.resources
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.data.demo import DEMO_DIR, MANIFEST, load_demo
from bench.data.demo.balance import auc

ROOT = Path(__file__).resolve().parents[1]
LICENCES = {"CC-BY-SA-3.0", "CC-BY-3.0", "CC0-1.0", "CMU-ARCTIC (BSD-style)"}


@pytest.fixture(scope="module")
def demo():
    return load_demo()


@pytest.fixture(scope="module")
def rows():
    with open(MANIFEST, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_both_labels_with_at_least_30_each(demo):
    from bench.data.manifest import Dataset

    assert isinstance(demo, Dataset) and demo.name == "demo"
    counts = demo.counts()
    assert counts["bonafide"] >= 30 and counts["spoof"] >= 30, counts
    assert demo.problems == []


def test_ids_unique(demo):
    ids = [u.utt_id for u in demo]
    assert len(ids) == len(set(ids))


def test_every_file_decodes_at_16k_mono_2_to_5_s(demo):
    for u in demo:
        x, sr = sf.read(str(u.path), dtype="float32", always_2d=True)
        assert sr == 16000, u.path
        assert x.shape[1] == 1, u.path
        assert 2.0 <= len(x) / sr <= 5.0, (u.path, len(x) / sr)
        assert np.all(np.isfinite(x)) and np.abs(x).max() > 0.01, u.path


def test_total_size_under_10_mb():
    size = sum(p.stat().st_size for p in DEMO_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert size < 10_000_000, f"bench/data/demo is {size / 1e6:.1f} MB"


def test_found_through_the_package_not_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = load_demo()
    pkg = Path(str(importlib.resources.files("bench.data.demo")))
    assert pkg.resolve() == DEMO_DIR
    for u in ds:
        assert u.path.is_absolute() and u.path.is_file()
        assert DEMO_DIR in u.path.parents, u.path
        assert tmp_path not in u.path.parents


def test_demo_spec_of_the_loader_gives_the_same_set(demo):
    from bench.data import load_dataset

    ds = load_dataset("demo")
    assert ds.counts() == demo.counts()
    assert {u.utt_id for u in ds} == {u.utt_id for u in demo}


def test_manifest_records_source_licence_and_generator(rows):
    assert set(rows[0]) >= {"path", "label", "utt_id", "speaker", "attack", "source", "licence"}
    for r in rows:
        assert r["path"].startswith("audio/") and not Path(r["path"]).is_absolute(), r
        assert r["licence"] in LICENCES, r
        assert r["source"].strip(), r
        assert (r["attack"] == "-") == (r["label"] == "bonafide"), r
    spoof_attacks = {r["attack"] for r in rows if r["label"] == "spoof"}
    assert len(spoof_attacks) >= 4, spoof_attacks


def test_every_shipped_file_is_in_the_manifest_or_documented(rows):
    listed = {r["path"] for r in rows}
    audio = {f"audio/{p.name}" for p in (DEMO_DIR / "audio").iterdir()}
    assert audio == listed
    card = (DEMO_DIR / "CARD.md").read_text(encoding="utf-8")
    assert "smoke test, not a benchmark" in card
    for attack in {r["attack"] for r in rows} - {"-"}:
        assert f"`{attack}`" in card, attack


def test_package_data_globs_cover_the_data_files():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["bench"]
    bench_dir = ROOT / "bench"
    for p in DEMO_DIR.rglob("*"):
        if p.is_dir() or p.suffix == ".py" or "__pycache__" in p.parts:
            continue
        rel = p.relative_to(bench_dir).as_posix()
        assert any(fnmatch.fnmatch(rel, g) and rel.count("/") == g.count("/") for g in globs), rel


def test_auc_of_a_cue():
    a = np.array([1.0, 2.0, 3.0])
    assert auc(a, a) == pytest.approx(0.5)
    assert auc(a + 10, a) == 1.0
    assert auc(a, a + 10) == 0.0


@pytest.mark.slow
def test_card_balance_table_matches_the_files(tmp_path):
    """Re-measures every file (slow): the AUCs in CARD.md are those of the shipped audio."""
    from bench.data.demo.balance import CUES, measure

    _, summary = measure(DEMO_DIR)
    card = (DEMO_DIR / "CARD.md").read_text(encoding="utf-8")
    for key, label in CUES.items():
        line = next(ln for ln in card.splitlines() if ln.startswith(f"| {label} |"))
        assert f"| {summary[key]['auc']:.3f} |" in line, (key, line)
