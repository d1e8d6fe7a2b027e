"""The closing summary of benchmarks/gpu.py: every figure of the run in one table-like block."""
from __future__ import annotations

import os
import time

from benchmarks._gpu_lib import T0, S, pct


def summary() -> None:
    print("\n== summary " + "=" * 88)
    m, g = S.R["machine"], S.R["gemm"]
    print(f"{m.get('gpu', 'CPU')} | torch {m.get('torch')} CUDA {m.get('cuda')} | GEMM GFLOP/s: "
          + ", ".join(f"{k} {v['gflops']:.0f}" for k, v in g.items() if isinstance(v, dict))
          + (f" | nominal: {m['nominal']}" if m.get("nominal") else ""))
    print(f"{'model':18s} {'prec':7s} {'batch':>5s} {'clips/s':>9s} {'GFLOP/s':>9s} {'%GEMM':>7s} {'%nominal':>8s}")
    for r in S.R["scoring"]:
        print(f"{r['model']:18s} {r['precision']:7s} {r['batch']:5d} {r['clips_per_s']:9.1f} {r['gflops']:9.0f} "
              f"{pct(r['of_gemm'])} {pct(r['of_nominal']):>8s}")
    for p in S.R["precision_parity"]:
        print(f"parity {p['model']:18s} {p['precision']:7s} |dlogit| vs fp32 {p['max_abs_logit_vs_fp32']:.2e}"
              f"  vs official {p['max_abs_logit_vs_official']}")
    for r in S.R["pgd"]:
        print(f"pgd {r['precision']:7s} b{r['batch']:<3d} {r['steps_per_s']:7.1f} steps/s {r['clips_per_s']:7.1f} "
              f"clips/s {pct(r['of_gemm_est'])} of GEMM (est.) moved {r['moved_right_way']:.0%} success {r['success']}")
    for r in S.R["cuda_parity"]:
        print(f"cpu-vs-device {r['model']:9s} fp32 {r['max_abs_logit_fp32']:.2e} default "
              f"{r['max_abs_logit_default']:.2e} grad {r['grad_rel_max_diff']:.2e}")
    for r in S.R.get("engine", []):
        print(f"engine {r['case']:10s} b{r['batch']:<4d} {r['clips_per_s']:9.1f} clips/s {pct(r['of_gemm'])} of GEMM "
              f"|dscore| vs fp32 {r['max_abs_score_vs_auto_fp32']:.2e} first call {r['first_call_s']} s")
    for r in S.R.get("latency", []):
        print(f"latency {r['model']:12s} batch-1 p50 {r['p50_ms']:.2f} p95 {r['p95_ms']:.2f} p99 {r['p99_ms']:.2f} ms "
              f"RTF {r['rtf']:.4f} RTF@0.5s {r['rtf_stream']:.3f} [{r['weights']}]")
    if S.R.get("pipeline"):
        print(f"pipeline: bench run at {S.R['pipeline']['ratio']:.0%} of pure scoring (target 85%)")
        c = S.R["pipeline"].get("compression")
        if c:
            print(f"pipeline, compression suite at batch 32: {c['scores_per_s']:.0f} scores/s = {c['ratio']:.0%} of "
                  f"pure scoring, {c['workers']} preparation workers on {c['cpus']} CPUs; the scorer waited "
                  f"{c.get('waiting_share')} of its time for prepared audio")
    for s in S.R["skipped"]:
        print(f"skipped: {s}")
    for e in S.R["errors"]:
        lines = e.strip().splitlines()
        print(f"ERROR: {lines[0]}" if len(lines) == 1 else f"ERROR in {e.split(':', 1)[0]}: {lines[-1]}")
    print(f"total {time.perf_counter() - T0:.0f} s of a {S.a.budget_s:.0f} s budget; load average "
          f"{m.get('loadavg', 0):.2f} at start, {os.getloadavg()[0]:.2f} at end ({os.cpu_count()} CPUs)")
