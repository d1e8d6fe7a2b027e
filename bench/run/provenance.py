"""What a run records about itself: versions, git revision, host, checkpoint digests, the data's digest,
run.json's provenance and where the scoring time went."""
from __future__ import annotations

import hashlib
import importlib.metadata as md
import logging
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)


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


def data_digest(dataset) -> str:
    """Digest of the selected utterances (id, label, path): a changed data set is not resumed into."""
    h = hashlib.sha256()
    for u in sorted(dataset.utterances, key=lambda u: u.utt_id):
        h.update(f"{u.utt_id}\t{u.label}\t{u.path}\n".encode())
    return h.hexdigest()


def run_provenance(cfg, suite, policy, dataset, loaded, device, out, workers) -> dict[str, Any]:
    """run.json's provenance: the resolved configuration, suite, policy, data, models by content, versions."""
    return {"config": {**asdict(cfg), "out": str(out), "resolved_device": device, "resolved_workers": workers},
            "suite": suite.to_dict(), "policy": policy.to_dict(), "seed": cfg.seed,
            "data": {"spec": cfg.data, "name": dataset.name, "n_utterances": len(dataset.utterances),
                     "n_bonafide": sum(u.label == "bonafide" for u in dataset.utterances),
                     "n_problems": len(dataset.problems), "sha256": data_digest(dataset)},
            "models": [{"name": ld.name, "card": ld.card.to_dict(), "checkpoint": ld.checkpoint,
                        "sha256": ld.sha256} for ld in loaded],
            "versions": versions(), "numerics": numerics(device), "git_revision": git_revision(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def timing_summary(now: Mapping[str, float], before: Mapping[str, Any] | None) -> dict[str, Any]:
    """Where this session's scoring time went (the scorer waiting for prepared audio vs scoring), added
    to an earlier session's of the same folder; the share says whether preparation bounds the run."""
    t = {k: round(float(v) + float((before or {}).get(k) or 0.0), 2) for k, v in now.items()}
    busy = t["waiting_for_preparation_s"] + t["scoring_s"]
    t["waiting_share"] = round(t["waiting_for_preparation_s"] / busy, 4) if busy > 0 else None
    if t["waiting_share"] is not None and t["waiting_share"] > 0.5 and busy > 60:
        log.warning("the scorer waited for prepared audio %.0f%% of the time: preparation bounds this run "
                    "(more --workers, --prepare-on device, or --cache for repeated runs)", 100 * t["waiting_share"])
    return t
