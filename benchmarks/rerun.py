"""A warm re-run (everything already stored) against the cold run, same command, same --out folder.

    python benchmarks/rerun.py [--suite benchmarks/suites/pipeline.yaml] [--limit 96] [--model aasist]

Runs ``bench run --suite S --limit N --out DIR`` twice as subprocesses, timing each whole command:
the first computes every score; the second finds them all in DIR's store and only re-derives the
tables. Prints both times and their ratio (target: the warm run >= 20x faster). The ratio grows with
the work in the cold run (the warm run's cost is mostly fixed: interpreter, torch import, model load,
bootstrap confidence intervals), so the size of the cold run is printed beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("BENCH_WEIGHTS_DIR", str(ROOT.parent / "shared" / "weights"))
DEFAULT_SUITE = str(Path(__file__).resolve().parent / "suites" / "pipeline.yaml")


def timed_run(cmd: list[str]) -> tuple[float, dict]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc.stderr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=DEFAULT_SUITE)
    ap.add_argument("--limit", type=int, default=96)
    ap.add_argument("--model", default="aasist")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--warm-runs", type=int, default=3, help="warm re-runs (the median is quoted)")
    ap.add_argument("--json", help="write the figures to this file")
    a = ap.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="rerun-bench-")) / "run"
    cmd = [sys.executable, "-m", "bench.cli", "run", "--suite", a.suite, "--limit", str(a.limit), "--model", a.model,
           "--workers", str(a.workers), "--device", "cpu", "--out", str(out)]
    load0 = os.getloadavg()[0]
    cold, _ = timed_run(cmd)
    info = json.loads((out / "run.json").read_text())
    warm = sorted(timed_run(cmd)[0] for _ in range(a.warm_runs))
    warm_med = warm[len(warm) // 2]
    info2 = json.loads((out / "run.json").read_text())
    same = info2.get("n_scores") == info.get("n_scores")
    print(f"re-run: bench {' '.join(cmd[3:])}")
    print(f"load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end (of {os.cpu_count()} CPUs)")
    print(f"cold run: {cold:.1f} s ({info.get('n_scores')} scores computed; run() {info.get('elapsed_s')} s)")
    print(f"warm re-runs: {', '.join(f'{w:.2f}' for w in warm)} s (median {warm_med:.2f} s; run() "
          f"{info2.get('elapsed_s')} s; scores {'unchanged' if same else 'CHANGED'})")
    ratio = cold / warm_med
    print(f"TARGET warm re-run >= 20x faster than cold: {ratio:.1f}x -> {'MET' if ratio >= 20 else 'MISSED'}")
    if a.json:
        Path(a.json).write_text(json.dumps({"cold_s": cold, "warm_s": warm, "ratio": ratio,
                                            "n_scores": info.get("n_scores"), "cmd": cmd[1:]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
