"""Which torch device a run uses."""
from __future__ import annotations


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; an explicit CUDA device must exist."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device} was asked for, but torch sees no CUDA device; use --device cpu")
    return device


def fast_inference_enabled() -> bool:
    """``BENCH_FAST_INFERENCE=0`` makes detectors score through their reference ``forward`` (for checking the
    CPU inference paths); read by the application and passed to ``models.load_detector``."""
    import os

    return os.environ.get("BENCH_FAST_INFERENCE", "1").strip() != "0"
