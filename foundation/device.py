"""Which torch device a run uses, and the options of how it computes there (batch size, precision, compilation),
checked before any work by the parts that score (bench/scoring) and train (bench/train)."""
from __future__ import annotations

from typing import Any

PRECISIONS = ("fp32", "bf16", "fp16")
COMPILE_MODES = ("off", "on", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; an explicit CUDA device must exist."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device} was asked for, but torch sees no CUDA device; use --device cpu")
    return device


def parse_batch_size(value: Any) -> int | str:
    """``auto`` or a whole number >= 1 (as given on the command line or in Python)."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v == "auto":
            return "auto"
        if v.isdigit():
            value = int(v)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"--batch-size must be auto or an integer >= 1, got {value!r}")
    return value


def check_inference_options(batch_size: Any, precision: str, compile: str, device: str) -> None:
    """``--batch-size``, ``--precision`` and ``--compile`` checked before any work, each error naming its option."""
    parse_batch_size(batch_size)
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if compile not in COMPILE_MODES:
        raise ValueError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {compile!r}")
    check_precision(precision, device)


def check_precision(precision: str, device: str) -> None:
    """fp16 autocast is a GPU feature: on another device say so before any work."""
    if precision == "fp16" and not str(device).startswith("cuda"):
        raise ValueError(f"--precision fp16 needs a CUDA device (the run scores on {device}); "
                         "use --precision bf16 on a CPU")


def fast_inference_enabled() -> bool:
    """``BENCH_FAST_INFERENCE=0`` makes detectors score through their reference ``forward`` (for checking the
    CPU inference paths); read by the application and passed to ``models.load_detector``."""
    import os

    return os.environ.get("BENCH_FAST_INFERENCE", "1").strip() != "0"
