"""Section ``train`` of benchmarks/gpu.py: training throughput on the device (issue 24): examples per second of one
``bench train`` step (forward + backward + Adam step through :class:`bench.train.step.Stepper`, weighted CE, the
official recipe) for AASIST and AASIST-L at batch 24 (the recipe's) and at the largest power of two up to 128 that
fits, in fp32 (TF32 off), torch's defaults and bf16 autocast; the loss of the first step in each precision against
fp32 (a parity check of the autocast path). Rows go to ``S.R["train"]``. The official clovaai step is timed on the
CPU by benchmarks/train_speed.py (its code is not carried to the device)."""
from __future__ import annotations

import time

from benchmarks._gpu_lib import S, left, load_cpu, on_device, save

MODELS = ("aasist-l", "aasist")


def _case(name: str, batch: int, precision: str, reps: int = 3) -> dict:
    import numpy as np

    from bench.train.dist import Dist
    from bench.train.recipes import get_recipe, optimizer_for
    from bench.train.step import Stepper

    torch = S.torch
    det = on_device(load_cpu(name))
    det.fast_inference = False
    recipe = get_recipe(name).replace(batch_size=batch)
    opt = optimizer_for(recipe, det.parameters())
    tf32 = precision == "default"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = tf32 or precision == "bf16"
    step = Stepper(det, recipe, opt, str(S.dev), "bf16" if precision == "bf16" else "fp32", Dist())
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-0.3, 0.3, (batch, det.nb_samp)).astype("float32")).to(S.dev)
    y = torch.tensor([i % 2 for i in range(batch)], device=S.dev)
    det.train()
    first = step.step(x, y, first=True, last=True)   # warm-up (cuDNN algorithm choice), its loss recorded
    times = []
    for _ in range(reps):
        if S.dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        step.step(x, y, first=True, last=True)
        if S.dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    s = float(np.median(times))
    return {"model": name, "batch": batch, "precision": precision, "step_s": s, "examples_per_s": batch / s,
            "first_loss": first, "chunk": step.chunk}


def sec_train() -> None:
    rows = S.R.setdefault("train", [])
    for name in MODELS:
        ref_loss = None
        for batch in (24, 128 if S.dev.type == "cuda" else 8):
            for precision in (("fp32", "default", "bf16") if S.dev.type == "cuda" else ("fp32",)):
                if left() < 20:
                    S.R["skipped"].append(f"train {name} b{batch} {precision}: {left():.0f} s left")
                    continue
                try:
                    r = _case(name, batch, precision)
                except Exception as e:  # noqa: BLE001 - recorded, the next case still runs
                    S.R["errors"].append(f"train {name} b{batch} {precision}: {type(e).__name__}: {e}")
                    continue
                if precision == "fp32" and batch == 24:
                    ref_loss = r["first_loss"]
                r["loss_vs_fp32"] = None if ref_loss is None or batch != 24 else abs(r["first_loss"] - ref_loss)
                rows.append(r)
                print(f"train {name:9s} batch {batch:4d} {precision:8s} {r['examples_per_s']:8.1f} examples/s "
                      f"(step {r['step_s'] * 1000:.0f} ms; first loss {r['first_loss']:.4f})", flush=True)
                save()
                if S.dev.type == "cuda":
                    S.torch.cuda.empty_cache()
