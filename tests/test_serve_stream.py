"""`/stream` (a real uvicorn server on loopback, a real WebSocket client) and `/metrics`: streamed window scores equal
the offline timeline's for the same audio, in any chunking and sample format; windows of concurrent streams share
forward passes; silent, too long, malformed and surplus streams are closed with a JSON reason."""
import json
import threading
import urllib.request

import numpy as np
import pytest
import torch
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from _served import InThread, post
from bench.scoring.timeline import score_timeline
from bench.serve.app import Service
from models import LoadedDetector
from models.base import Card
from models.remote import wav_bytes
from userplugin.tiny_detector import TinyDetector

SR = 16000


def tiny_loaded(seed: int = 0) -> LoadedDetector:
    det = TinyDetector().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in det.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return LoadedDetector("tiny", det, Card(name="tiny", architecture="tiny", config={}), None, "feedc0de" * 8)


def audio(seconds: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 3 * t) * rng.standard_normal(len(t)) * 0.5).astype(np.float32)


@pytest.fixture(scope="module")
def live(request):
    ld = tiny_loaded()
    srv = InThread(Service(ld, batch_wait_ms=30, stream_idle_timeout=1.0, stream_max_seconds=20, max_streams=6,
                           threshold=0.0))
    request.addfinalizer(srv.stop)
    return srv


def stream(url: str, chunks, query: str = "", text_end: bool = True) -> list[dict]:
    out = []
    with connect(url + query, open_timeout=10, close_timeout=5) as ws:
        for c in chunks:
            ws.send(c)
        if text_end:
            ws.send("end")
        while True:
            try:
                msg = json.loads(ws.recv(timeout=20))
            except ConnectionClosed:
                break
            out.append(msg)
            if msg.get("done"):
                break
    return out


def chunked(x: np.ndarray, rng: np.random.Generator, fmt: str = "f32le") -> list[bytes]:
    raw = x.astype("<f4").tobytes() if fmt == "f32le" else x.astype("<i2").tobytes()
    cuts = np.sort(rng.integers(0, len(raw), 12))
    return [raw[a:b] for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(raw)]) if b > a]   # odd byte counts too


def test_streamed_scores_equal_the_offline_timeline(live):
    wav = audio(5.3)
    offline = score_timeline(live.service.loaded.detector, wav).rows()
    msgs = stream(live.ws, chunked(wav, np.random.default_rng(0)), "?rate=16000&format=f32le&hop=0.5")
    windows, done = msgs[:-1], msgs[-1]
    assert done["done"] is True and done["windows"] == len(offline) == len(windows)
    assert abs(done["duration_s"] - len(wav) / SR) < 1e-9
    for got, want in zip(windows, offline):
        assert (got["start_s"], got["end_s"]) == (want["start_s"], want["end_s"])
        assert abs(got["score"] - want["score"]) < 1e-5
        assert got["decision"] == ("bonafide" if got["score"] >= 0 else "spoof")   # --threshold 0 given
    assert windows[-1]["end_s"] == len(wav) / SR                                  # the end-aligned last window
    assert np.ptp([w["score"] for w in windows]) > 0.01


def test_pcm16_and_another_rate(live):
    rng = np.random.default_rng(3)
    pcm = (audio(3.2, seed=4) * 32767).astype(np.int16)
    offline = score_timeline(live.service.loaded.detector, pcm.astype(np.float32) / 32768.0).rows()
    msgs = stream(live.ws, chunked(pcm, rng, "s16le"), "?format=s16le&hop=0.5")
    assert [round(m["score"], 5) for m in msgs[:-1]] == [round(w["score"], 5) for w in offline]
    # 8 kHz in: resampled on the fly to the detector's 16 kHz, windows on the 16 kHz clock
    from foundation.audio import resample

    x8 = audio(4.0, seed=5)[::2].copy()
    offline = score_timeline(live.service.loaded.detector, resample(x8, 8000, SR)).rows()
    msgs = stream(live.ws, chunked(x8, rng), "?rate=8000&hop=0.5")
    assert [(m["start_s"], m["end_s"]) for m in msgs[:-1]] == [(w["start_s"], w["end_s"]) for w in offline]
    np.testing.assert_allclose([m["score"] for m in msgs[:-1]], [w["score"] for w in offline], atol=1e-3)


def test_concurrent_streams_share_forward_passes(live):
    def metric(name: str) -> float:
        text = urllib.request.urlopen(live.url + "/metrics", timeout=10).read().decode()
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
                   or line.startswith(name + "{"))

    before_batches, before_windows = metric("bench_batch_windows_count"), metric("bench_batch_windows_sum")
    results: dict[int, list] = {}
    barrier = threading.Barrier(4)

    def client(k: int) -> None:
        wav = audio(3.0, seed=10 + k)
        with connect(live.ws, open_timeout=10) as ws:
            barrier.wait(10)
            ws.send(wav.astype("<f4").tobytes())   # every window of every stream arrives at once
            ws.send("end")
            results[k] = [json.loads(ws.recv(timeout=20)) for _ in range(6)]   # 5 windows + done

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [0, 1, 2, 3] and all(r[-1]["done"] for r in results.values())
    for k, msgs in results.items():
        want = score_timeline(live.service.loaded.detector, audio(3.0, seed=10 + k)).rows()
        np.testing.assert_allclose([m["score"] for m in msgs[:-1]], [w["score"] for w in want], atol=1e-5)
    batches = metric("bench_batch_windows_count") - before_batches
    windows = metric("bench_batch_windows_sum") - before_windows
    assert windows == 20 and batches < 20 / 2        # 20 windows in fewer than 10 forward passes: shared


def test_streams_that_misbehave_are_closed_with_a_reason(live):
    def closed(query: str = "", send=()) -> tuple[dict, int]:
        with connect(live.ws + query, open_timeout=10) as ws:
            for m in send:
                ws.send(m)
            msgs = []
            with pytest.raises(ConnectionClosed):
                while True:
                    msgs.append(json.loads(ws.recv(timeout=20)))
            assert all("error" not in m for m in msgs[:-1])   # window scores until then, the reason last
            return msgs[-1], ws.close_code

    msg, code = closed()                                               # silent client: idle timeout (1 s)
    assert msg["done"] and "no message for 1 s" in msg["error"] and code == 1008
    msg, code = closed(send=[np.zeros(21 * SR, "<f4").tobytes()[i:i + 2**19] for i in range(0, 21 * SR * 4, 2**19)])
    assert "longer than 20 s" in msg["error"] and code == 1008
    msg, code = closed("?format=wav")
    assert "format must be one of f32le, s16le" in msg["error"] and code == 1008
    msg, code = closed("?hop=nan")
    assert "hop must be" in msg["error"] and code == 1008
    msg, code = closed(send=["start"])
    assert "unknown text message 'start'" in msg["error"] and code == 1003
    msg, code = closed(send=[np.array([np.nan, 0.1], "<f4").tobytes()])
    assert "non-finite samples" in msg["error"] and code == 1003
    msg, code = closed(send=["end"])
    assert "before any audio" in msg["error"] and code == 1008


def test_surplus_streams_are_refused(request):
    srv = InThread(Service(tiny_loaded(), max_streams=1))
    request.addfinalizer(srv.stop)
    with connect(srv.ws, open_timeout=10) as first:
        first.send(np.zeros(100, "<f4").tobytes())
        with connect(srv.ws, open_timeout=10) as second:
            msg = json.loads(second.recv(timeout=10))
            assert "busy: 1 streams are open (--max-streams)" in msg["error"]
        first.send("end")
        assert json.loads(first.recv(timeout=10))["start_s"] == 0.0


def test_metrics_in_prometheus_format(live):
    status, _doc = post(live.url + "/score", wav_bytes(audio(1.0), SR))
    assert status == 200
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as e:   # a random path: counted as "other", never its own label
        urllib.request.urlopen(live.url + "/nope-" + "x" * 50, timeout=10)
    assert e.value.code == 404
    text = urllib.request.urlopen(live.url + "/metrics", timeout=10).read().decode()
    from prometheus_client.parser import text_string_to_metric_families

    fams = {f.name: f for f in text_string_to_metric_families(text)}
    info = fams["bench_model_info"].samples[0]
    assert info.labels["checkpoint_sha256"] == "feedc0de" * 8 and info.labels["model"] == "tiny" and info.value == 1
    req = {(s.labels["endpoint"], s.labels["status"]): s.value for s in fams["bench_requests"].samples
           if s.name == "bench_requests_total"}
    assert req[("/score", "200")] >= 1 and req[("other", "404")] >= 1
    assert not any(ep.startswith("/nope") for ep, _ in req)
    assert {"bench_request_duration_seconds", "bench_requests_in_flight", "bench_batch_queue_windows",
            "bench_active_streams", "bench_stream_delay_seconds", "bench_batch_windows"} <= set(fams)
    assert fams["bench_active_streams"].samples[0].value == 0
