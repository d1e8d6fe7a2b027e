"""Worker-side preparation of audio: read, resample, perturb.

These functions run in worker processes (or in-process with ``workers=0``). They depend only on
their arguments, so the audio for (seed, utterance, condition) is the same in any process, order
or machine.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from bench.seeding import rng_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    utt_id: str
    path: str
    label: str
    condition_key: str
    spec: Mapping[str, Any]      # Perturbation.to_dict(); an attack condition prepares clean audio
    kind: str


@dataclass(frozen=True)
class Prepared:
    utt_id: str
    condition_key: str
    wav: np.ndarray | None
    error: str | None = None
    stage: str = ""


# Set once per worker by ``init_worker`` (the bona fide pool for babble, resource folders, ...).
_STATE: dict[str, Any] = {"seed": 0, "sr": 16000, "bonafide": (), "resources": {}}


def init_worker(seed: int, sr: int, bonafide: Sequence[tuple[str, str]], resources: Mapping[str, str]) -> None:
    _STATE.update(seed=int(seed), sr=int(sr), bonafide=tuple(bonafide), resources=dict(resources))
    read_clean.cache_clear()


@functools.lru_cache(maxsize=64)
def read_clean(path: str, sr: int) -> np.ndarray:
    from bench.audio import load_audio

    wav, _info = load_audio(path, target_sr=sr)
    wav.setflags(write=False)
    return wav


@functools.lru_cache(maxsize=256)
def _build(key: str, kind: str, spec_json: str):
    import json

    from perturbations import Perturbation

    return Perturbation.from_dict(json.loads(spec_json))


def bonafide_pool(rng: np.random.Generator, n: int, exclude: str = "") -> list[np.ndarray]:
    """Other bona fide utterances of the set (for babble), chosen by the caller's rng."""
    cands = [p for u, p in _STATE["bonafide"] if u != exclude]
    if not cands:
        raise ValueError("babble needs other bona fide utterances in the data set, and there are none")
    idx = rng.choice(len(cands), size=min(n, len(cands)), replace=len(cands) < n)
    return [np.asarray(read_clean(cands[i], _STATE["sr"])) for i in np.atleast_1d(idx)]


def prepare(task: Task) -> Prepared:
    """Read and perturb one utterance under one condition; errors are returned, never raised."""
    import json

    from perturbations import Context

    sr = _STATE["sr"]
    try:
        clean = read_clean(task.path, sr)
    except Exception as e:  # noqa: BLE001 - one bad file must not kill a run; the reason is recorded
        return Prepared(task.utt_id, task.condition_key, None, f"{type(e).__name__}: {e}", "read")
    if task.kind == "attack":
        return Prepared(task.utt_id, task.condition_key, np.array(clean))
    try:
        pert = _build(task.condition_key, task.kind, json.dumps(dict(task.spec), sort_keys=True, default=str))
        rng = rng_for(_STATE["seed"], task.utt_id, task.condition_key)
        ctx = Context(utt_id=task.utt_id, pool=bonafide_pool, resources=_STATE["resources"])
        wav = pert(np.array(clean), sr, rng, ctx)
        if not np.all(np.isfinite(wav)):
            raise ValueError("the perturbation produced non-finite samples")
    except Exception as e:  # noqa: BLE001 - recorded per utterance and condition
        return Prepared(task.utt_id, task.condition_key, None, f"{type(e).__name__}: {e}", "perturb")
    return Prepared(task.utt_id, task.condition_key, wav)
