"""`bench serve` as a real subprocess on loopback, and the remote detector (`--model http://...`) that talks to it."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from _served import Served, post
from bench import api
from models import load_detector
from models.remote import NotDifferentiable, RemoteError, parse_spec

DEMO = Path(__file__).resolve().parents[1] / "bench" / "data" / "demo" / "audio"
FILES = [str(DEMO / f"D000{i}.flac") for i in (1, 4, 5)]
TINY = "benchmarks.tiny_detector:TinyDetector"


@pytest.fixture(scope="module")
def aasist_l(request, tmp_path_factory):
    s = Served("--model", "aasist-l", "--max-bytes", "400000", log=tmp_path_factory.mktemp("srv") / "serve.log")
    request.addfinalizer(s.stop)
    return s


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    from benchmarks.tiny_detector import write_checkpoint

    return str(write_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.pth"))


@pytest.fixture(scope="module")
def tiny_decision(request, tmp_path_factory, tiny_ckpt):
    s = Served("--model", TINY, "--checkpoint", tiny_ckpt, "--output", "decision", "--threshold", "0",
               log=tmp_path_factory.mktemp("srv") / "serve.log")
    request.addfinalizer(s.stop)
    return s


def test_health_names_the_model(aasist_l):
    h = aasist_l.health
    assert h["status"] == "ok" and h["model"] == "aasist-l" and h["nb_samp"] == 64600 and h["sample_rate"] == 16000
    assert h["checkpoint_sha256"].startswith("814331d0")


def test_remote_scores_equal_the_local_model(aasist_l):
    remote = api.score_files(aasist_l.url, FILES, device="cpu")
    local = api.score_files("aasist-l", FILES, device="cpu")
    assert remote["error"].isna().all()
    np.testing.assert_allclose(remote["score"].to_numpy(), local["score"].to_numpy(), atol=1e-4)
    assert remote["score"].std() > 0.1            # three different clips, three different scores
    # the service reads any format itself: the FLAC file's own bytes as the body
    status, doc = post(aasist_l.url + "/score", Path(FILES[0]).read_bytes())
    assert status == 200 and abs(doc["score"] - local["score"][0]) < 1e-4


def test_bad_bodies_are_refused_with_the_reason(aasist_l):
    status, doc = post(aasist_l.url + "/score", os.urandom(5000))
    assert status == 400 and "unreadable audio" in doc["error"] and "bench-serve-" not in doc["error"]
    status, doc = post(aasist_l.url + "/score", b"")
    assert status == 400 and "empty body" in doc["error"]
    status, doc = post(aasist_l.url + "/score", os.urandom(400001))
    assert status == 413 and "400000" in doc["error"]


def test_remote_client_reports_a_refusal(aasist_l):
    det = load_detector(aasist_l.url + "?retries=0").detector
    with pytest.raises(RemoteError, match="HTTP 400.*non-finite"):
        det.score(torch.full((1, 1000), float("nan")))


def test_gradient_attacks_refuse_a_remote_detector(aasist_l):
    from attacks import ATTACKS

    det = load_detector(aasist_l.url).detector
    x = torch.zeros(1, 64600).uniform_(-0.1, 0.1)
    with pytest.raises(NotDifferentiable, match="black-box attack"):
        ATTACKS.get("pgd-linf").at(1, steps=1)(det, x, torch.tensor([0]), torch.Generator().manual_seed(0))


def test_request_budget(tiny_decision):
    det = load_detector(tiny_decision.url + "?budget=3&output=decision").detector   # /health is the first
    det.score(torch.zeros(2, 1600))
    with pytest.raises(RemoteError, match="budget of 3 requests"):
        det.score(torch.zeros(1, 1600))


def test_decision_only_service(tiny_decision, tiny_ckpt):
    local = load_detector(TINY, checkpoint=tiny_ckpt).detector
    x = torch.linspace(-0.5, 0.5, 6)[:, None] * torch.ones(6, 1600)    # means below and above 0
    want = torch.where(local.score(x) >= 0, 1.0, -1.0)
    det = load_detector(tiny_decision.url + "?output=decision").detector
    assert torch.equal(det.score(x), want)
    with pytest.raises(RemoteError, match="--remote-output decision"):
        load_detector(tiny_decision.url).detector.score(x[:1])


def test_killed_server_gives_a_clear_error(tmp_path, tiny_ckpt):
    s = Served("--model", TINY, "--checkpoint", tiny_ckpt, log=tmp_path / "serve.log")
    try:
        spec = s.url + "?retries=1&backoff=0.01&timeout=5"
        det = load_detector(spec).detector
        assert det.score(torch.zeros(1, 1600)).shape == (1,)
    finally:
        s.stop()
    with pytest.raises(RemoteError, match=rf"{s.url} cannot be reached .* after 2 tries; is `bench serve`"):
        det.score(torch.zeros(1, 1600))
    with pytest.raises(RemoteError, match=s.url):
        load_detector(spec)


def test_spec_options_are_checked():
    assert parse_spec("http://h:1/api/?timeout=2&output=decision") == ("http://h:1/api",
                                                                      {"timeout": 2.0, "output": "decision"})
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        parse_spec("http://h:1?colour=red")
    with pytest.raises(ValueError, match="timeout"):
        parse_spec("http://h:1?timeout=soon")
    with pytest.raises(ValueError, match="drop --checkpoint"):
        load_detector("http://127.0.0.1:9", checkpoint="x.pth")


def test_loopback_is_the_default_and_other_hosts_warn():
    from bench.cli import build_parser
    from bench.serve.app import is_loopback

    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")



def test_binding_elsewhere_is_logged_as_an_explicit_choice(caplog):
    from bench.serve.app import serve

    with pytest.raises(Exception, match="no-such-model"):   # the warning comes first, then the model fails
        serve("no-such-model", host="0.0.0.0", port=1, device="cpu")
    assert "explicit choice" in caplog.text and "0.0.0.0" in caplog.text


def test_busy_service_answers_503_and_the_client_retries():
    """One scoring slot and no queue: a second request is refused with 503 + Retry-After while the first scores;
    the remote client retries it and gets its score once the slot is free."""
    import threading
    import time

    import uvicorn

    from _served import free_port
    from bench.serve.app import Service, create_app
    from models import LoadedDetector
    from models.base import Card, Detector
    from models.remote import RemoteDetector, wav_bytes

    entered, gate = threading.Event(), threading.Event()

    class Slow(Detector):
        nb_samp = 1600

        def forward(self, wav):
            entered.set()
            gate.wait(30)
            return wav.mean(1)

    ld = LoadedDetector("slow", Slow(), Card(name="slow", architecture="slow", config={}), None, None)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(Service(ld, max_concurrent=1, max_queue=0)), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        while not server.started:
            time.sleep(0.05)
        body = wav_bytes(np.full(1600, 0.25, np.float32), 16000)
        first: list = []
        t1 = threading.Thread(target=lambda: first.append(post(url + "/score", body)))
        t1.start()
        assert entered.wait(30)
        status, doc = post(url + "/score", body)
        assert status == 503 and "busy" in doc["error"]
        det = RemoteDetector(url, retries=4, backoff=0.05)
        second: list = []
        t2 = threading.Thread(target=lambda: second.append(det.score(torch.full((1, 1600), 0.5))))
        t2.start()
        while det.requests < 2 and t2.is_alive():   # refused once (503), now retrying
            time.sleep(0.02)
        gate.set()
        t2.join(30)
        assert det.requests >= 2 and abs(float(second[0][0]) - 0.5) < 1e-6
        t1.join(30)
        assert first[0][0] == 200 and abs(first[0][1]["score"] - 0.25) < 1e-6
    finally:
        gate.set()
        server.should_exit = True
        thread.join(10)
