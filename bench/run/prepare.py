"""Worker-side preparation of audio: read, resample, perturb.

These functions run in worker processes (or in-process with ``workers=0``). They depend only on
their arguments, so the audio for (seed, utterance, condition) is the same in any process, order
or machine. Reading goes through :func:`bench.run.inputs.read_input`: every prepared clip carries its
file's content digest and its level warnings (silence, too short, channels that cancel, far above full
scale), and a perturbation that left a clip unchanged is warned about per condition.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from bench.run.inputs import FileDigest, read_input, unchanged_note
from foundation.audio import MAX_SECONDS
from foundation.seeding import rng_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    utt_id: str
    path: str
    label: str
    condition_key: str
    spec: Mapping[str, Any]      # Perturbation.to_dict(); an attack condition prepares clean audio
    kind: str                    # perturbation | chain | attack | device (perturbed by the scorer)
    segments: tuple | None = None   # spoofed (start_s, end_s) of partially spoofed data; None: no labels


@dataclass(frozen=True)
class Prepared:
    utt_id: str
    condition_key: str
    wav: np.ndarray | None
    error: str | None = None
    stage: str = ""
    note: str | None = None      # a warning about a usable input (recorded in problems.csv, stage "level")
    #: (snr_db, pesq, stoi) of ``wav`` against the clean input (bench/metrics/quality.py); None when not measured
    quality: tuple[float, float, float] | None = None
    digest: FileDigest | None = None   # the content the audio was read from (bench/run/inputs.py)
    cond_note: str | None = None       # a warning about this clip under this condition (stage "level")


_WARNED: set[str] = set()


def read_clean(path: str, sr: int, max_seconds: float | None = MAX_SECONDS) -> np.ndarray:
    """The clean waveform of ``path`` at ``sr`` (cached per process with its digest and level notes)."""
    return read_input(path, int(sr), max_seconds)[0]


@functools.lru_cache(maxsize=256)
def _build(spec_json: str):
    import json

    from perturbations import Perturbation

    return Perturbation.from_dict(json.loads(spec_json))


@dataclass(frozen=True)
class WorkerContext:
    """What preparation needs besides a task: the run's seed and rate, the bona fide pool (for babble),
    resource folders and the audio cache. One per process, set by :func:`init_worker` (the pool's
    initializer); :func:`worker_context` hands it to the code that prepares or crafts in this process."""

    seed: int = 0
    sr: int = 16000
    bonafide: tuple[tuple[str, str], ...] = ()
    resources: Mapping[str, str] = field(default_factory=dict)
    cache_dir: str | None = None
    device: str | None = None     # where models inside perturbations (neural codecs) run: the scoring device
    max_seconds: float | None = MAX_SECONDS   # longer files are refused before decoding (--max-seconds)

    def read_clean(self, path: str) -> np.ndarray:
        return read_clean(path, self.sr, self.max_seconds)

    def bonafide_pool(self, rng: np.random.Generator, n: int, exclude: str = "") -> list[np.ndarray]:
        """Other bona fide utterances of the set (for babble), chosen by the caller's rng."""
        cands = [p for u, p in self.bonafide if u != exclude]
        if not cands:
            raise ValueError("babble needs other bona fide utterances in the data set, and there are none")
        idx = rng.choice(len(cands), size=min(n, len(cands)), replace=len(cands) < n)
        return [np.asarray(self.read_clean(cands[i])) for i in np.atleast_1d(idx)]

    def perturbation_context(self, utt_id: str):
        """The :class:`perturbations.Context` a perturbation of ``utt_id`` receives."""
        from perturbations import Context

        return Context(utt_id=utt_id, pool=self.bonafide_pool, resources=dict(self.resources), device=self.device)

    def cache_path(self, task: Task) -> Path | None:
        """Where the perturbed audio of a task is cached: keyed by (seed, utterance, file size and mtime,
        rate, condition key); the key holds the perturbation's ``version``, so a changed family misses.
        Attacks (crafted per detector) and the identity (severity 0) are not cached."""
        if not self.cache_dir or task.kind != "perturbation" and task.kind != "chain" \
                or int(task.spec.get("severity", 0)) == 0:
            return None
        try:
            st = os.stat(task.path)
        except OSError:
            return None
        ident = f"{self.seed}|{task.utt_id}|{os.path.abspath(task.path)}|{st.st_size}|{st.st_mtime_ns}|" \
                f"{self.sr}|{task.condition_key}"
        digest = hashlib.sha256(ident.encode()).hexdigest()
        return Path(self.cache_dir) / digest[:2] / f"{digest}.npy"

    def prepare(self, task: Task) -> Prepared:
        """Read and perturb one utterance under one condition; errors are returned, never raised."""
        import json

        try:
            clean, digest, notes = read_input(task.path, self.sr, self.max_seconds)
        except Exception as e:  # noqa: BLE001 - one bad file must not kill a run; the reason is recorded
            return Prepared(task.utt_id, task.condition_key, None, f"{type(e).__name__}: {e}", "read")
        note = "; ".join(notes) or None
        if note is not None and task.path not in _WARNED:   # once per file and process, not per condition
            _WARNED.add(task.path)
            log.warning("%s: %s", task.path, note)
        if task.kind in ("attack", "device"):   # crafted / perturbed (and measured) by the scorer on its device
            return Prepared(task.utt_id, task.condition_key, np.array(clean), note=note, digest=digest)
        cached = self.cache_path(task)
        if cached is not None and cached.is_file():
            try:
                wav = np.load(cached)
                if wav.shape == clean.shape:
                    return Prepared(task.utt_id, task.condition_key, wav, note=note, digest=digest,
                                    quality=quality_of(task, clean, wav, self.sr),
                                    cond_note=self._unchanged(task, clean, wav))
            except (OSError, ValueError) as e:
                log.warning("ignoring unreadable cache entry %s: %s", cached, e)
        try:
            pert = _build(json.dumps(dict(task.spec), sort_keys=True, default=str))
            rng = rng_for(self.seed, task.utt_id, task.condition_key)
            wav = pert(np.array(clean), self.sr, rng, self.perturbation_context(task.utt_id))
            if not np.all(np.isfinite(wav)):
                raise ValueError("the perturbation produced non-finite samples")
        except Exception as e:  # noqa: BLE001 - recorded per utterance and condition
            return Prepared(task.utt_id, task.condition_key, None, f"{type(e).__name__}: {e}", "perturb", note,
                            digest=digest)
        if cached is not None:
            _cache_put(cached, wav)
        return Prepared(task.utt_id, task.condition_key, wav, quality=quality_of(task, clean, wav, self.sr),
                        note=note, digest=digest, cond_note=self._unchanged(task, clean, wav))

    @staticmethod
    def _unchanged(task: Task, clean: np.ndarray, wav: np.ndarray) -> str | None:
        sev = int(task.spec.get("severity", 0))
        return unchanged_note(clean, wav, str(task.spec.get("family", "")), sev) if sev else None


def quality_of(task: Task, clean: np.ndarray, wav: np.ndarray, sr: int) -> tuple[float, float, float] | None:
    """The degraded audio's quality against its clean input (bench/metrics/quality.py): None for the identity
    (severity 0), and when the measurement itself fails (the score is still worth having)."""
    if int(task.spec.get("severity", 0)) == 0 or task.spec.get("family") == "clean":
        return None
    from bench.metrics.quality import measure

    try:
        return measure(clean, wav, sr, task.utt_id)
    except Exception as e:  # noqa: BLE001 - a quality measure must never cost a score
        log.warning("%s: quality not measured: %s", task.utt_id, e)
        return None


_CONTEXT = WorkerContext()   # this process's context (replaced by init_worker)


def init_worker(seed: int, sr: int, bonafide: Sequence[tuple[str, str]], resources: Mapping[str, str],
                cache_dir: str | None = None, device: str | None = None,
                max_seconds: float | None = MAX_SECONDS) -> WorkerContext:
    """Sets this process's :class:`WorkerContext` (the pool initializer; also called in the main process)."""
    global _CONTEXT
    _CONTEXT = WorkerContext(int(seed), int(sr), tuple(bonafide), dict(resources), cache_dir, device, max_seconds)
    read_input.cache_clear()
    return _CONTEXT


def init_pool_worker(parent_pid: int, *args: Any) -> WorkerContext:
    """:func:`init_worker` for a pool process, plus a watchdog: when the parent dies (kill -9 included)
    the worker is re-parented, notices within half a second and exits, instead of idling for minutes."""
    import threading

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(3)
            time.sleep(0.5)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    return init_worker(*args)


def worker_context() -> WorkerContext:
    """This process's :class:`WorkerContext`."""
    return _CONTEXT


def _cache_put(path: Path, wav: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, wav.astype(np.float32, copy=False))
        os.replace(tmp, path)
    except OSError as e:  # a full or read-only cache must not stop the run
        log.warning("could not write the audio cache %s: %s", path, e)


def prepare(task: Task) -> Prepared:
    """:meth:`WorkerContext.prepare` with this process's context (what executors submit to workers)."""
    return _CONTEXT.prepare(task)
