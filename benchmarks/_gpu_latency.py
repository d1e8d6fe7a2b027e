"""Section ``latency`` of benchmarks/gpu.py: batch-1 latency per window and the real-time factor on the device
(benchmarks/latency.py's ``window`` section, there on the CPU): for each detector, p50/p95/p99 of one window scored
alone through the product's engine (input on the host, as a service gets it; synchronised), the time per window at
batch 8, ``rtf`` (seconds of compute per second of audio, windows back to back) and ``rtf_stream`` (one window per
0.5 s hop, as ``/stream``). Detectors without a checkpoint in the weights folder are timed at a seeded random
initialisation. The service's load and stream figures need starlette/uvicorn/websockets on the device and are not
measured there. Rows go to ``S.R["latency"]``.
"""
from __future__ import annotations

from benchmarks._gpu_lib import S, left, save

MODELS = ("aasist", "aasist-l", "rawnet2", "raw-pc-darts", "ssl-aasist", "light-darts")


def sec_latency() -> None:
    from benchmarks.latency import build, window_latency

    rows = S.R.setdefault("latency", [])
    for name in MODELS:
        if left() < 25:
            S.R["skipped"].append(f"latency {name}: {left():.0f} s left")
            continue
        try:
            det, how = build(name, device=str(S.dev))
        except Exception as e:  # noqa: BLE001 - e.g. transformers missing on the device: recorded, next model
            S.R["errors"].append(f"latency {name}: {type(e).__name__}: {e}")
            continue
        r = window_latency(det, str(S.dev), budget_s=6.0 if S.dev.type == "cuda" else 3.0, min_reps=5,
                           max_reps=200, warmup=3)
        r.update(model=name, weights=how, device=str(S.dev))
        rows.append(r)
        print(f"latency {name:12s} batch-1 p50 {r['p50_ms']:8.2f} p95 {r['p95_ms']:8.2f} p99 {r['p99_ms']:8.2f} ms "
              f"({r['reps']} reps)  batch-8 {r['b8_ms_per_window']:8.2f} ms/window  RTF {r['rtf']:.4f}  "
              f"RTF@0.5s {r['rtf_stream']:.3f} [{how}]", flush=True)
        save()
        del det
        if S.dev.type == "cuda":
            S.torch.cuda.empty_cache()
