"""Starts `bench serve` as a real subprocess on a free loopback port (for the service tests)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """``bench serve ARGS`` on 127.0.0.1:<free port>; ``stop()`` ends it (tests call it in a finalizer)."""

    def __init__(self, *args: str, log: Path, timeout: float = 240.0, port: int | None = None):
        self.port = port or free_port()   # a given port: serve something (else) where a service was before
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1"}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "serve", "--port", str(self.port),
                                          "--device", "cpu", *args], cwd=ROOT, env=env, stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bench serve exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    self.health = json.loads(r.read())
                    return
            except OSError:
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"bench serve did not answer in {timeout} s:\n{self.log.read_text()}")
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def post(url: str, body: bytes, timeout: float = 60.0) -> tuple[int, dict]:
    """POST raw bytes; (status, JSON answer) whatever the status."""
    import urllib.error

    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class InThread:
    """A real uvicorn server (bench/serve's configuration and connection limits) for a ``Service`` built in this
    process, on a thread, on 127.0.0.1:<free port>; ``stop()`` ends it."""

    def __init__(self, service, timeout: float = 30.0):
        import threading

        import uvicorn

        from bench.serve.app import create_app, server_config

        self.service = service
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/stream"
        self.server = uvicorn.Server(server_config(create_app(service), service, "127.0.0.1", self.port, "warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.time() > deadline:
                self.stop()
                raise RuntimeError("the in-thread server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
