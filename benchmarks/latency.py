"""Latency and throughput of scoring as a service: per window, per second of audio, under load, and streamed.

    python benchmarks/latency.py [--sections window,load,stream] [--models aasist,aasist-l,...] [--threads 1,2]
                                 [--clients 1,2,4,8,16] [--seconds 10] [--stream-seconds 12] [--json FILE]

Sections:

* ``window``: for every detector (official weights where the shared folder has them, else a seeded random
  initialisation: latency does not depend on the weights), on this CPU with 1 and 2 torch threads: batch-1 latency
  of one window (the detector's input length; the product's scoring path, ``Engine.score_windows``) as p50/p95/p99
  after warm-up, and the real-time factor, seconds of compute per second of audio: ``rtf`` scores each second once
  (windows back to back, batches of 8: ``--policy full:hop=<window>``), ``rtf_stream`` at a 0.5 s hop (one batch-1
  window per 0.5 s of audio: what ``/stream`` does; above 1 a stream falls behind);
* ``load``: ``bench serve --model aasist-l`` in a subprocess on loopback under a closed loop of 1, 2, 4, 8, 16
  clients (each POSTs a 4 s float WAV, waits for the answer, and again) for ``--seconds`` per level: throughput
  (requests/s) and p50/p95 latency, with dynamic batching (``--batch-wait-ms 5``) and without (0: each request
  alone, two at a time, as before);
* ``stream``: the same service's ``/stream`` at a 0.5 s hop, audio sent in real time in 0.1 s chunks by 1 and by 4
  concurrent streams: the end-to-end delay from sending the chunk that completes a window to receiving its score
  (p50/p95/max; the window's own length, 4.04 s for AASIST, comes on top of it by construction).

Goals (issue 28): ``rtf`` < 0.1 for AASIST-L on 2 threads; dynamic batching >= 1.5x the throughput at 8 clients
without raising p50 latency past 2x. The machine is whatever this runs on: say which, and its load (printed).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("aasist", "aasist-l", "rawnet2", "raw-pc-darts", "ssl-aasist", "light-darts")
HOP_S = 0.5


def pct(x, q) -> float:
    return float(np.percentile(np.asarray(x, float), q)) if len(x) else float("nan")


def build(name: str, device: str = "cpu"):
    """A detector by card name: the official checkpoint when it resolves, else the card's architecture at a
    seeded random initialisation (the global torch state is left alone)."""
    import torch

    import models

    try:
        return models.load_detector(name, device=device).detector.eval(), "official weights"
    except Exception as e:  # noqa: BLE001 - no checkpoint here: time the same architecture, randomly initialised
        card = models.CARDS.get(name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            det = models.ARCHITECTURES.get(card.architecture).from_config(card.config)
        return det.to(device).eval(), f"random init ({type(e).__name__})"


def window_latency(det, device: str, budget_s: float = 20.0, min_reps: int = 5, max_reps: int = 40,
                   warmup: int = 2) -> dict:
    """Batch-1 latency of one window (p50/p95/p99 ms), seconds per window at batch 8, and the real-time factors."""
    from bench.scoring.engine import Engine, InferenceOptions

    sr, n = int(det.sample_rate), int(det.nb_samp)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(n) * 0.1).astype(np.float32)
    e1, e8 = (Engine(det, InferenceOptions(batch_size=b), device) for b in (1, 8))
    sync = _sync(device)
    for _ in range(warmup):
        e1.score_windows([x])
    times: list[float] = []
    t_end = time.perf_counter() + budget_s
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() < t_end):
        t = time.perf_counter()
        e1.score_windows([x])
        sync()
        times.append(time.perf_counter() - t)
    e8.score_windows([x] * 8)
    batched = []
    for _ in range(max(2, min_reps // 2)):
        t = time.perf_counter()
        e8.score_windows([x] * 8)
        sync()
        batched.append((time.perf_counter() - t) / 8)
    per_window_b8 = float(np.median(batched))
    p50 = pct(times, 50)
    return {"window_s": n / sr, "reps": len(times), "p50_ms": 1e3 * p50, "p95_ms": 1e3 * pct(times, 95),
            "p99_ms": 1e3 * pct(times, 99), "b8_ms_per_window": 1e3 * per_window_b8,
            "rtf": per_window_b8 / (n / sr), "rtf_stream": p50 / HOP_S}


def _sync(device: str):
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def sec_window(a, R: dict) -> None:
    import torch

    for name in a.models.split(","):
        det, how = build(name)
        for th in (int(t) for t in a.threads.split(",")):
            torch.set_num_threads(th)
            r = window_latency(det, "cpu", budget_s=a.window_budget_s)
            r.update(model=name, weights=how, threads=th, load=os.getloadavg()[0])
            R["window"].append(r)
            print(f"{name:12s} {th} thr  batch-1 p50 {r['p50_ms']:7.1f}  p95 {r['p95_ms']:7.1f}  "
                  f"p99 {r['p99_ms']:7.1f} "
                  f"ms ({r['reps']} reps)  batch-8 {r['b8_ms_per_window']:7.1f} ms/window  RTF {r['rtf']:.3f}  "
                  f"RTF@0.5s hop {r['rtf_stream']:.2f}  [{how}; load {r['load']:.1f}]", flush=True)
            _save(a, R)
        del det
    torch.set_num_threads(a.default_threads)


class Server:
    """``bench serve`` in a subprocess on a free loopback port; ``stop()`` ends it."""

    def __init__(self, model: str, *args: str, log: Path):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.log = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "serve", "--model", model, "--device", "cpu",
                                      "--port", str(self.port), "--max-queue", "64", *args], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while True:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=5).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"bench serve did not start; see {log}")
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def closed_loop(url: str, body: bytes, clients: int, seconds: float) -> dict:
    """``clients`` threads POSTing ``body`` back to back for ``seconds``: requests/s and latency percentiles."""
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at: list[float] = []

    def client(k: int) -> None:
        start.wait()
        while time.perf_counter() < stop_at[0]:
            req = urllib.request.Request(url + "/score", data=body, method="POST")
            t = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    json.loads(r.read())
                lat[k].append(time.perf_counter() - t)
            except OSError:
                errors[k] += 1

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    stop_at.append(t0 + seconds)
    start.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = [x for l in lat for x in l]
    return {"clients": clients, "requests": len(flat), "errors": sum(errors), "wall_s": wall,
            "throughput_rps": len(flat) / wall, "p50_ms": 1e3 * pct(flat, 50), "p95_ms": 1e3 * pct(flat, 95)}


def sec_load(a, R: dict, out: Path) -> None:
    from models.remote import wav_bytes

    rng = np.random.default_rng(1)
    body = wav_bytes((rng.standard_normal(64000) * 0.1).astype(np.float32), 16000)
    for mode, wait in (("dynamic", "5"), ("off", "0")):
        srv = Server(a.load_model, "--batch-wait-ms", wait, log=out / f"serve-{mode}.log")
        try:
            closed_loop(srv.url, body, 2, 3.0)       # warm-up
            for c in (int(x) for x in a.clients.split(",")):
                r = closed_loop(srv.url, body, c, a.seconds)
                r.update(mode=mode, model=a.load_model, load=os.getloadavg()[0])
                R["load"].append(r)
                print(f"load {mode:8s} {c:2d} clients: {r['throughput_rps']:6.2f} req/s  p50 {r['p50_ms']:7.0f} ms  "
                      f"p95 {r['p95_ms']:7.0f} ms  ({r['requests']} requests, {r['errors']} errors; load "
                      f"{r['load']:.1f})", flush=True)
                _save(a, R)
        finally:
            srv.stop()


def one_stream(ws_url: str, seconds: float, chunk_s: float, seed: int) -> list[float]:
    """Streams ``seconds`` of audio in real time; the delay of each window (chunk completing it sent -> score)."""
    from websockets.sync.client import connect

    sr = 16000
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(int(seconds * sr)) * 0.1).astype(np.float32)
    step = int(chunk_s * sr)
    sent: list[float] = []
    delays: list[float] = []
    with connect(ws_url + "?rate=16000&format=f32le&hop=0.5", open_timeout=30) as ws:
        def reader() -> None:
            while True:
                m = json.loads(ws.recv(timeout=60))
                if m.get("done") or "error" in m:
                    return
                k = min(int(np.ceil(round(m["end_s"] * sr) / step)) - 1, len(sent) - 1)
                delays.append(time.perf_counter() - sent[k])

        rt = threading.Thread(target=reader, daemon=True)
        rt.start()
        t0 = time.perf_counter()
        for i, s in enumerate(range(0, len(x), step)):
            time.sleep(max(0.0, t0 + i * chunk_s - time.perf_counter()))
            sent.append(time.perf_counter())
            ws.send(x[s:s + step].tobytes())
        ws.send("end")
        rt.join(120)
    return delays[:-1]                                # the end-aligned last window waits for "end", not audio


def sec_stream(a, R: dict, out: Path) -> None:
    srv = Server(a.load_model, "--batch-wait-ms", "5", log=out / "serve-stream.log")
    try:
        ws = f"ws://127.0.0.1:{srv.port}/stream"
        for n in (1, 4):
            results: list[list[float]] = [[] for _ in range(n)]
            threads = [threading.Thread(target=lambda k=k: results[k].extend(
                one_stream(ws, a.stream_seconds, 0.1, k))) for k in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            d = [x for r in results for x in r]
            r = {"streams": n, "windows": len(d), "p50_ms": 1e3 * pct(d, 50), "p95_ms": 1e3 * pct(d, 95),
                 "max_ms": 1e3 * max(d) if d else float("nan"), "model": a.load_model, "load": os.getloadavg()[0]}
            R["stream"].append(r)
            print(f"stream x{n}: delay p50 {r['p50_ms']:6.0f} ms  p95 {r['p95_ms']:6.0f} ms  max {r['max_ms']:6.0f} ms "
                  f"({r['windows']} windows; load {r['load']:.1f})", flush=True)
            _save(a, R)
    finally:
        srv.stop()


def _save(a, R: dict) -> None:
    if a.json:
        Path(a.json).write_text(json.dumps(R, indent=2))


def targets(R: dict) -> list[str]:
    out = []
    rows = [r for r in R["window"] if r["model"] == "aasist-l" and r["threads"] == 2]
    if rows:
        v = rows[0]["rtf"]
        out.append(f"TARGET real-time factor < 0.1 for AASIST-L on 2 threads: {v:.3f} -> "
                   f"{'MET' if v < 0.1 else 'MISSED'}")
    load = {(r["mode"], r["clients"]): r for r in R["load"]}
    if ("dynamic", 8) in load and ("off", 8) in load:
        on, off = load[("dynamic", 8)], load[("off", 8)]
        gain, p50 = on["throughput_rps"] / off["throughput_rps"], on["p50_ms"] / off["p50_ms"]
        ok = gain >= 1.5 and p50 <= 2.0
        out.append(f"TARGET dynamic batching >= 1.5x throughput at 8 clients, p50 <= 2x: {gain:.2f}x, p50 "
                   f"{p50:.2f}x -> {'MET' if ok else 'MISSED'}")
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="window,load,stream")
    ap.add_argument("--models", default=",".join(MODELS), help="detectors for the window section")
    ap.add_argument("--threads", default="1,2", help="torch threads for the window section")
    ap.add_argument("--window-budget-s", type=float, default=15.0, help="timing budget per model and thread count")
    ap.add_argument("--load-model", default="aasist-l", help="the served detector of the load and stream sections")
    ap.add_argument("--clients", default="1,2,4,8,16")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds per load level")
    ap.add_argument("--stream-seconds", type=float, default=12.0)
    ap.add_argument("--out", default=str(ROOT / "runs" / "latency"), help="folder for the servers' logs")
    ap.add_argument("--json", help="write every figure here")
    a = ap.parse_args(argv)
    os.environ.setdefault("BENCH_WEIGHTS_DIR", str(ROOT.parent / "shared" / "weights"))
    a.default_threads = torch.get_num_threads()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    R = {"started": time.strftime("%F %T"), "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()[0],
         "torch": torch.__version__, "window": [], "load": [], "stream": []}
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}", flush=True)
    for sec in a.sections.split(","):
        {"window": lambda: sec_window(a, R), "load": lambda: sec_load(a, R, out),
         "stream": lambda: sec_stream(a, R, out)}[sec]()
    R["targets"] = targets(R)
    for line in R["targets"]:
        print(line)
    _save(a, R)
    return 0


if __name__ == "__main__":
    sys.exit(main())
