"""Section ``engine`` of benchmarks/gpu.py: the product's scoring path (bench/scoring/engine.py) on the device.

What ``bench run --batch-size auto [--compile on] [--precision bf16]`` does, measured through
``bench.scoring.windows.score_batch`` with an :class:`bench.scoring.engine.Engine` on AASIST:

- ``auto``: the batch the probe chose, clips/s over enough clips to fill several batches, GFLOP/s as a
  fraction of the measured GEMM (TF32: torch's defaults run cuDNN convolutions in TF32);
- ``compile on`` (CUDA graphs, ``reduce-overhead``) at the same batch: compile time, the engine's own
  parity check against eager (kept only within 1e-4), clips/s;
- ``bf16``: the recorded parity to fp32 and clips/s.
Rows go to ``S.R["engine"]``; max |score difference| to the eager fp32 scores of the same clips.
"""
from __future__ import annotations

import time

import numpy as np

from benchmarks._gpu_lib import S, left, load_cpu, on_device, pct, peaks, precision, save, sync


def sec_engine() -> None:
    from bench.scoring.engine import Engine, InferenceOptions
    from bench.scoring.score import score_batch

    torch = S.torch
    S.R.setdefault("engine", [])
    det = on_device(load_cpu("aasist"))
    base = np.asarray(S.pbatch, np.float32)
    ref_engine = Engine(det, InferenceOptions(batch_size="auto"), S.dev, "aasist")
    b = ref_engine.batch_size(base.shape[1])
    n = max(4 * b, 64) if S.dev.type == "cuda" else max(2 * b, 8)
    wavs = [base[i % len(base)] for i in range(n)]
    with precision("default"):
        ref = score_batch(det, wavs, "official", engine=ref_engine)
    cases = [("auto", InferenceOptions(batch_size=b)), ("bf16", InferenceOptions(batch_size=b, precision="bf16"))]
    if S.dev.type == "cuda" or S.a.compile:
        cases.insert(1, ("compile-on", InferenceOptions(batch_size=b, compile="on")))
    for tag, opts in cases:
        if left() < 20:
            S.R["skipped"].append(f"engine {tag}: budget")
            continue
        eng = Engine(det, opts, S.dev, "aasist")
        with precision("default"):
            t = time.perf_counter()
            first = score_batch(det, wavs[:b], "official", engine=eng)   # compiles / measures parity
            sync()
            first_s = time.perf_counter() - t
            t = time.perf_counter()
            got = score_batch(det, wavs, "official", engine=eng)
            sync()
            wall = time.perf_counter() - t
        gf = S.flops["aasist"] * n / wall / 1e9
        gemm, nom = peaks("bf16" if opts.precision == "bf16" else ("default" if S.dev.type == "cuda" else "fp32"))
        row = {"case": tag, "batch": b, "clips": n, "first_call_s": round(first_s, 2), "clips_per_s": n / wall,
               "gflops": gf, "of_gemm": gf / gemm if gemm else None, "of_nominal": gf / nom if nom else None,
               "max_abs_score_vs_auto_fp32": float(np.abs(got - ref).max()),
               "first_batch_consistent": bool(np.allclose(first, got[:b], atol=1e-3)),
               "report": eng.report()}
        S.R["engine"].append(row)
        print(f"  engine {tag:10s} b{b:<4d} {n / wall:9.1f} clips/s {gf:9.0f} GFLOP/s {pct(row['of_gemm'])} of GEMM; "
              f"|dscore| vs fp32 {row['max_abs_score_vs_auto_fp32']:.2e}; first call {first_s:.1f} s; "
              f"{eng.report().get('compile', '')}")
        save()
        if S.dev.type == "cuda":
            del eng
            torch.cuda.empty_cache()
    S.R["engine_probe"] = ref_engine.report()
