"""Helpers of benchmarks/gpu.py: run state, the time budget, timing, precision modes, test clips,
detectors on the CPU and the device, and the scoring cases (clips/s, GFLOP/s, parity per precision)."""
from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

T0 = time.perf_counter()

# NVIDIA data-sheet peaks, dense (no sparsity), TFLOP/s and TB/s: NOMINAL, not measured here.
NOMINAL = (("h200 nvl", "H200 NVL", 60.0, 417.5, 835.5, 4.8), ("h200", "H200 SXM", 67.0, 494.7, 989.4, 4.8),
           ("h100 nvl", "H100 NVL", 60.0, 417.5, 835.5, 3.9), ("h100 pcie", "H100 PCIe", 51.2, 378.0, 756.0, 2.0),
           ("h100", "H100 SXM", 67.0, 494.7, 989.4, 3.35), ("a100", "A100", 19.5, 156.0, 312.0, 2.0))
GEMM_OF = {"fp32": "fp32", "tf32": "tf32", "default": "tf32", "bf16": "bf16"}


# run state, filled in by gpu.main(): args, torch, device, results, CPU detectors, FLOPs per clip
S = SimpleNamespace(a=None, torch=None, dev=None, R={}, cpu_models={}, flops={})


def left() -> float:
    return S.a.budget_s - (time.perf_counter() - T0)


def save() -> None:
    if S.a.json:
        p = Path(S.a.json)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.with_suffix(".tmp").write_text(json.dumps(S.R, indent=1, default=str))
        os.replace(p.with_suffix(".tmp"), p)


def sync() -> None:
    if S.dev.type == "cuda":
        S.torch.cuda.synchronize()


def timed(fn, min_reps: int, min_s: float, max_reps: int = 30) -> tuple[float, float, int]:
    """(median, best, reps) seconds per call; at least min_reps calls and min_s seconds."""
    ts: list[float] = []
    while len(ts) < min_reps or (sum(ts) < min_s and len(ts) < max_reps):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), min(ts), len(ts)


@contextlib.contextmanager
def precision(name: str):
    """fp32 / tf32 / default (flags as at start-up) / bf16 (autocast). Legacy TF32 flags only: the
    library's cudnn.flags() reads them, and mixing in the new fp32_precision API makes that raise."""
    torch = S.torch
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    flags = {"fp32": (False, False), "tf32": (True, True)}.get(name, S.R["machine"]["default_tf32_flags"])
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    ac = torch.autocast(S.dev.type, dtype=torch.bfloat16) if name == "bf16" else contextlib.nullcontext()
    try:
        with ac:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def precisions() -> list[str]:
    return ["fp32", "tf32", "default", "bf16"] if S.dev.type == "cuda" else ["fp32", "bf16"]


def gemm_gflops(prec: str, n: int, min_s: float) -> tuple[float, float, int]:
    """(best, median, reps) GFLOP/s of an n x n ``torch.mm`` in fp32 (TF32 off), TF32 or bf16."""
    torch = S.torch
    g = torch.Generator(device=S.dev).manual_seed(0)
    dtype = torch.bfloat16 if prec == "bf16" else torch.float32
    a, b = (torch.randn(n, n, device=S.dev, generator=g).to(dtype) for _ in range(2))
    with precision("tf32" if prec == "tf32" else "fp32"):
        torch.mm(a, b)
        med, best, reps = timed(lambda: torch.mm(a, b), 3, min_s)
    return 2 * n ** 3 / best / 1e9, 2 * n ** 3 / med / 1e9, reps


def peaks(prec: str) -> tuple[float | None, float | None]:
    """(measured GEMM, nominal) GFLOP/s for a precision. On the CPU, whose speed moves with other
    users' load, the GEMM is measured again (2048^2) right before each case and that figure is used."""
    k = GEMM_OF[prec]
    nom = S.R["machine"].get("nominal") or {}
    gemm = S.R["gemm"].get(k, {}).get("gflops")
    if S.dev.type == "cpu" and gemm:
        gemm = gemm_gflops(k, 2048, 0.0)[0]
    return gemm, (nom[k] * 1e3 if k in nom else None)


# ------------------------------------------------------------------------------------ data, models
def clips() -> None:
    """S.pbatch (parity rows: the fixture's 3 clips, then demo clips) and S.demo (clips, labels)."""
    from bench.scoring.windows import fix_length

    n = 8
    try:
        from foundation.audio import load_audio
        from bench.data import load_dataset

        us = load_dataset("demo", limit=16, seed=0).utterances
        b, s = [u for u in us if u.label == "bonafide"], [u for u in us if u.label != "bonafide"]
        us = [u for pair in zip(b, s) for u in pair][:n]  # alternate labels
        x = np.stack([fix_length(load_audio(u.path, 16000)[0], 64600) for u in us])
        y, src = np.array([1 if u.label == "bonafide" else 0 for u in us]), "demo"
    except Exception as e:  # noqa: BLE001 - no soundfile on the device unless its wheel was carried
        src = f"seeded noise (demo clips unreadable: {type(e).__name__}: {e})"
        x = np.random.default_rng(0).normal(0, 0.1, (n, 64600)).clip(-1, 1).astype(np.float32)
        y = np.arange(n) % 2
    S.demo = (x.astype(np.float32), y)
    fx = S.a.fixture if S.a.fixture and Path(S.a.fixture).is_file() else None
    S.fixture = np.load(fx) if fx else None
    rows = [fix_length(S.fixture[f"wav{i}"], 64600) for i in range(3)] if fx else []
    k = (4 if S.a.quick else 8) - len(rows)
    S.pbatch = np.stack(rows + list(x[:k])).astype(np.float32)
    S.R["data"] = {"clips": src, "fixture": str(fx), "parity_rows": len(S.pbatch)}
    print(f"data: {S.R['data']}")


def load_cpu(name: str, **config):
    """CPU copy of a detector (official weights; RawNet2 random init) and its FLOPs per clip."""
    from torch.utils.flop_counter import FlopCounterMode

    import models

    torch, key = S.torch, (name, tuple(sorted(config.items())))
    if key not in S.cpu_models:
        if name == "rawnet2":
            with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the global state alone
                torch.manual_seed(0)
                det = models.ARCHITECTURES.get("rawnet2").from_config(models.CARDS.get("rawnet2").config)
        else:
            det = models.load_detector(name, config=config or None).detector
        det.eval()
        ref = det.logits_and_hidden if hasattr(det, "logits_and_hidden") else det.log_probs
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            ref(torch.zeros(1, det.nb_samp))
        S.flops[name] = float(fc.get_total_flops())
        S.cpu_models[key] = det
    return S.cpu_models[key]


def on_device(det):
    d = copy.deepcopy(det).to(S.dev).eval()
    return d


def logits_fn(det):
    """Logits by the scoring path: ``infer`` where the detector has one (AASIST: (logits, hidden); RawNet2:
    log-probabilities; both take their CPU fast path there), else RawNet2's ``log_probs``."""
    torch = S.torch
    if hasattr(det, "infer"):
        def f(x):
            out = det.infer(x)
            return out[0] if isinstance(out, tuple) else out
        return f
    return lambda x: torch.inference_mode()(det.log_probs)(x)


@contextlib.contextmanager
def path_for(det, prec: str):
    """The CPU fast paths (AASIST, RawNet2) are fp32-only: bf16 on the CPU runs the reference path."""
    old = getattr(det, "fast_inference", None)
    if old is not None and prec != "fp32":
        det.fast_inference = False
    try:
        yield "fast" if (old and prec == "fp32" and S.dev.type == "cpu") else "reference"
    finally:
        if old is not None:
            det.fast_inference = old


def tiled(b: int):
    return S.torch.from_numpy(S.pbatch[np.arange(b) % len(S.pbatch)]).to(S.dev)


def cuda_mem() -> float | None:
    return round(S.torch.cuda.max_memory_allocated() / 2**30, 2) if S.dev.type == "cuda" else None


# ------------------------------------------------------------------------------------- scoring
def score_cases(name: str, det, precs, batches, tag: str = "", compiled=None) -> None:
    """Time det.score per precision x batch; parity of each precision's logits vs fp32 and the release."""
    torch, f = S.torch, compiled or logits_fn(det)  # compiled: a compiled logits function
    fx_key = {"aasist": "logits_aasist", "aasist-l": "logits_aasist_l"}.get(name)
    ref = None
    for prec in (["fp32"] if "fp32" not in precs else []) + list(precs):
        if left() < 5:
            S.R["skipped"].append(f"{name}{tag} {prec}: budget")
            continue
        with precision(prec), path_for(det, prec) as path:
            path = "compiled" if compiled else path
            try:
                t = time.perf_counter()
                with torch.inference_mode():
                    lg = f(torch.from_numpy(S.pbatch).to(S.dev)).float().cpu().numpy()
                first = time.perf_counter() - t
                ref = lg if prec == "fp32" else ref
                par = {"model": name + tag, "precision": prec, "first_call_s": first,
                       "max_abs_logit_vs_fp32": float(np.abs(lg - ref).max()),
                       "max_abs_logit_vs_official": (float(np.abs(lg[:3] - S.fixture[fx_key]).max())
                                                     if fx_key and S.fixture is not None else None)}
                S.R["precision_parity"].append(par)
                print(f"  {name}{tag} {prec:7s} parity: |dlogit| vs fp32 {par['max_abs_logit_vs_fp32']:.2e}, "
                      f"vs official {par['max_abs_logit_vs_official']}")
                if prec not in precs:
                    continue
                score = (lambda x: compiled(x)[:, 1]) if compiled else det.score
                for b in batches:
                    if left() < 5:
                        S.R["skipped"].append(f"{name}{tag} {prec} b{b}: budget")
                        continue
                    x = tiled(b)
                    if S.dev.type == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    if S.dev.type == "cuda" or first < 2.0 or compiled:  # warm-up at this shape (CPU: if cheap)
                        with torch.inference_mode():
                            score(x)
                    with torch.inference_mode():
                        med, best, reps = timed(lambda x=x, score=score: score(x), S.min_reps, S.min_s)
                    gf = S.flops[name] * b / med / 1e9
                    gemm, nom = peaks(prec)
                    row = {"model": name + tag, "precision": prec, "batch": b, "path": path, "s_per_call": med,
                           "s_per_call_best": best, "reps": reps, "clips_per_s": b / med, "gflops": gf,
                           "gemm_gflops": gemm, "of_gemm": gf / gemm if gemm else None,
                           "of_nominal": gf / nom if nom else None,
                           "peak_mem_gib": cuda_mem()}
                    S.R["scoring"].append(row)
                    print(f"  {name}{tag:6s} {prec:7s} b{b:<4d} {b / med:9.1f} clips/s {gf:9.0f} GFLOP/s "
                          f"{pct(row['of_gemm'])} of GEMM {pct(row['of_nominal'])} of nominal ({path})")
                    save()
            except Exception as e:  # noqa: BLE001 - recorded and printed (e.g. OOM, an op without bf16); next precision
                S.R["errors"].append(f"{name}{tag} {prec}: {type(e).__name__}: {str(e)[:300]}")
                print(f"  {name}{tag} {prec}: ERROR {type(e).__name__}: {str(e)[:300]}; next precision")
                if S.dev.type == "cuda":
                    torch.cuda.empty_cache()


def pct(v) -> str:
    return f"{v:6.1%}" if v is not None else "     -"

