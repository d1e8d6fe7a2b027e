"""The importable API behind the CLI; every function returns plain data or pandas DataFrames."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from bench.runner import RunConfig, RunResult
from bench.runner import run as _run
from foundation.device import fast_inference_enabled, resolve_device

log = logging.getLogger(__name__)

__all__ = ["models", "perturbations", "suites", "score_files", "perturb_file", "run", "RunConfig", "RunResult"]


def models() -> pd.DataFrame:
    """Detectors and known checkpoints (one row per card)."""
    from models import list_cards

    rows = []
    for c in list_cards():
        rows.append({"name": c.name, "architecture": c.architecture, "params": c.params,
                     "training_data": c.training_data, "published_eer": c.published_eer,
                     "licence": c.licence, "checkpoint": c.filename, "url": c.url, "sha256": c.sha256,
                     "input_policy": c.input_policy, "description": c.description})
    return pd.DataFrame(rows).astype(object)


def perturbations() -> list[dict[str, Any]]:
    """Families with their severity ladders: ``[{"family", "levels": [{"severity", "params"}], ...}]``."""
    from perturbations import PERTURBATIONS, families

    out = []
    for name in families():
        cls = PERTURBATIONS.get(name)
        out.append({"family": name, "version": cls.version, "description": cls.describe(),
                    "levels": cls.levels()})
    return out


def suites() -> list[dict[str, Any]]:
    from bench.suite import builtin_names, load_suite

    out = []
    for name in builtin_names():
        s = load_suite(name)
        conds = s.expand()
        out.append({"name": s.name, "description": s.description, "policy": s.policy,
                    "families": list(dict.fromkeys(c.family for c in conds)),
                    "n_conditions": len(conds), "sha256": s.sha256})
    return out


def score_files(model: str, files: Sequence[str | Path], checkpoint: str | None = None,
                policy: str | None = None, device: str = "auto", batch_size: int = 8) -> pd.DataFrame:
    """Scores audio files (any rate, channels, common formats). Unreadable files get a NaN score and an error."""
    from foundation.audio import AudioError, load_audio
    from bench.policy import parse_policy, score_batch
    from models import load_detector

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"--batch-size must be an integer >= 1, got {batch_size!r}")
    dev = resolve_device(device)
    ld = load_detector(model, checkpoint=checkpoint, device=dev, fast_inference=fast_inference_enabled())
    pol = parse_policy(policy or ld.card.input_policy)
    wavs, rows = [], []
    for f in files:
        try:
            wav, info = load_audio(f, target_sr=ld.detector.sample_rate)
            wavs.append(wav)
            rows.append({"path": str(f), "duration_s": info.duration_s, "orig_sr": info.orig_sr, "error": None})
        except AudioError as e:
            rows.append({"path": str(f), "duration_s": None, "orig_sr": None, "error": str(e)})
    scores = iter(np.asarray(score_batch(ld.detector, wavs, pol, batch_size=batch_size, device=dev))
                  if wavs else [])
    for r in rows:
        r["score"] = float(next(scores)) if r["error"] is None else float("nan")
        r.update(model=ld.name, policy=str(pol), checkpoint_sha256=ld.sha256)
    df = pd.DataFrame(rows, columns=["path", "score", "model", "policy", "duration_s", "orig_sr",
                                     "checkpoint_sha256", "error"])
    df["error"] = pd.Series([r["error"] for r in rows], index=df.index, dtype=object)   # None, never NaN
    return df


def perturb_file(family: str, severity: int, src: str | Path, dst: str | Path, seed: int = 0,
                 resources: dict[str, str] | None = None, sample_rate: int = 16000,
                 pool_data: str = "demo") -> dict[str, Any]:
    """Applies one perturbation level to one file and writes the result (so a person can listen).

    The input is first brought to ``sample_rate`` (the detectors' 16 kHz by default), so the file
    is what a detector would hear under that condition. Babble draws its talkers from the bona
    fide utterances of ``pool_data`` (a data spec; the built-in demo set by default).
    """
    from foundation.audio import load_audio, save_audio
    from bench.prepare import WorkerContext
    from foundation.seeding import rng_for
    from perturbations import make

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"--seed must be an integer 0..{2**32 - 1}, got {seed!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 1000 <= sample_rate <= 384000:
        raise ValueError(f"--sample-rate must be an integer number of Hz in 1000..384000, got {sample_rate!r}")
    if not str(dst).strip():
        raise ValueError("OUT is empty; give the file to write")
    pert = make(family, severity)  # a bad family or severity is reported before any audio is read
    wav, _info = load_audio(src, target_sr=sample_rate)
    utt = Path(src).stem
    bonafide: list[tuple[str, str]] = []
    if pert.needs_pool:
        from bench.data import load_dataset

        data = load_dataset(pool_data)
        bonafide = [(u.utt_id, str(u.path)) for u in data.utterances if u.label == "bonafide"]
    ctx = WorkerContext(seed, sample_rate, tuple(bonafide), dict(resources or {})).perturbation_context(utt)
    out = pert(wav, sample_rate, rng_for(seed, utt, pert.key()), ctx)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 1.0:
        log.warning("the output peaks at %.2f; it is scaled down by that factor for the file", peak)
        out = out / peak
    save_audio(dst, out, sample_rate)
    return {"in": str(src), "out": str(dst), "perturbation": pert.to_dict(), "sample_rate": sample_rate}


def run(suite: str = "compression", **kwargs: Any) -> RunResult:
    """Python mirror of ``bench run``: ``run("compression", models=("aasist",), limit=20)``.

    Keyword arguments are :class:`bench.runner.RunConfig`'s fields, every one validated before any work.
    ``trust_code=True`` allows a suite file to name Python classes (``source: package.module:Class``),
    which imports and runs their code; ``retry_problems=True`` tries recorded problems again. Raises
    :class:`bench.runner.RunFailed` (tables written) when nothing could be scored for a model."""
    if "models" in kwargs and isinstance(kwargs["models"], str):
        kwargs["models"] = tuple(m for m in kwargs["models"].split(",") if m)
    return _run(RunConfig(suite=suite, **kwargs))
