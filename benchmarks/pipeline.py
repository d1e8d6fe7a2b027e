"""`bench run` end to end against pure scoring throughput, on the same machine in one go.

    python benchmarks/pipeline.py [--limit 96] [--suite benchmarks/suites/pipeline.yaml] [--workers 1]

(a) pure scoring: the suite's inputs (demo clips x conditions) are read and perturbed first, untimed,
    then scored by ``bench.scoring.windows.score_batch`` exactly as the runner calls it (same detector, policy
    and batch size): scores per second of scoring alone;
(b) ``bench run --suite S --limit N --workers W --out <new folder>`` as a subprocess: scores per
    second of the whole command (start-up, model load, reading, perturbing, scoring, storing,
    results) and of the run's own ``elapsed_s`` (run.json: from the start of ``run()``).

(a) and (b) alternate, a b a b ... a, for ``--rounds`` rounds: each run of (b) is compared with the
mean of the (a) just before and just after it, and the median over rounds is quoted, so a drift in
the machine's load (other users) is shared. Beside wall-clock throughput, CPU seconds per score are
compared (the scoring process's own; the run's including its workers): that ratio does not move
with other users' load, but it cannot see time spent waiting. The target is (b)/(a) >= 85%.
``--workers`` may be given several times (e.g. ``--workers 0 --workers 1``).
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
sys.path.insert(0, str(ROOT))
DEFAULT_SUITE = str(Path(__file__).resolve().parent / "suites" / "pipeline.yaml")


def prepared_inputs(suite_spec: str, limit: int, seed: int, sr: int):
    """All (condition x utterance) waveforms the run will score, prepared in this process."""
    from bench.data import load_dataset
    from bench.run.prepare import Task, init_worker, prepare
    from bench.suites.suite import load_suite

    suite = load_suite(suite_spec)
    ds = load_dataset("demo", limit=limit, seed=seed)
    init_worker(seed, sr, [(u.utt_id, str(u.path)) for u in ds.utterances if u.label == "bonafide"], {})
    wavs, t0 = [], time.perf_counter()
    for cond in suite.expand():
        for u in ds.utterances:
            p = prepare(Task(u.utt_id, str(u.path), u.label, cond.key(), cond.spec, cond.kind))
            if p.wav is None:
                raise RuntimeError(f"{u.utt_id} {cond.family}@{cond.severity}: {p.error}")
            wavs.append(p.wav)
    return wavs, suite.policy, time.perf_counter() - t0


def pure_scoring(det, wavs, policy: str, batch_size: int) -> tuple[float, float]:
    """(scores per second, CPU seconds per score) of ``score_batch`` alone, in the runner's shards
    of 32 utterances."""
    from bench.scoring.score import score_batch

    t, c = time.perf_counter(), time.process_time()
    for i in range(0, len(wavs), 32):
        score_batch(det, wavs[i:i + 32], policy, batch_size=batch_size)
    return len(wavs) / (time.perf_counter() - t), (time.process_time() - c) / len(wavs)


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench_run(suite: str, limit: int, workers: int, batch_size: int, model: str) -> dict:
    out = Path(tempfile.mkdtemp(prefix="pipeline-bench-")) / "run"
    cmd = [sys.executable, "-m", "bench.cli", "run", "--suite", suite, "--limit", str(limit), "--workers",
           str(workers), "--batch-size", str(batch_size), "--model", model, "--device", "cpu", "--out", str(out)]
    t, c = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t, _children_cpu() - c
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    info = json.loads((out / "run.json").read_text())
    return {"cmd": " ".join(cmd[1:]), "wall_s": wall, "cpu_s": cpu, "elapsed_s": float(info["elapsed_s"]),
            "n_scores": int(info["n_scores"]), "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=DEFAULT_SUITE)
    ap.add_argument("--limit", type=int, default=96, help="demo utterances (the demo set has 96)")
    ap.add_argument("--workers", type=int, action="append", help="bench run --workers (repeatable; default 1)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--model", default="aasist")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=2, help="a/b alternations per --workers value")
    ap.add_argument("--json", help="write the figures to this file")
    a = ap.parse_args(argv)
    workers = a.workers or [1]

    import numpy as np
    import torch

    import models

    det = models.load_detector(a.model, device="cpu").detector.eval()
    wavs, policy, prep_s = prepared_inputs(a.suite, a.limit, a.seed, det.sample_rate)
    load0 = os.getloadavg()[0]
    pure_scoring(det, wavs[: a.batch_size], policy, a.batch_size)  # warm-up
    pures = [pure_scoring(det, wavs, policy, a.batch_size)]
    runs = []
    for _ in range(a.rounds):
        for w in workers:
            runs.append({**bench_run(a.suite, a.limit, w, a.batch_size, a.model), "workers": w,
                         "pure_before": pures[-1]})
            pures.append(pure_scoring(det, wavs, policy, a.batch_size))
            runs[-1]["pure_after"] = pures[-1]
    load1 = os.getloadavg()[0]

    print(f"pipeline: model {a.model}, suite {Path(a.suite).name}, {a.limit} demo utterances, "
          f"{len(wavs)} scores, batch {a.batch_size}, torch threads {torch.get_num_threads()}, {a.rounds} rounds")
    print(f"load average {load0:.2f} at start, {load1:.2f} at end (of {os.cpu_count()} CPUs)")
    print(f"preparing every input in one process (read + perturb): {prep_s:.2f} s "
          f"({len(wavs) / prep_s:.1f} inputs/s, {prep_s / len(wavs) * 1e3:.0f} ms each)")
    print("(a) pure scoring, in order: " + ", ".join(f"{p[0]:.2f}" for p in pures) + " scores/s; CPU "
          + ", ".join(f"{p[1]:.2f}" for p in pures) + " s per score")
    result = {"suite": a.suite, "limit": a.limit, "n_scores": len(wavs), "prepare_s": prep_s,
              "pure": pures, "loadavg": [load0, load1], "runs": [], "summary": {}}
    for r in runs:
        pure = (r["pure_before"][0] + r["pure_after"][0]) / 2
        pure_cpu = (r["pure_before"][1] + r["pure_after"][1]) / 2
        r.update(pure=pure, ratio_wall=r["n_scores"] / r["wall_s"] / pure,
                 ratio_run=r["n_scores"] / r["elapsed_s"] / pure, ratio_cpu=pure_cpu / (r["cpu_s"] / r["n_scores"]))
        if r["n_scores"] != len(wavs):
            print(f"  note: the run stored {r['n_scores']} scores, expected {len(wavs)}")
        print(f"(b) bench run --workers {r['workers']}: whole command {r['wall_s']:.1f} s = "
              f"{r['ratio_wall']:.0%} of (a) around it; run() alone {r['elapsed_s']:.1f} s = {r['ratio_run']:.0%}; "
              f"CPU {r['cpu_s'] / r['n_scores']:.2f} s per score = {r['ratio_cpu']:.0%} of (a)'s efficiency")
        result["runs"].append(r)
    print(f"    command: {runs[0]['cmd']}")
    for w in workers:
        mine = [r for r in runs if r["workers"] == w]
        med = {k: float(np.median([r[k] for r in mine])) for k in ("ratio_wall", "ratio_run", "ratio_cpu")}
        result["summary"][str(w)] = med
        print(f"TARGET bench run (--workers {w}) end to end >= 85% of pure scoring throughput: median "
              f"{med['ratio_wall']:.0%} whole command, {med['ratio_run']:.0%} run() alone, {med['ratio_cpu']:.0%} "
              f"by CPU time -> {'MET' if med['ratio_wall'] >= 0.85 else 'MISSED'}")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
