"""What a run records about itself: versions, git revision, host, checkpoint digests."""
from __future__ import annotations

import importlib.metadata as md
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("deepfake-bench", "torch", "torchaudio", "numpy", "scipy", "pandas", "av", "soundfile",
                 "pyroomacoustics", "audiomentations", "pydub", "transformers"):
        out[dist] = _version(dist)
    try:
        import av

        out["ffmpeg"] = {k: ".".join(map(str, v)) for k, v in av.library_versions.items()}
    except Exception:  # noqa: BLE001 - optional information
        out["ffmpeg"] = None
    try:
        import soundfile

        out["libsndfile"] = soundfile.__libsndfile_version__
    except Exception:  # noqa: BLE001
        out["libsndfile"] = None
    return out


def numerics(device: str) -> dict[str, Any]:
    """How the device computes: scores on CUDA differ from CPU ones by float rounding, and by more where
    torch's default TF32 convolutions are on (cuDNN convolutions in TF32; matmuls in fp32)."""
    import torch

    out: dict[str, Any] = {"device": device, "torch_threads": torch.get_num_threads()}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        out.update(gpu=torch.cuda.get_device_name(torch.device(device)), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                   matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    return out


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
