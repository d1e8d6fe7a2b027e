"""AASIST scoring speed on this CPU, against the machine's fp32 GEMM throughput, side by side.

    python benchmarks/aasist_speed.py [--model aasist|aasist-l] [--batch 8] [--rounds 5] [--compile]

Every round times, back to back in this one process: a large fp32 ``torch.mm`` (the hardware
reference: what this machine's BLAS gets on these threads right now), then each scoring variant on
the same batch of 64600-sample clips. The ratios are taken round by round, so a change in the
machine's load moves both sides. Variants:

* ``reference-nchw``: the reference formulation in the official release's memory layout (NCHW);
* ``reference-cl``: the same, channels-last (the model's differentiable ``forward`` path);
* ``fast``: ``AASIST.score``/``infer``, the cache-blocked inference path (models/_aasist_fast.py);
* ``compiled-cl`` (``--compile``): ``torch.compile`` of the channels-last reference (compile time shown);
* ``official`` (``--official DIR``): the clovaai/aasist release itself (``models/AASIST.py`` of a checkout,
  eager, its config and weights), so ``fast`` is also reported as a ratio against the official code
  measured in the same rounds. Make the checkout without committing any of it, e.g.
  ``mkdir /tmp/clovaai && git --git-dir=MIRROR archive HEAD models config | tar -x -C /tmp/clovaai``.

Each variant's logits on the official parity fixture (../shared/fixtures/aasist_parity.npz) are
compared with the release's (tolerance 1e-4). FLOPs per clip are counted by torch's FlopCounterMode.
Prints a table and one verdict line per target; ``--json`` also writes the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT.parent / "shared" / "fixtures" / "aasist_parity.npz"
os.environ.setdefault("BENCH_WEIGHTS_DIR", str(ROOT.parent / "shared" / "weights"))
sys.path.insert(0, str(ROOT))

import models
from bench.scoring.windows import fix_length
from benchmarks import _speed


def flops_per_clip(det, nb_samp: int) -> float:
    return _speed.flops_per_clip(det.logits_and_hidden, nb_samp)


def load(name: str, channels_last: bool):
    det = models.load_detector(name, config={"channels_last": channels_last}).detector.eval()
    det.fast_inference = False
    return det


def official(name: str, folder: str):
    """The official release's model, from a checkout of clovaai/aasist (its code, config and weights)."""
    import importlib.util

    root = Path(folder)
    spec = importlib.util.spec_from_file_location("clovaai_aasist", root / "models" / "AASIST.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    stem = {"aasist": "AASIST", "aasist-l": "AASIST-L"}[name]
    conf = json.loads((root / "config" / f"{stem}.conf").read_text())
    m = mod.Model(conf["model_config"])
    m.load_state_dict(torch.load(root / "models" / "weights" / f"{stem}.pth", map_location="cpu", weights_only=True))
    return m.eval()


def variants(name: str, compile_: bool, official_dir: str | None = None) -> dict:
    nchw, cl = load(name, False), load(name, True)
    fast = load(name, True)
    fast.fast_inference = True
    out = {
        "reference-nchw": lambda x: nchw.logits_and_hidden(x)[0],
        "reference-cl": lambda x: cl.logits_and_hidden(x)[0],
        "fast": lambda x: fast.infer(x)[0],
    }
    if compile_:
        out["compiled-cl"] = torch.compile(cl.logits)
    if official_dir:
        off = official(name, official_dir)
        out["official"] = lambda x: off(x)[1]
    return out, fast


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="aasist", choices=["aasist", "aasist-l"])
    ap.add_argument("--batch", type=int, default=8, help="clips per scoring call (bench run's default: 8)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, = cores)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the reference")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--official", metavar="DIR", help="a checkout of clovaai/aasist: also time the official code")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    load0 = os.getloadavg()
    fns, fast = variants(a.model, a.compile, a.official)
    flops = flops_per_clip(fast, fast.nb_samp)
    fx = np.load(FIXTURE)
    key = {"aasist": "aasist", "aasist-l": "aasist_l"}[a.model]
    xp = torch.from_numpy(np.stack([fix_length(fx[f"wav{i}"], fast.nb_samp) for i in range(3)]))
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (a.batch, fast.nb_samp)).astype(np.float32))
    parity, first_call = {}, {}
    with torch.inference_mode():
        for k, fn in fns.items():
            first_call[k] = _speed.timed(lambda fn=fn: fn(x))    # warm-up (and compilation)
            parity[k] = float(np.abs(fn(xp).numpy() - fx[f"logits_{key}"]).max())
        rows, ratios = _speed.timed_rounds(fns, x, a.rounds, flops)
    load1 = os.getloadavg()
    g = float(np.median(rows["gemm"]))
    print(f"AASIST scoring speed: model {a.model}, batch {a.batch}, {torch.get_num_threads()} threads, "
          f"{a.rounds} rounds; {flops / 1e9:.2f} GFLOP per {fast.nb_samp}-sample clip")
    print(f"load average {load0[0]:.2f} at start, {load1[0]:.2f} at end (of {os.cpu_count()} CPUs)")
    print(f"fp32 GEMM (torch.mm 2048^2): median {g:.1f} GFLOP/s (min {min(rows['gemm']):.1f}, "
          f"max {max(rows['gemm']):.1f})")
    print(f"{'variant':16s} {'s/clip':>8s} {'GFLOP/s':>8s} {'of GEMM':>8s} {'vs nchw':>8s} {'|dlogit|':>9s} "
          f"{'1st call s':>10s}")
    ref = float(np.median(rows["reference-nchw"]))
    summary = {"model": a.model, "batch": a.batch, "threads": torch.get_num_threads(), "rounds": a.rounds,
               "gflop_per_clip": flops / 1e9, "gemm_gflops": g, "loadavg": [load0[0], load1[0]], "variants": {}}
    for k in fns:
        sec = float(np.median(rows[k]))
        frac = float(np.median(ratios[k]))
        print(f"{k:16s} {sec:8.3f} {flops / sec / 1e9:8.1f} {frac:8.0%} {ref / sec:7.2f}x {parity[k]:9.1e} "
              f"{first_call[k]:10.1f}")
        summary["variants"][k] = {"s_per_clip": sec, "gflops": flops / sec / 1e9, "of_gemm": frac,
                                  "speedup_vs_nchw": ref / sec, "max_abs_logit_diff": parity[k],
                                  "first_call_s": first_call[k], "rounds_s_per_clip": rows[k],
                                  "rounds_of_gemm": ratios[k]}
    summary["rounds_gemm_gflops"] = rows["gemm"]
    frac = summary["variants"]["fast"]["of_gemm"]
    ok = frac >= 0.5 and parity["fast"] <= 1e-4
    print(f"TARGET scoring >= 50% of fp32 GEMM with logits within 1e-4: fast path {frac:.0%}, "
          f"|dlogit| {parity['fast']:.1e} -> {'MET' if ok else 'MISSED'}")
    if "official" in fns:
        vs = summary["variants"]["official"]["s_per_clip"] / summary["variants"]["fast"]["s_per_clip"]
        summary["fast_vs_official"] = vs
        print(f"TARGET bench scoring >= 3x the official clovaai code on the same threads: {vs:.2f}x -> "
              f"{'MET' if vs >= 3 else 'MISSED'} (the GEMM fraction above says what bounds it)")
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
