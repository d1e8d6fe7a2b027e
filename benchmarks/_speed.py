"""What the CPU speed benchmarks share: the GEMM reference, FLOP counting, and the timed rounds."""
from __future__ import annotations

import time
from collections.abc import Callable

import torch


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def gemm_gflops(n: int = 2048) -> float:
    """fp32 ``torch.mm`` of n x n, best of 3: what this machine's BLAS gets on these threads right now."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(timed(lambda: torch.mm(a, b)) for _ in range(3))
    return 2 * n ** 3 / best / 1e9


def flops_per_clip(fn: Callable[[torch.Tensor], object], nb_samp: int) -> float:
    """FLOPs of ``fn`` on one zero clip, by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        fn(torch.zeros(1, nb_samp))
    return float(fc.get_total_flops())


def timed_rounds(fns: dict[str, Callable], x: torch.Tensor, rounds: int, flops: float
                 ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each round: the GEMM reference, then every variant on ``x``. Returns seconds per clip per round
    (and the GEMM's GFLOP/s under "gemm"), and each variant's fraction of that round's GEMM."""
    rows: dict[str, list[float]] = {k: [] for k in ["gemm", *fns]}
    ratios: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        g = gemm_gflops()
        rows["gemm"].append(g)
        for k, fn in fns.items():
            sec = timed(lambda fn=fn: fn(x)) / x.shape[0]
            rows[k].append(sec)
            ratios[k].append(flops / sec / 1e9 / g)
    return rows, ratios
