"""The service cannot be flooded, and every answer is JSON (issue items 10-12), against a real uvicorn server on
loopback with raw sockets where a well-behaved client would not do what is tested: 404/405/500 and a non-finite score
answer JSON; a busy service refuses before reading a body; bodies in flight are bounded; slow heads and bodies get
408, oversized heads 431, garbage 400."""
import json
import socket
import threading
import time

import numpy as np
import pytest
import torch

from _served import InThread, post
from bench.serve.app import Service
from models import LoadedDetector
from models.base import Card, Detector
from models.remote import wav_bytes

BODY = wav_bytes(np.full(1600, 0.25, np.float32), 16000)


class Gate(Detector):
    """Scores a window by its mean; holds every forward until ``gate`` opens (NaN for a mean of exactly 0.5, an
    exception for 0.75)."""

    nb_samp = 1600

    def __init__(self):
        super().__init__()
        self.entered, self.gate = threading.Event(), threading.Event()
        self.gate.set()

    def forward(self, wav):
        self.entered.set()
        self.gate.wait(30)
        m = wav.mean(1)
        if torch.any((m - 0.75).abs() < 1e-6):
            raise RuntimeError("the detector broke")
        return torch.where((m - 0.5).abs() < 1e-6, torch.full_like(m, float("nan")), m)


def loaded(det: Detector) -> LoadedDetector:
    return LoadedDetector("gate", det, Card(name="gate", architecture="gate", config={}), None, None)


def raw(port: int, data: bytes, wait: float = 10.0) -> tuple[int, dict, bytes]:
    """Sends ``data`` as it is and reads the answer: (status, headers, body); the answer must be complete."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        return read_answer(s)


def read_answer(s: socket.socket) -> tuple[int, dict, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, f"connection closed without an answer (got {buf!r})"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = s.recv(65536)
        assert chunk, "connection closed in the middle of the answer"
        body += chunk
    return int(lines[0].split()[1]), headers, body[:n]


@pytest.fixture()
def gate(request):
    det = Gate()
    srv = InThread(Service(loaded(det), max_concurrent=1, max_queue=0, max_bytes=60_000, max_body_memory=100_000,
                           read_timeout=1.0, header_timeout=1.0, max_header_bytes=4096, threshold=0.1))
    request.addfinalizer(srv.stop)
    request.addfinalizer(det.gate.set)
    return srv, det


def test_every_error_is_json(gate):
    srv, _det = gate
    status, h, body = raw(srv.port, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 404 and h["content-type"] == "application/json" and "no such endpoint" in json.loads(body)["error"]
    status, h, body = raw(srv.port, b"GET /score/ HTTP/1.1\r\nHost: x\r\n\r\n")   # no 307 with an empty body
    assert status == 404 and "no such endpoint '/score/'" in json.loads(body)["error"]
    status, h, body = raw(srv.port, b"GET /score HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 405 and "GET is not allowed on /score" in json.loads(body)["error"] and "POST" in h["allow"]
    status, doc = post(srv.url + "/score", wav_bytes(np.full(1600, 0.5, np.float32), 16000))
    assert status == 422 and "non-finite score (nan)" in doc["error"]
    status, doc = post(srv.url + "/score", wav_bytes(np.full(1600, 0.75, np.float32), 16000))
    assert status == 500 and doc["error"] == "internal error: RuntimeError: the detector broke"
    status, doc = post(srv.url + "/score", BODY)
    assert status == 200 and abs(doc["score"] - 0.25) < 1e-6


def test_a_non_finite_threshold_is_refused_at_start():
    from bench.cli import build_parser

    for bad in ("nan", "inf", "-inf"):
        with pytest.raises(ValueError, match="--threshold must be a finite number"):
            Service(loaded(Gate()), threshold=float(bad))
        with pytest.raises(SystemExit):
            build_parser().parse_args(["serve", "--threshold", bad])


def test_a_busy_service_refuses_before_reading_the_body(gate):
    """One slot, no queue: while a request scores, another that declares a body but sends none gets 503 at once."""
    srv, det = gate
    det.gate.clear()
    first: list = []
    t = threading.Thread(target=lambda: first.append(post(srv.url + "/score", BODY)))
    t.start()
    assert det.entered.wait(10)
    head = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: 50000\r\n\r\n"
    t0 = time.monotonic()
    status, h, body = raw(srv.port, head, wait=5)      # not one byte of the 50000 sent
    assert status == 503 and h["retry-after"] == "1" and "busy: 1 requests are in flight" in json.loads(body)["error"]
    assert time.monotonic() - t0 < 2
    det.gate.set()
    t.join(10)
    assert first[0][0] == 200


def test_bodies_in_flight_are_bounded(request):
    """--max-body-memory 100000: a slow upload holding 60000 bytes leaves no room for a second of 60000 (503, before
    its body is read), while a small one still fits."""
    srv = InThread(Service(loaded(Gate()), max_concurrent=2, max_queue=4, max_bytes=60_000, max_body_memory=100_000,
                           read_timeout=5.0))
    request.addfinalizer(srv.stop)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as slow:
        slow.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n" + b"\0" * 100)
        time.sleep(0.3)
        head = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n"
        status, _h, body = raw(srv.port, head, wait=5)
        assert status == 503 and "bytes of request bodies are in flight" in json.loads(body)["error"]
        status, doc = post(srv.url + "/score", BODY)
        assert status == 200
        status, _h, body = read_answer(slow)          # the slow one: its whole body did not come in time
        assert status == 408 and "--read-timeout" in json.loads(body)["error"]


def test_slow_heads_and_bodies_get_408(gate):
    srv, _det = gate
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        t0 = time.monotonic()
        for b in b"GET /hea":                        # one byte at a time, too slowly
            s.sendall(bytes([b]))
            time.sleep(0.2)
        status, h, body = read_answer(s)
        assert status == 408 and "request head did not arrive within 1 s" in json.loads(body)["error"]
        assert time.monotonic() - t0 < 3 and h["connection"] == "close"
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:   # a silent connection, too
        status, _h, _b = read_answer(s)
        assert status == 408
    status, _h, body = raw(srv.port, b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    assert status == 408 and "the body did not arrive within 1 s" in json.loads(body)["error"]


def test_oversized_and_malformed_heads(gate):
    srv, _det = gate
    big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    status, _h, body = raw(srv.port, big)
    assert status == 431 and "exceeds 4096 bytes (--max-header-bytes)" in json.loads(body)["error"]
    status, _h, body = raw(srv.port, b"HELLO THERE\r\n\r\n")
    assert status == 400 and "malformed HTTP request" in json.loads(body)["error"]
    status, _h, body = raw(srv.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")   # the service is still fine
    assert status == 200 and json.loads(body)["status"] == "ok"
