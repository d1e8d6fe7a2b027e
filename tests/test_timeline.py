"""Score timelines (`bench score --timeline`, bench/scoring/timeline.py): the windows are the `full` policy's where
they coincide, a stream cut in chunks of any size gives the offline windows, and a spliced segment is found."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.scoring.engine import Engine
from bench.scoring.score import score_batch
from bench.scoring.timeline import StreamWindower, cut, score_timeline
from bench.scoring.windows import Policy
from userplugin.tiny_detector import TinyDetector

DEMO = Path(__file__).resolve().parents[1] / "bench" / "data" / "demo"
TINY = "benchmarks.tiny_detector:TinyDetector"


def tiny(nb_samp: int = 16000, seed: int = 0) -> TinyDetector:
    det = TinyDetector().eval()
    det.nb_samp = nb_samp
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in det.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return det


def clip(n: int, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


def test_timeline_windows_are_the_full_policys_with_the_same_hop():
    det = tiny(16000)
    wav = clip(int(3.7 * 16000) + 123)
    tl = score_timeline(det, wav, hop=8000)
    pol = Policy("full", hop=8000)
    assert list(tl.start) == pol.starts(len(wav), 16000)
    assert tl.end[-1] == len(wav)                       # the end-aligned last window, as `full` adds it
    want = Engine(det).score_windows(pol.cut([wav], 16000)[1])
    np.testing.assert_allclose(tl.scores, want, rtol=0, atol=1e-6)
    assert abs(tl.scores.mean() - score_batch(det, [wav], pol)[0]) < 1e-6
    assert np.ptp(tl.scores) > 0.01                     # windows differ: the comparison means something


def test_timeline_scores_equal_the_full_policys_where_windows_coincide():
    """Default hop 0.5 s (8000 samples) against `full`'s default hop nb_samp // 2 (6000): windows starting at a
    common sample (multiples of 24000, and the end-aligned one) are the same input with the same score."""
    det = tiny(12000, seed=3)
    wav = clip(100_001, seed=2)
    tl = score_timeline(det, wav)
    full = Policy("full")
    fstarts = full.starts(len(wav), 12000)
    fscores = dict(zip(fstarts, Engine(det).score_windows(full.cut([wav], 12000)[1])))
    common = [(s, v) for s, v in zip(tl.start, tl.scores) if s in fscores]
    assert [s for s, _ in common] == [0, 24000, 48000, 72000, 100_001 - 12000]
    for s, v in common:
        assert abs(v - fscores[s]) < 1e-6, s


def test_a_short_clip_is_one_tiled_window_scored_as_official():
    det = tiny(16000)
    for n in (700, 16000):
        wav = clip(n, seed=n)
        tl = score_timeline(det, wav)
        assert len(tl) == 1 and tl.rows()[0]["start_s"] == 0.0 and tl.rows()[0]["end_s"] == n / 16000
        assert abs(tl.scores[0] - score_batch(det, [wav], "official")[0]) < 1e-6


@pytest.mark.parametrize("length,window,hop", [(50_000, 16000, 8000), (16000, 16000, 8000), (9000, 16000, 8000),
                                               (16001, 16000, 8000), (70_000, 10000, 13000), (33_333, 7000, 1)])
def test_a_stream_in_chunks_of_any_size_gives_the_offline_windows(length, window, hop):
    rng = np.random.default_rng(length + hop)
    wav = clip(length, seed=length)
    st, en, windows = cut(wav, window, hop)
    for _trial in range(3):
        sw = StreamWindower(window, hop)
        got, pos = [], 0
        while pos < length:
            k = int(rng.integers(1, 2 * window))
            got.extend(sw.push(wav[pos:pos + k]))
            pos += k
            assert len(sw._buf) <= window + hop + 2 * window    # bounded: never the whole stream
        got.extend(sw.finish())
        assert [(s, e) for s, e, _ in got] == list(zip(st, en))
        for (_, _, w), ref in zip(got, windows):
            np.testing.assert_array_equal(w, ref)


def test_an_empty_stream_is_refused():
    with pytest.raises(ValueError, match="before any audio"):
        list(StreamWindower(100, 50).finish())


def spliced(seconds_before: float = 6.0, seg_s: float = 2.0) -> tuple[np.ndarray, float, float]:
    """Bona fide demo speech with a synthetic segment (a DC-shifted buzz) spliced in at ``seconds_before``."""
    from foundation.audio import load_audio

    import pandas as pd

    m = pd.read_csv(DEMO / "manifest.csv")
    speech = np.concatenate([load_audio(DEMO / p)[0] for p in m[m.label == "bonafide"].path[:4]])
    a, n = int(seconds_before * 16000), int(seg_s * 16000)
    t = np.arange(n) / 16000
    seg = (0.2 * np.sign(np.sin(2 * np.pi * 150 * t)) - 0.3).astype(np.float32)
    return np.concatenate([speech[:a], seg, speech[a:a + 6 * 16000]]), a / 16000, (a + n) / 16000


def test_cli_timeline_finds_the_spliced_segment(tmp_path, capsys):
    """The tiny benchmark detector scores a window by its mean: the spliced segment (mean -0.3) pulls down exactly
    the windows that overlap it, so the timeline says where it sits."""
    from benchmarks.tiny_detector import write_checkpoint
    from foundation.audio import save_audio

    ckpt = write_checkpoint(tmp_path / "tiny.pth")
    wav, t0, t1 = spliced()
    f = tmp_path / "call.wav"
    save_audio(f, wav, 16000, subtype="FLOAT")
    assert main(["score", "--model", TINY, "--checkpoint", str(ckpt), "--device", "cpu", "--timeline",
                 "--window", "1", "--hop", "0.25", "--json", str(f)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["path"] for d in doc] == [str(f)] and doc[0]["error"] is None
    tl = doc[0]["timeline"]
    assert set(tl[0]) == {"start_s", "end_s", "score"}
    assert tl[0]["start_s"] == 0 and tl[1]["start_s"] == 0.25 and tl[0]["end_s"] == 1.0
    low = [w for w in tl if w["score"] < -0.1]
    assert low and min(w["start_s"] for w in low) >= t0 - 1.0 and max(w["end_s"] for w in low) <= t1 + 1.0
    inside = [w for w in tl if w["start_s"] >= t0 and w["end_s"] <= t1]
    assert len(inside) == 5 and all(w["score"] < -0.25 for w in inside)
    # CSV with a threshold: a decision per window, spoof exactly where the score is under it; and the figure
    assert main(["score", "--model", TINY, "--checkpoint", str(ckpt), "--device", "cpu", "--timeline",
                 "--window", "1", "--hop", "0.25", "--threshold", "-0.1", "--figures", str(tmp_path / "fig"),
                 str(f)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "path,start_s,end_s,score,decision" and len(lines) == len(tl) + 1
    spoof = [ln for ln in lines[1:] if ln.endswith(",spoof")]
    assert len(spoof) == len(low)
    assert (tmp_path / "fig" / "call.timeline.png").stat().st_size > 10_000


def test_threshold_must_be_finite(capsys):
    with pytest.raises(SystemExit) as e:
        main(["score", "--timeline", "--threshold", "nan", "x.wav"])
    assert e.value.code == 2 and "finite" in capsys.readouterr().err


def test_unreadable_file_is_named_and_the_rest_scored(tmp_path, capsys):
    from benchmarks.tiny_detector import write_checkpoint
    from foundation.audio import save_audio

    ckpt = write_checkpoint(tmp_path / "tiny.pth")
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    save_audio(good, clip(4000), 16000)
    bad.write_bytes(b"not audio at all" * 10)
    assert main(["score", "--model", TINY, "--checkpoint", str(ckpt), "--device", "cpu", "--timeline", "--json",
                 str(good), str(bad)]) == 1
    doc = json.loads(capsys.readouterr().out)
    # 4000 samples, windows of 1600 (0.1 s) every 0.5 s: the one at 0 and the end-aligned one at 2400
    assert [w["start_s"] for w in doc[0]["timeline"]] == [0.0, 0.15] and doc[0]["error"] is None
    assert doc[1]["timeline"] == [] and "bad.wav" in doc[1]["error"]


def test_threshold_from_a_calibration_file(tmp_path, capsys):
    from bench.metrics import calibration as C
    from bench.run.calibrate import fit_calibration, save_calibration
    from bench.commands.timeline import calibration_threshold

    rng = np.random.default_rng(5)
    n = 200
    rows = [{"utt_id": f"u{i}", "model": TINY, "family": "clean", "severity": 0,
             "label": "bonafide" if i % 2 else "spoof", "score": rng.normal(1.5 if i % 2 else -1.5, 1.0)}
            for i in range(n)]
    import pandas as pd

    pd.DataFrame(rows).to_csv(tmp_path / "scores.csv", index=False)
    cal = fit_calibration(tmp_path, model=TINY)
    path = save_calibration(cal, tmp_path / "cal.json")
    thr = calibration_threshold(path, TINY)
    costs = cal["costs"]
    t = C.bayes_threshold(1 - costs["p_spoof"], costs["c_miss"], costs["c_fa"])
    a, b = cal["map"]["a"], cal["map"]["b"]
    assert a > 0 and abs(a * thr + b - t) < 1e-9          # the score whose llr is the Bayes threshold
    with pytest.raises(ValueError, match="not 'aasist'"):
        calibration_threshold(path, "aasist")
    # through the command: a decision per window at that score
    from benchmarks.tiny_detector import write_checkpoint
    from foundation.audio import save_audio

    f = tmp_path / "x.wav"
    save_audio(f, np.concatenate([np.full(8000, thr + 0.05), np.full(8000, thr - 0.05)]).astype(np.float32), 16000,
               subtype="FLOAT")
    assert main(["score", "--model", TINY, "--checkpoint", str(write_checkpoint(tmp_path / "t.pth")), "--device",
                 "cpu", "--timeline", "--window", "0.25", "--hop", "0.25", "--calibration", str(path), "--json",
                 str(f)]) == 0
    tl = json.loads(capsys.readouterr().out)[0]["timeline"]
    assert [w["decision"] for w in tl] == ["bonafide", "bonafide", "spoof", "spoof"]
