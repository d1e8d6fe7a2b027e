"""Peak memory of `bench run` against the size of the manifest.

    python benchmarks/memory.py [--sizes 2000 20000] [--workers 1] [--severities 3]

Writes a few tiny real audio files and a CSV manifest of N rows pointing at them under different
utt_ids (the runner does not dedupe by path), makes a checkpoint for the trivially cheap
``benchmarks.tiny_detector:TinyDetector``, and runs ``bench.run.runner.run`` on a suite of clean plus
``--severities`` levels of ``gain`` (default 3: four conditions, so per-condition bookkeeping shows)
in a fresh child process per size. The child reports its own peak RSS (the runner's process: getrusage
RUSAGE_SELF), its peak before the results step (VmHWM when ``_finish`` starts: reading, scoring and
storing) and the largest peak of its worker processes (their VmHWM, sampled every 50 ms: getrusage's
RUSAGE_CHILDREN would report the moment between fork and exec, when a child still maps the parent). The runner's peak should not
grow with N beyond the per-utterance bookkeeping.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, resource, sys, threading, time
sys.path.insert(0, {root!r})
import bench.run.runner as runner

def hwm_mb(pid="self"):
    with open(f"/proc/{{pid}}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0

workers = {{}}
def sample_workers():  # VmHWM of each worker after its exec (getrusage would count the fork's copy of us)
    me = os.getpid()
    mine = open(f"/proc/{{me}}/cmdline", "rb").read()
    while True:
        try:
            kids = open(f"/proc/{{me}}/task/{{me}}/children").read().split()
            for pid in kids:
                try:
                    if open(f"/proc/{{pid}}/cmdline", "rb").read() == mine:
                        continue  # forked but not yet exec'd: still our own memory image
                    workers[pid] = max(workers.get(pid, 0.0), hwm_mb(pid))
                except OSError:
                    pass
        except OSError:
            pass
        time.sleep(0.05)
threading.Thread(target=sample_workers, daemon=True).start()

phase = {{}}
finish = runner._finish
def timed_finish(*a, **k):  # the peak so far = the peak of reading, scoring and storing
    phase["before_results_mb"] = hwm_mb()
    return finish(*a, **k)
runner._finish = timed_finish
t = time.perf_counter()
res = runner.run(runner.RunConfig(suite={suite!r}, models=("benchmarks.tiny_detector:TinyDetector",),
                                  checkpoint={ckpt!r}, data={manifest!r}, out={out!r}, workers={workers},
                                  batch_size=64, n_boot={n_boot}))
wall = time.perf_counter() - t
print(json.dumps({{"n_scores": res.provenance["n_scores"], "wall_s": wall, **phase,
                  "worker_hwm_mb": max(workers.values(), default=0.0),
                  "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""


def make_inputs(folder: Path, sizes: list[int], n_files: int = 4) -> dict[int, Path]:
    import soundfile as sf

    rng = np.random.default_rng(0)
    for i in range(n_files):
        sf.write(folder / f"tiny{i}.wav", (rng.normal(0, 0.1, 1600 + 160 * i)).astype(np.float32), 16000,
                 subtype="PCM_16")
    manifests = {}
    for n in sizes:
        m = folder / f"manifest_{n}.csv"
        with open(m, "w") as f:
            f.write("path,label,utt_id\n")
            for k in range(n):
                f.write(f"tiny{k % n_files}.wav,{'bonafide' if k % 2 else 'spoof'},u{k:06d}\n")
        manifests[n] = m
    return manifests


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--severities", type=int, default=3, help="gain severities beside clean (0: clean only)")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs (bench run's default)")
    ap.add_argument("--json", help="write the figures to this file")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from benchmarks.tiny_detector import write_checkpoint

    folder = Path(tempfile.mkdtemp(prefix="memory-bench-"))
    manifests = make_inputs(folder, a.sizes)
    ckpt = write_checkpoint(folder / "tiny.pth")
    suite = folder / "memory.yaml"
    suite.write_text("name: memory\nconditions:\n" + (
        f"  - {{family: gain, severities: {list(range(1, a.severities + 1))}}}\n" if a.severities else "  []\n"))
    rows = []
    for n in a.sizes:
        code = CHILD.format(root=str(ROOT), ckpt=str(ckpt), manifest=str(manifests[n]), out=str(folder / f"run_{n}"),
                            workers=a.workers, n_boot=a.n_boot, suite=str(suite))
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"run of {n} utterances failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r.update(n=n, process_s=time.perf_counter() - t)
        rows.append(r)
        print(f"{n:6d} utterances: {r['n_scores']} scores in {r['wall_s']:.1f} s; runner peak RSS "
              f"{r['self_maxrss_mb']:.0f} MB ({r['before_results_mb']:.0f} MB before the results step), "
              f"largest worker {r['worker_hwm_mb']:.0f} MB")
    small, big = rows[0], rows[-1]
    for key, what in (("self_maxrss_mb", "whole run"), ("before_results_mb", "read+score+store")):
        growth = big[key] - small[key]
        per_utt = growth * 1024 / max(big["n"] - small["n"], 1)
        print(f"runner peak RSS, {what}: {small[key]:.0f} MB at {small['n']} -> {big[key]:.0f} MB at "
              f"{big['n']} utterances: {growth:+.0f} MB ({per_utt:.1f} KB per extra utterance); "
              f"{big[key] / small[key]:.2f}x for {big['n'] / small['n']:.0f}x the manifest")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
