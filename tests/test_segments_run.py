"""Segment-level EER of partially spoofed data in `bench run` (bench/run/segments.py): files built here by splicing a
synthetic segment into bona fide speech; the windows overlapping it are labelled spoof, and results.csv reports the
EER of the windows per condition, so a channel that hides the segment shows up as lost localisation."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import api
from bench.run.segments import parse_segments, segments_of, window_labels
from foundation.audio import load_audio, save_audio

DEMO = Path(__file__).resolve().parents[1] / "bench" / "data" / "demo"
TINY = "benchmarks.tiny_detector:TinyDetector"


def test_segments_are_parsed_and_checked():
    assert parse_segments("7-7.8; 2.5-4.1") == ((2.5, 4.1), (7.0, 7.8))
    assert parse_segments(" ") == ()
    for bad in ("3", "4-2", "a-b", "-1-2", "1-inf"):
        with pytest.raises(ValueError, match="START-END"):
            parse_segments(bad, "utterance x")

    class U:
        def __init__(self, label, cell, attrs=True):
            self.utt_id, self.label = "u1", label
            self.attrs = {"spoof_segments": cell} if attrs else {}

    assert segments_of(U("spoof", "", attrs=False)) is None
    assert segments_of(U("spoof", "")) == ((0.0, math.inf),)      # spoofed throughout
    assert segments_of(U("bonafide", "")) == ()
    with pytest.raises(ValueError, match="utterance u1.*bona fide utterance has spoofed segments"):
        segments_of(U("bonafide", "1-2"))


def test_a_window_is_spoof_when_it_overlaps_a_segment_by_more_than_zero():
    lab = window_labels([0, 1, 2, 3, 4], [1, 2, 3, 4, 5], ((1.5, 2.0), (4.0, 4.0001)))
    assert list(lab) == [0, 1, 0, 0, 1]                   # [2, 3) only touches the segment ending at 2.0


@pytest.fixture(scope="module")
def spliced_manifest(tmp_path_factory):
    """8 bona fide demo clips as they are, and 8 partially spoofed ones: another bona fide clip with a 1 s synthetic
    segment (a DC-shifted buzz) spliced in at a different place each."""
    folder = tmp_path_factory.mktemp("partial")
    m = pd.read_csv(DEMO / "manifest.csv")
    bona = [load_audio(DEMO / p)[0] for p in m[m.label == "bonafide"].path[:16]]
    rows = []
    for i, wav in enumerate(bona[:8]):
        save_audio(folder / f"b{i}.wav", wav, 16000, subtype="FLOAT")
        rows.append({"path": f"b{i}.wav", "label": "bonafide", "utt_id": f"b{i}", "spoof_segments": ""})
    t = np.arange(16000) / 16000
    seg = (0.2 * np.sign(np.sin(2 * np.pi * 150 * t)) - 0.3).astype(np.float32)
    for i, wav in enumerate(bona[8:]):
        at = 0.5 + 0.25 * i
        k = int(at * 16000)
        out = np.concatenate([wav[:k], seg, wav[k:]])
        save_audio(folder / f"p{i}.wav", out, 16000, subtype="FLOAT")
        rows.append({"path": f"p{i}.wav", "label": "spoof", "utt_id": f"p{i}", "spoof_segments": f"{at}-{at + 1}"})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    from benchmarks.tiny_detector import write_checkpoint

    return folder, write_checkpoint(folder / "tiny.pth")


def test_run_reports_the_segment_eer_per_condition(spliced_manifest, tmp_path):
    """The tiny detector scores a window by its mean, so it localises the DC-shifted segment on clean audio; the
    telephone band removes DC, and with it the localisation (segment EER near chance)."""
    folder, ckpt = spliced_manifest
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nconditions:\n  - {family: telephone, severities: [1]}\n")
    res = api.run(str(suite), models=(TINY,), checkpoint=str(ckpt), data=str(folder / "manifest.csv"),
                  out=tmp_path / "run", device="cpu", workers=0, n_boot=20, progress=False)
    r = pd.read_csv(tmp_path / "run" / "results.csv").set_index("family")
    assert {"segment_eer", "segment_n_bonafide", "segment_n_spoof"} <= set(r.columns)
    clean, tel = r.loc["clean"], r.loc["telephone"]
    # windows of 0.1 s every 0.5 s: a 1 s segment holds 2 of them; the bona fide clips and the rest the others
    assert 16 <= clean["segment_n_spoof"] <= 24 and clean["segment_n_bonafide"] > 5 * clean["segment_n_spoof"]
    assert clean["segment_eer"] < 0.05
    assert tel["segment_eer"] > 0.3
    assert (clean["segment_n_spoof"], clean["segment_n_bonafide"]) == (tel["segment_n_spoof"],
                                                                       tel["segment_n_bonafide"])
    assert res.results["segment_eer"].notna().all()
    # resumed: nothing is recomputed and the table stays the same
    again = api.run(str(suite), models=(TINY,), checkpoint=str(ckpt), data=str(folder / "manifest.csv"),
                    out=tmp_path / "run", device="cpu", workers=0, n_boot=20, progress=False)
    pd.testing.assert_frame_equal(again.results, res.results)


def test_a_bad_segment_cell_stops_the_run_naming_the_utterance(spliced_manifest, tmp_path):
    folder, ckpt = spliced_manifest
    m = pd.read_csv(folder / "manifest.csv", keep_default_na=False)
    m.loc[m.utt_id == "p3", "spoof_segments"] = "2.0-1.0"
    bad = folder / "bad.csv"
    m.to_csv(bad, index=False)
    with pytest.raises(ValueError, match="utterance p3.*'2.0-1.0'"):
        api.run("clean", models=(TINY,), checkpoint=str(ckpt), data=str(bad), out=tmp_path / "run", device="cpu",
                workers=0, progress=False)
    assert not (tmp_path / "run").exists()
