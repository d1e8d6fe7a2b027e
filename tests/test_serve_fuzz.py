"""Fuzzing the service (hypothesis): random bodies, random request heads (methods, paths, header names and values,
framing) and random stream chunks thrown at `bench serve` in a subprocess. Every answer must be a score or a named JSON
error with a status that says which, and the server's peak memory must stay bounded."""
import json
import socket
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from _served import Served

TINY = "benchmarks.tiny_detector:TinyDetector"
STATUS = {200, 400, 404, 405, 408, 413, 422, 431, 503}
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def vm(pid: int, key: str) -> int:
    """VmRSS / VmHWM of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    from benchmarks.tiny_detector import write_checkpoint

    folder = tmp_path_factory.mktemp("fuzz")
    ckpt = write_checkpoint(folder / "tiny.pth")
    s = Served("--model", TINY, "--checkpoint", str(ckpt), "--max-bytes", "65536", "--read-timeout", "0.3",
               "--header-timeout", "0.5", "--max-header-bytes", "8192", log=folder / "serve.log")
    request.addfinalizer(s.stop)
    s.rss_at_start = vm(s.proc.pid, "VmRSS")
    return s


def exchange(port: int, data: bytes) -> tuple[int, dict, bytes]:
    """Sends raw bytes, returns the final answer (1xx interim answers skipped)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass                                  # refused mid-upload: the answer is still there to read
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                assert chunk, f"closed without an answer to {data[:200]!r}"
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if 100 <= status < 200:
                buf = rest
                continue
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (ln.partition(":") for ln in head.decode("latin-1").split("\r\n")[1:])}
            n = int(headers.get("content-length", "0"))
            while len(rest) < n:
                chunk = s.recv(65536)
                assert chunk, "closed in the middle of an answer"
                rest += chunk
            return status, headers, rest[:n]


def check_answer(status: int, headers: dict, body: bytes, what: bytes) -> dict:
    assert status in STATUS, (status, body[:200], what[:200])
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, what[:200])
    doc = json.loads(body)
    if status == 200:
        assert ("score" in doc and isinstance(doc["score"], float)) or doc.get("status") == "ok", doc
    else:
        assert isinstance(doc.get("error"), str) and doc["error"], doc
    return doc


WAV_HEAD = b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00\x00\x7d\x00\x00\x02\x00" \
           b"\x10\x00data\x00\x08\x00\x00"
bodies = st.one_of(st.binary(max_size=3000), st.binary(max_size=70_000).map(lambda b: WAV_HEAD + b),
                   st.sampled_from([b"fLaC", b"OggS", b"ID3\x03", b"\xff\xfb"]).flatmap(
                       lambda magic: st.binary(max_size=5000).map(lambda b: magic + b)))


@FUZZ
@given(body=bodies)
def test_random_bodies_get_a_score_or_a_named_error(server, body):
    req = (f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    status, headers, answer = exchange(server.port, req)
    doc = check_answer(status, headers, answer, req)
    assert status in (200, 400, 408, 413, 422), doc   # 408: a body not read within 0.3 s on a loaded machine
    if len(body) > 65536:
        assert status == 413


token = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=1, max_size=20)
header_value = st.one_of(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
                         st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                         st.integers(-5, 10**12).map(str))
heads = st.fixed_dictionaries({
    "method": st.one_of(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]), token),
    "path": st.one_of(st.sampled_from(["/health", "/score", "/stream", "/", "/score/", "//score"]),
                      st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40).map(lambda t: "/" + t)),
    "headers": st.lists(st.tuples(st.one_of(token, st.sampled_from(["Content-Length", "Transfer-Encoding",
                                                                    "Expect", "Connection", "Upgrade"])),
                                  header_value), max_size=8),
    "body": st.binary(max_size=300),
})


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(h=heads)
def test_random_heads_get_json_answers(server, h):
    lines = [f"{h['method']} {h['path']} HTTP/1.1", "Host: x"] + [f"{k}: {v}" for k, v in h["headers"]]
    req = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + h["body"]
    status, headers, answer = exchange(server.port, req)
    check_answer(status, headers, answer, req)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(["f32le", "s16le"]), chunks=st.lists(st.binary(min_size=1, max_size=9000), max_size=6),
       end=st.booleans())
def test_random_stream_chunks_get_windows_or_a_named_error(server, fmt, chunks, end):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{server.port}/stream?format={fmt}", open_timeout=10) as ws:
        try:
            for c in chunks:
                ws.send(c)
            ws.send("end" if end else "stop")
        except ConnectionClosed:
            pass                                    # closed for a reason already sent
        msgs = []
        try:
            while True:
                msgs.append(json.loads(ws.recv(timeout=10)))
        except ConnectionClosed:
            pass
    assert msgs, "no answer at all"
    for m in msgs[:-1]:
        assert set(m) >= {"start_s", "end_s"} and ("score" in m or "error" in m), m
    last = msgs[-1]
    assert last["done"] is True and (("error" in last) != ("windows" in last)), last


def test_memory_stayed_bounded(server):
    """Run after the fuzzing above (same module): the server's peak resident memory grew by less than 150 MB over
    what it held when it started, whatever it was sent."""
    peak = vm(server.proc.pid, "VmHWM")
    assert peak - server.rss_at_start < 150 * 2**20, (peak, server.rss_at_start)
    assert server.proc.poll() is None
    rng = np.random.default_rng(0)   # and it still scores
    from _served import post
    from models.remote import wav_bytes

    status, doc = post(server.url + "/score", wav_bytes(rng.standard_normal(1600).astype(np.float32) * 0.1, 16000))
    assert status == 200 and isinstance(doc["score"], float)
