"""Where issue 26's guarantees meet the hardened service (bench/serve/): a 422 (the service's detector gave a
non-finite score) is that clip's non-finite score in a run, not a failure of the service nor an outage; /health's
config_sha256 binds a run and changes with what determines the scores; ``--max-seconds`` bounds what /score
decodes (400 before decoding); ``bench score --timeline`` honours ``--max-seconds``."""
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from _served import InThread, post
from bench import api
from bench.serve.app import Service
from models import LoadedDetector
from models.base import Card, Detector
from models.remote import wav_bytes


class LoudIsNaN(Detector):
    """Scores a window by its mean; NaN for a window whose peak is above 0.9 (a real forward, no service logic)."""

    nb_samp = 1600

    def forward(self, wav):
        m = wav.mean(1)
        return torch.where(wav.abs().amax(1) > 0.9, torch.full_like(m, float("nan")), m)


def _service(**kw) -> Service:
    ld = LoadedDetector("loud", LoudIsNaN(), Card(name="loud", architecture="loud", config={}), None, None)
    return Service(ld, batch_wait_ms=0, **kw)


@pytest.fixture(scope="module")
def served():
    srv = InThread(_service())
    yield srv
    srv.stop()


def test_a_422_is_that_clips_nan_and_the_others_are_scored(served):
    from models import load_detector

    det = load_detector(served.url + "?retries=0&concurrency=2").detector
    before = det.requests   # /health at load
    rows = torch.stack([torch.full((1600,), 0.25), torch.full((1600,), 0.95), torch.full((1600,), -0.5)])
    got = det.score(rows).numpy()
    assert np.isnan(got[1]) and got[0] == pytest.approx(0.25, abs=1e-6) and got[2] == pytest.approx(-0.5, abs=1e-6)
    assert det.requests - before == 3   # a 422 is an answer: not retried


def test_a_run_records_the_422_clip_as_nonfinite_and_completes(served, tmp_path):
    rows = []
    for i, (label, level) in enumerate([("bonafide", 0.3), ("bonafide", 0.2), ("spoof", -0.3), ("spoof", -0.2),
                                        ("spoof", 0.95)]):
        p = tmp_path / f"c{i}.wav"
        sf.write(p, np.full(1600, level, np.float32), 16000, subtype="FLOAT")
        rows.append({"utt_id": f"c{i}", "path": str(p), "label": label})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "s.yaml").write_text("name: s\nconditions:\n  - {family: gain, severities: [1]}\n")
    res = api.run(str(tmp_path / "s.yaml"), models=(served.url + "?retries=0",), data=str(tmp_path / "m.csv"),
                  workers=0, device="cpu", n_boot=10, out=str(tmp_path / "run"), progress=False)
    assert res.provenance["status"] == "complete"
    probs = res.problems
    bad = probs[probs["stage"] != "level"]
    assert set(bad["stage"]) == {"nonfinite"} and set(bad["utt_id"]) == {"c4"}, bad
    clean = res.results[res.results["family"] == "clean"].iloc[0]
    assert clean["n_bonafide"] == 2 and clean["n_spoof"] == 2 and clean["eer"] == 0.0


def test_health_digest_follows_what_determines_the_scores():
    a, b = _service().health(), _service(policy="full").health()
    same = _service(max_queue=3, max_seconds=5).health()
    assert a["config_sha256"] != b["config_sha256"]            # another input policy: other scores
    assert a["config_sha256"] == same["config_sha256"]         # limits decide what is answered, not the score
    assert a["max_seconds"] == 60.0 and same["max_seconds"] == 5.0


def test_score_refuses_audio_longer_than_max_seconds_before_decoding():
    srv = InThread(_service(max_seconds=1.0))
    try:
        status, doc = post(srv.url + "/score", wav_bytes(np.full(32000, 0.25, np.float32), 16000))   # 2 s
        assert status == 400 and "max" in doc["error"].lower() and "second" in doc["error"].lower(), doc
        status, doc = post(srv.url + "/score", wav_bytes(np.full(8000, 0.25, np.float32), 16000))    # 0.5 s
        assert status == 200 and doc["score"] == pytest.approx(0.25, abs=1e-6)
    finally:
        srv.stop()
    with pytest.raises(ValueError, match="--max-seconds"):
        _service(max_seconds=0)


def test_serve_cli_passes_max_seconds(monkeypatch):
    import bench.serve.app as app
    from bench.cli import main

    seen = {}
    monkeypatch.setattr(app, "serve", lambda *a, **kw: seen.update(kw))
    assert main(["serve", "--model", "aasist-l", "--max-seconds", "12.5"]) == 0 and seen["max_seconds"] == 12.5
    assert main(["serve", "--model", "aasist-l", "--max-seconds", "0"]) == 0 and seen["max_seconds"] is None
    assert main(["serve", "--model", "aasist-l"]) == 0 and seen["max_seconds"] == 60.0


def test_timeline_honours_max_seconds(tmp_path, capsys):
    from bench.cli import main

    p, ckpt = tmp_path / "long.wav", tmp_path / "tiny.pth"
    sf.write(p, np.zeros(16000 * 3, np.float32), 16000)
    torch.save({"scale": torch.tensor(1.0)}, ckpt)
    args = ["score", "--model", "benchmarks.tiny_detector:TinyDetector", "--checkpoint", str(ckpt), "--device", "cpu",
            "--timeline", "--json", str(p)]
    assert main(args + ["--max-seconds", "1"]) == 1
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["timeline"] == [] and "3.0 s of audio, more than the limit of 1 s" in doc["error"]
    assert main(args) == 0   # the default limit (600 s) reads it
    (doc,) = json.loads(capsys.readouterr().out)
    assert len(doc["timeline"]) >= 5 and not doc.get("error")
