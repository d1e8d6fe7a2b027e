"""RawNet2 and SSL (XLS-R + AASIST back end) scoring speed on this CPU, against fp32 GEMM, side by side.

    python benchmarks/models_speed.py --model rawnet2 [--batch 8] [--rounds 5] [--threads N]
    python benchmarks/models_speed.py --model ssl [--batch 2] [--rounds 2] [--ssl-layers 24]

The method of ``aasist_speed.py``: every round times, back to back in this one process, a 2048^2
fp32 ``torch.mm`` (what this machine's BLAS gets on these threads right now), then each variant on
the same batch of 64600-sample clips; ratios are taken round by round, so a change in the machine's
load moves both sides. Variants:

* ``reference``: the detector's reference formulation (``log_probs``/``logits``, what ``forward``
  and attacks use), eager, under ``inference_mode``, on torch's intra-op threads;
* ``fast``: ``score``/``infer``, the inference path (models/_rawnet2_fast.py; ``SSLAASIST.infer``).

FLOPs per clip are the reference's, counted by torch's FlopCounterMode (the FFT path of RawNet2 does
less arithmetic, so its rate is an effective one). Parity: max |score difference| and max
|log-prob/logit difference| between the two variants on the timed batch, and on the features the
back end reads (RawNet2: the GRU input; SSL: the front end's last hidden state), relative to their
largest magnitude, since randomly initialised models map most inputs to nearly the same score.
No published weights are used: RawNet2 is randomly initialised unless ``--checkpoint`` is given; SSL
is XLS-R 300M (the card's architecture) at random initialisation; ``--ssl-layers N`` truncates its
24-layer encoder to time a smaller model quickly (the figure reported is the full one).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import _speed

TARGET = 0.5     # of fp32 GEMM
TOLERANCE = 1e-4  # on scores


def build(a: argparse.Namespace):
    """(detector, label, reference fn, fast fn, features fns) for the chosen model."""
    torch.manual_seed(0)  # the random initialisation of the benchmark's model
    if a.model == "rawnet2":
        from models import _rawnet2_fast, load_detector
        from models.rawnet2 import CONFIG, RawNet2

        det = (load_detector("rawnet2", checkpoint=a.checkpoint).detector if a.checkpoint
               else RawNet2.from_config(CONFIG)).eval()
        label = "RawNet2 " + ("(" + Path(a.checkpoint).name + ")" if a.checkpoint else "(random init)")
        feats = (det.features, lambda x: _rawnet2_fast.features(det, x))
        return det, label, det.log_probs, det.infer, feats
    from models._ssl_aasist_blocks import wav2vec2_hidden_time_major
    from models.ssl_aasist import SSLAASIST, XLSR_300M

    det = SSLAASIST.from_config({"frontend": "wav2vec2",
                                 "frontend_config": {**XLSR_300M, "num_hidden_layers": a.ssl_layers}}).eval()
    label = f"SSL-AASIST, XLS-R 300M with {a.ssl_layers} of 24 layers (random init)"
    fe = det.ssl_model.model
    feats = (det.ssl_model, lambda x: wav2vec2_hidden_time_major(fe, x))
    return det, label, det.logits, det.infer, feats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="rawnet2", choices=["rawnet2", "ssl"])
    ap.add_argument("--batch", type=int, help="clips per scoring call (default: rawnet2 8, ssl 2)")
    ap.add_argument("--rounds", type=int, help="timed rounds (default: rawnet2 5, ssl 2)")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, = cores)")
    ap.add_argument("--ssl-layers", type=int, default=24, help="XLS-R encoder layers to keep (24 = full)")
    ap.add_argument("--checkpoint", help="rawnet2: a trained checkpoint instead of a random initialisation")
    ap.add_argument("--json", help="write the figures to this file")
    a = ap.parse_args(argv)
    a.batch = a.batch or (8 if a.model == "rawnet2" else 2)
    a.rounds = a.rounds or (5 if a.model == "rawnet2" else 2)
    if not 1 <= a.ssl_layers <= 24:
        ap.error("--ssl-layers must be between 1 and 24")
    if a.threads:
        torch.set_num_threads(a.threads)
    load0 = os.getloadavg()
    det, label, reference, fast, (feat_ref, feat_fast) = build(a)
    det.fast_inference = True
    nb_samp = det.nb_samp
    flops = _speed.flops_per_clip(reference, nb_samp)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch, nb_samp, generator=gen) * torch.linspace(0.02, 0.5, a.batch).unsqueeze(1)
    fns = {"reference": reference, "fast": fast}
    with torch.inference_mode():
        first_call, outs = {}, {}
        for k, fn in fns.items():
            t = time.perf_counter()
            outs[k] = fn(x)                                   # warm-up, and the outputs compared
            first_call[k] = time.perf_counter() - t
        f_ref, f_fast = feat_ref(x), feat_fast(x)
        parity = {"score": float((outs["fast"][:, 1] - outs["reference"][:, 1]).abs().max()),
                  "both_classes": float((outs["fast"] - outs["reference"]).abs().max()),
                  "features_rel": float((f_fast - f_ref).abs().max() / f_ref.abs().max()),
                  "score_spread": float(outs["reference"][:, 1].max() - outs["reference"][:, 1].min())}
        rows, ratios = _speed.timed_rounds(fns, x, a.rounds, flops)
    load1 = os.getloadavg()
    g = float(np.median(rows["gemm"]))
    print(f"{label}: batch {a.batch}, {torch.get_num_threads()} threads, {a.rounds} rounds; "
          f"{flops / 1e9:.2f} GFLOP per {nb_samp}-sample clip (reference, FlopCounterMode)")
    print(f"load average {load0[0]:.2f} at start, {load1[0]:.2f} at end (of {os.cpu_count()} CPUs)")
    print(f"fp32 GEMM (torch.mm 2048^2): median {g:.1f} GFLOP/s (min {min(rows['gemm']):.1f}, "
          f"max {max(rows['gemm']):.1f})")
    print(f"{'variant':10s} {'s/clip':>8s} {'GFLOP/s':>8s} {'of GEMM':>8s} {'vs ref':>7s} {'1st call s':>10s}")
    ref = float(np.median(rows["reference"]))
    summary = {"model": a.model, "label": label, "batch": a.batch, "threads": torch.get_num_threads(),
               "rounds": a.rounds, "ssl_layers": a.ssl_layers if a.model == "ssl" else None,
               "gflop_per_clip": flops / 1e9, "gemm_gflops": g, "loadavg": [load0[0], load1[0]],
               "parity": parity, "rounds_gemm_gflops": rows["gemm"], "variants": {}}
    for k in fns:
        sec = float(np.median(rows[k]))
        frac = float(np.median(ratios[k]))
        print(f"{k:10s} {sec:8.3f} {flops / sec / 1e9:8.1f} {frac:8.0%} {ref / sec:6.2f}x {first_call[k]:10.1f}")
        summary["variants"][k] = {"s_per_clip": sec, "gflops": flops / sec / 1e9, "of_gemm": frac,
                                  "speedup_vs_reference": ref / sec, "first_call_s": first_call[k],
                                  "rounds_s_per_clip": rows[k], "rounds_of_gemm": ratios[k]}
    print(f"parity fast vs reference: max |score diff| {parity['score']:.1e} (scores spread over "
          f"{parity['score_spread']:.1e}), both classes {parity['both_classes']:.1e}; features max |diff| "
          f"{parity['features_rel']:.1e} of their largest magnitude")
    frac = summary["variants"]["fast"]["of_gemm"]
    ok = frac >= TARGET and parity["both_classes"] <= TOLERANCE
    print(f"TARGET {a.model} scoring >= {TARGET:.0%} of fp32 GEMM with scores within {TOLERANCE:g} of the "
          f"reference: fast path {frac:.0%}, |dscore| {parity['both_classes']:.1e} -> {'MET' if ok else 'MISSED'}")
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
