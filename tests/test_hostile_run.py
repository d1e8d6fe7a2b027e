"""`bench run` and `bench score` given hostile inputs (issue 26, items 3, 4, 5, 6, 7, 8 and 16): audio replaced
between sessions, a checkpoint swapped while it loads, a condition that cannot run, silent / one-sample /
cancelling clips, NaN scores and loud float files in `bench score`, runs with no EER anywhere."""
import json
import pickle

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from bench import api
from bench.cli import main
from bench.run.runner import RunFailed

TINY = "benchmarks.tiny_detector:TinyDetector"


def _tiny(path, scale=1000.0):
    import torch

    torch.save({"scale": torch.tensor(scale)}, path)
    return str(path)


def _speechlike(seed, seconds=0.5, sr=16000):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.2 * np.sin(2 * np.pi * (150 + 50 * seed) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _manifest(folder, clips):
    """clips: {name: (waveform [T] or [T, C], label)} written as 16 kHz WAVs, listed in m.csv."""
    rows = []
    for name, (wav, label) in clips.items():
        sf.write(folder / f"{name}.wav", wav, 16000, subtype="FLOAT")
        rows.append((f"{name}.wav", label))
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(folder / "m.csv", index=False)
    return str(folder / "m.csv")


def _suite(folder, text="name: s\nconditions:\n  - {family: white-noise, severities: [2]}\n"):
    (folder / "s.yaml").write_text(text)
    return str(folder / "s.yaml")


def _run(folder, data, ckpt, **kw):
    return api.run(kw.pop("suite", None) or _suite(folder), models=(TINY,), checkpoint=ckpt, data=data, workers=0,
                   device="cpu", n_boot=20, progress=False, **kw)


# ---- item 3: the run is bound to the audio's content --------------------------------------------------------
def test_replaced_audio_is_refused_on_resume_or_rescored(tmp_path):
    clips = {f"c{i}": (_speechlike(i), "bonafide" if i % 2 else "spoof") for i in range(4)}
    data, ckpt, out = _manifest(tmp_path, clips), _tiny(tmp_path / "t.pth"), tmp_path / "run"
    first = _run(tmp_path, data, ckpt, out=str(out)).scores
    sf.write(tmp_path / "c1.wav", _speechlike(9), 16000, subtype="FLOAT")   # same name, other audio
    with pytest.raises(ValueError, match=r"1 files whose content has changed since \(.*c1\.wav\).*--rescore-changed"):
        _run(tmp_path, data, ckpt, out=str(out))
    again = _run(tmp_path, data, ckpt, out=str(out), rescore_changed=True).scores
    a, b = (df.set_index(["family", "utt_id"])["score"] for df in (first, again))
    assert (a.drop("c1", level="utt_id") == b.drop("c1", level="utt_id")).all()
    assert not np.isclose(a.xs("c1", level="utt_id"), b.xs("c1", level="utt_id")).any()
    fresh = _run(tmp_path, data, ckpt, out=str(tmp_path / "fresh")).scores.set_index(["family", "utt_id"])["score"]
    pd.testing.assert_series_equal(b.sort_index(), fresh.sort_index())
    # a file touched without a change of content is not a change
    import os

    os.utime(tmp_path / "c2.wav", ns=(1, 1))
    assert len(_run(tmp_path, data, ckpt, out=str(out)).scores) == len(b)


# ---- item 4: the digest is of the weights that were loaded -------------------------------------------------
def test_a_checkpoint_swapped_before_loading_is_refused(tmp_path, monkeypatch):
    import models

    ckpt = _tiny(tmp_path / "t.pth", 1000.0)
    real = models.load_detector

    def swap_then_load(name, checkpoint=None, **kw):   # the file is replaced after the run took its digest
        _tiny(tmp_path / "t.pth", -7.0)
        return real(name, checkpoint=checkpoint, **kw)

    monkeypatch.setattr(models, "load_detector", swap_then_load)
    clips = {f"c{i}": (_speechlike(i), "bonafide" if i % 2 else "spoof") for i in range(2)}
    with pytest.raises(ValueError, match=r"bound to .*t\.pth with sha256 [0-9a-f]{16}\.\.\., but the weights "
                                         r"loaded from it have sha256 [0-9a-f]{16}"):
        _run(tmp_path, _manifest(tmp_path, clips), ckpt, out=str(tmp_path / "run"))


def test_card_weights_are_verified_on_the_bytes_that_load(tmp_path, monkeypatch, shared_dir):
    import torch

    import foundation.weights as W
    from models import load_detector
    from foundation.weights import WeightsError

    (tmp_path / "aasist").mkdir()
    src = shared_dir / "weights" / "aasist" / "AASIST-L.pth"
    (tmp_path / "aasist" / "AASIST-L.pth").write_bytes(src.read_bytes())
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    state = torch.load(src, map_location="cpu", weights_only=True)
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = state[first] + 1.0   # same architecture, other weights
    real = W.resolve

    def resolve_then_swap(card, explicit=None, **kw):   # replaced between the card check and the read
        p = real(card, explicit, **kw)
        torch.save(state, p)
        return p

    monkeypatch.setattr(W, "resolve", resolve_then_swap)
    with pytest.raises(WeightsError, match="the card of 'aasist-l' says"):
        load_detector("aasist-l")


# ---- item 5: a condition that cannot run fails the run --------------------------------------------------------
class _Evil:
    def __reduce__(self):
        import os

        return (os.getpid, ())


def test_a_codec_folder_holding_a_pickle_is_refused_up_front(tmp_path):
    folder = tmp_path / "codec"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "encodec"}))
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Evil()))
    suite = _suite(tmp_path, f"name: n\nconditions:\n  - {{family: encodec, severities: [1], "
                             f"params: {{checkpoint: {folder}}}}}\n")
    clips = {f"c{i}": (_speechlike(i), "bonafide" if i % 2 else "spoof") for i in range(2)}
    with pytest.raises(RuntimeError, match=r"encodec@1: encodec: the weights folder .* holds pickled weights "
                                           r"\(pytorch_model\.bin\)"):
        _run(tmp_path, _manifest(tmp_path, clips), _tiny(tmp_path / "t.pth"), suite=suite, out=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()   # refused before any audio was read


def test_a_condition_that_fails_on_every_clip_fails_the_run(tmp_path):
    noise = tmp_path / "noise"   # a noise folder holding only silence: every clip's draw fails
    noise.mkdir()
    sf.write(noise / "hum.wav", np.zeros(16000, np.float32), 16000)
    suite = _suite(tmp_path, "name: b\nconditions:\n  - {family: background-noise, severities: [1]}\n")
    clips = {f"c{i}": (_speechlike(i), "bonafide" if i % 2 else "spoof") for i in range(4)}
    with pytest.raises(RunFailed, match=r"1 condition\(s\) could not run for any clip \(background-noise@1\); "
                                        r"background-noise@1 failed: .*were all silent"):
        _run(tmp_path, _manifest(tmp_path, clips), _tiny(tmp_path / "t.pth"), suite=suite, out=str(tmp_path / "r"),
             resources={"noise_dir": str(noise)})
    doc = json.loads((tmp_path / "r" / "run.json").read_text())
    assert doc["status"] == "failed" and "background-noise@1" in doc["failure"]


# ---- item 6: silence, one sample, channels that cancel ---------------------------------------------------------
@pytest.mark.parametrize("prepare_on", ["cpu", "device"])   # perturbed in the workers, or by the scorer
def test_clips_that_are_not_speech_are_scored_with_a_measured_warning(tmp_path, prepare_on):
    x = _speechlike(3)
    clips = {"silent": (np.zeros(8000, np.float32), "spoof"), "one": (np.array([0.3], np.float32), "bonafide"),
             "cancel": (np.stack([x, -x], axis=1), "spoof"), "ok1": (_speechlike(1), "bonafide"),
             "ok2": (_speechlike(2), "spoof"), "ok3": (_speechlike(4), "bonafide")}
    res = _run(tmp_path, _manifest(tmp_path, clips), _tiny(tmp_path / "t.pth"), out=str(tmp_path / "r"),
               prepare_on=prepare_on)
    p = res.problems[res.problems["stage"] == "level"]
    assert set(p["family"]) == {"", "white-noise"}
    clip = p[p["family"] == ""].set_index("utt_id")["reason"]
    assert "silent: RMS -inf dBFS" in clip["silent"] and "every sample is zero" in clip["silent"]
    assert "only 1 samples (0.1 ms)" in clip["one"]
    assert "the channels cancel in the mono mix" in clip["cancel"] and "-inf dBFS" in clip["cancel"]
    assert not {"ok1", "ok2", "ok3"} & set(p["utt_id"])
    cond = p[p["family"] == "white-noise"].set_index("utt_id")["reason"]
    assert set(cond.index) == {"silent", "cancel"} and cond.str.contains("left this clip unchanged").all()
    n = res.results.set_index("family")["n_warnings"]
    assert n["clean"] == 3 and n["white-noise"] == 3
    assert len(res.scores) == 2 * 6   # warned, still scored
    on_disk = pd.read_csv(tmp_path / "r" / "results.csv")
    assert list(on_disk["n_warnings"]) == [3, 3]


# ---- items 7 and 8: bench score ---------------------------------------------------------------------------
def test_score_says_a_nan_is_not_finite_and_warns_about_loud_floats(tmp_path, capsys, caplog):
    ok = tmp_path / "ok.wav"
    sf.write(ok, _speechlike(1), 16000)
    nan_ckpt = _tiny(tmp_path / "nan.pth", float("nan"))
    rc = main(["score", "--model", TINY, "--checkpoint", nan_ckpt, "--device", "cpu", "--json", str(ok)])
    row = json.loads(capsys.readouterr().out)[0]
    assert rc == 1 and row["score"] is None and "non-finite score (nan)" in row["error"]

    loud = tmp_path / "loud.wav"
    sf.write(loud, 100 * _speechlike(2), 16000, subtype="FLOAT")
    rc = main(["score", "--model", TINY, "--checkpoint", _tiny(tmp_path / "t.pth"), "--device", "cpu", "--json",
               str(loud)])
    row = json.loads(capsys.readouterr().out)[0]
    assert rc == 0 and np.isfinite(row["score"]) and "far above full scale" in row["warning"]
    assert any("far above full scale" in r.message for r in caplog.records)


def test_score_refuses_a_file_longer_than_max_seconds(tmp_path, capsys):
    long = tmp_path / "long.flac"
    sf.write(long, np.tile(_speechlike(1), 6), 16000)   # 3 s
    args = ["score", "--model", TINY, "--checkpoint", _tiny(tmp_path / "t.pth"), "--device", "cpu", "--json"]
    assert main(args + ["--max-seconds", "1", str(long)]) == 1
    row = json.loads(capsys.readouterr().out)[0]
    assert "more than the limit of 1 s (--max-seconds" in row["error"]
    assert main(args + ["--max-seconds", "0", str(long)]) == 0   # 0: no limit


# ---- item 16: no EER anywhere -----------------------------------------------------------------------------------
def test_a_run_without_any_eer_exits_non_zero_saying_why(tmp_path, capsys):
    clips = {f"c{i}": (_speechlike(i), "bonafide") for i in range(3)}   # one class only
    rc = main(["run", "--suite", _suite(tmp_path), "--model", TINY, "--checkpoint", _tiny(tmp_path / "t.pth"),
               "--data", _manifest(tmp_path, clips), "--workers", "0", "--device", "cpu", "--out",
               str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 1 and "no condition has an EER" in err and "3 bona fide and 0 spoof" in err
    assert (tmp_path / "r" / "results.csv").exists()


def test_the_summary_says_why_a_cell_has_no_eer():
    from types import SimpleNamespace

    from bench.commands.summary import SECTIONS, missing_eer

    results = pd.DataFrame([{"model": "m", "family": "clean", "severity": 0, "n_bonafide": 3, "n_spoof": 3,
                             "eer": 0.1}, {"model": "m", "family": "mp3", "severity": 2, "n_bonafide": 3,
                                           "n_spoof": 0, "eer": float("nan")}])
    notes = missing_eer(SimpleNamespace(results=results), {}).notes
    assert notes == ["EER –: m mp3@2 has 3 bona fide and 0 spoof scores; an EER needs both classes"]
    assert missing_eer in SECTIONS and missing_eer(SimpleNamespace(results=results.iloc[:1]), {}) is None
