"""The Ray executor: ``bench run ... --executor ray [--address auto|HOST:PORT]``.

Units of work (detector x condition x shard) are spread over a Ray cluster; the runner in the
driver process stays the single writer to the run's store.

* Audio preparation (read + perturb, i.e. codec and room work) runs in CPU tasks
  (``num_cpus=1``), a few utterances per task. Each worker process calls
  :func:`bench.run.prepare.init_worker` once, keyed by a digest of the run's init arguments.
* Scoring runs in long-lived actors, each holding a :class:`bench.run.units.Scorer` built from the
  run's :class:`bench.run.units.ScorerSpec`; an actor asks for a GPU when the detector runs on CUDA.
* At most ``inflight_per_scorer`` units per actor are in flight, so memory does not grow with
  the manifest; results are yielded as they complete (``ray.wait``), in any order.
* An actor or worker that dies mid-unit costs only that unit's attempt: the actor is replaced
  and the unit is submitted again. A unit that fails ``max_attempts`` times is recorded as a
  scoring problem (retried on resume, like any failed score), so one poisonous input cannot hang
  a run. Scores depend only on (seed, utterance, condition), never on where they were computed.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import os
import pickle
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

try:
    import ray
    from ray.exceptions import (NodeDiedError, ObjectLostError, OutOfMemoryError, RayActorError,
                                WorkerCrashedError)
except ImportError as e:  # Ray is an optional extra; make_executor turns this into a hint
    raise ImportError(f"{e}. The ray executor needs Ray: pip install 'deepfake-bench[ray]' "
                      "(or pip install 'ray[default]')") from e

from bench.run.prepare import Prepared, Task, init_worker, prepare
from bench.run.units import Scorer, ScorerSpec, Unit, UnitResult

log = logging.getLogger(__name__)

# Failures of the machinery (a process or node died, an object was lost), not of the unit's code:
# worth another attempt elsewhere. Anything else (a bug) is raised.
RETRYABLE = (RayActorError, WorkerCrashedError, ObjectLostError, NodeDiedError, OutOfMemoryError)
# Environment forwarded to the cluster's workers: where weights, caches and models live.
FORWARD_ENV = ("BENCH_", "HF_", "TRANSFORMERS_", "TORCH_HOME")

_INIT_KEY: str | None = None  # per worker process: which init_worker arguments are in effect


def _ensure_init(key: str, boxed_init: list) -> None:
    """Call init_worker once per process and run (the arguments come from the object store)."""
    global _INIT_KEY
    if _INIT_KEY != key:
        init_worker(*ray.get(boxed_init[0]))
        _INIT_KEY = key


@ray.remote(num_cpus=1, max_retries=3)
def _prepare_chunk(key: str, boxed_init: list, tasks: tuple[Task, ...]) -> list[Prepared]:
    _ensure_init(key, boxed_init)
    return [prepare(t) for t in tasks]


class _ScorerActor:
    """Holds the detectors on one device; turns a unit's prepared audio into rows."""

    def __init__(self, spec: ScorerSpec, threads: int):
        import torch

        torch.set_num_threads(threads)  # what the actor reserved, whatever OMP_NUM_THREADS says
        self.scorer = Scorer(spec)

    def ready(self) -> int:
        return os.getpid()

    def score(self, unit: Unit, *chunks: list[Prepared]) -> tuple[list, list, list, list]:
        # Arrays from Ray's object store are read-only views; give the scorer what the local executor
        # gives it (its own writable copy), so no code path can behave differently here.
        prepared = [p if p.wav is None or p.wav.flags.writeable else replace(p, wav=np.array(p.wav))
                    for chunk in chunks for p in chunk]
        res = self.scorer(unit, prepared)
        return res.scores, res.problems, res.quality, res.segments, res.files


@dataclass
class _Job:
    unit: Unit
    attempts: int = 0
    slot: int = -1
    generation: int = -1


def _absolute(path: str) -> str:
    """Relative paths mean the driver's working directory; other nodes need them spelled out."""
    if not isinstance(path, str) or not path or os.path.isabs(path) or "://" in path:
        return path
    return os.path.abspath(path)


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a HOST:PORT nobody listens on (ray.init would retry for minutes)."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # auto, ray://..., or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise RuntimeError(f"no Ray cluster answers at --address {address} ({e}); start one with "
                           "'ray start --head --port=PORT' (see docs/scale-out.md), or leave --address out "
                           "to start a private one on this machine") from e


def _forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARD_ENV)}


class RayExecutor:
    name = "ray"

    def __init__(self, workers: int, seed: int, sr: int, bonafide: Sequence[tuple[str, str]],
                 resources: Mapping[str, str], scorer_spec: ScorerSpec, address: str | None = None,
                 num_scorers: int | None = None, inflight_per_scorer: int = 2, chunk_size: int = 8,
                 max_attempts: int = 3, threads_per_scorer: int = 1, cache_dir: str | None = None,
                 max_seconds: float | None = 600.0, **_: Any):
        self.init = (int(seed), int(sr), tuple((u, _absolute(p)) for u, p in bonafide),
                     {k: _absolute(v) for k, v in resources.items()}, _absolute(cache_dir) if cache_dir else None,
                     None, max_seconds)
        self.key = hashlib.sha256(pickle.dumps(self.init)).hexdigest()[:16]
        self.spec = scorer_spec
        self.address = address
        self.num_scorers = num_scorers
        self.inflight_per_scorer = max(1, int(inflight_per_scorer))
        self.chunk_size = max(1, int(chunk_size))
        self.max_attempts = max(1, int(max_attempts))
        self.threads = max(1, int(threads_per_scorer))
        self.gpu = scorer_spec.device.startswith("cuda")
        self._started_ray = False
        self._actors: list[Any] = []
        self._generation: list[int] = []
        self._replacements = 0
        self._actor_cls = None
        self._init_ref = None
        self._affinity: dict[str, int] = {}   # universal condition key -> the actor that learned its filter

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "RayExecutor":
        if ray.is_initialized():
            log.info("ray: using the Ray instance this process is already connected to")
        else:
            opts: dict[str, Any] = {"logging_level": logging.WARNING,
                                    "runtime_env": {"env_vars": _forwarded_env()}}
            if self.address:
                _check_reachable(self.address)
                ray.init(address=self.address, **opts)
            else:  # a private single-machine instance (even if RAY_ADDRESS is set); no dashboard
                ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, **opts)
            self._started_ray = True
        return self

    def __exit__(self, *exc: object) -> None:
        for a in self._actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception as e:  # noqa: BLE001 - an already-dead actor is fine at shutdown
                log.debug("killing a scorer actor: %s", e)
        self._actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def _start_actors(self) -> None:
        res = ray.cluster_resources()
        cpus, gpus = int(res.get("CPU", 0)), int(res.get("GPU", 0))
        spec = self.spec
        if self.gpu:
            if gpus < 1:
                raise RuntimeError(f"the detector runs on {spec.device}, but the Ray cluster has no GPU "
                                   f"(resources: {res}); add GPU nodes or use --device cpu")
            spec = replace(spec, device="cuda")     # Ray makes the actor's own GPU cuda:0
            n = self.num_scorers or gpus
            opts = {"num_gpus": 1, "num_cpus": 0}   # CPUs stay free for preparation on GPU nodes
        else:
            if cpus < 1:
                raise RuntimeError(f"the Ray cluster has no CPUs (resources: {res})")
            # Scoring dominates on CPU; keep a quarter of the cores (at least one) for audio preparation,
            # or preparation tasks could wait forever behind actors that hold every CPU.
            spare = max(1, cpus // 4)
            n = self.num_scorers or max(1, (cpus - spare) // self.threads)
            opts = {"num_cpus": self.threads if cpus > n * self.threads else 0}
        self._actor_cls = ray.remote(max_restarts=0, max_task_retries=0, **opts)(_ScorerActor)
        self._spec = spec
        self._init_ref = ray.put(self.init)
        self._actors = [self._actor_cls.remote(spec, self.threads) for _ in range(n)]
        self._generation = [0] * n
        try:
            pids = ray.get([a.ready.remote() for a in self._actors])
        except RayActorError as e:
            raise RuntimeError(f"the scorer actors could not load the detectors ({e}); check that the "
                               "code, BENCH_WEIGHTS_DIR and checkpoints are visible on every Ray node") from e
        log.info("ray: %d scorer actor(s) on %s (pids %s), cluster %d CPU / %d GPU", n, spec.device,
                 pids, cpus, gpus)

    def _replace_actor(self, slot: int, why: BaseException) -> None:
        self._replacements += 1
        if self._replacements > 3 * len(self._actors) + 3:
            raise RuntimeError(f"scorer actors keep dying ({self._replacements} replaced); last error: {why}")
        log.warning("ray: scorer actor %d died (%s); starting a replacement", slot, type(why).__name__)
        try:
            ray.kill(self._actors[slot], no_restart=True)
        except Exception as e:  # noqa: BLE001 - it is usually already gone
            log.debug("killing a dead scorer actor: %s", e)
        self._actors[slot] = self._actor_cls.remote(self._spec, self.threads)
        self._generation[slot] += 1

    # -- work ------------------------------------------------------------------------------
    def _submit(self, job: _Job, load: list[int]):
        tasks = tuple(replace(t, path=_absolute(t.path)) for t in job.unit.tasks)
        chunks = [_prepare_chunk.remote(self.key, [self._init_ref], tasks[i:i + self.chunk_size])
                  for i in range(0, len(tasks), self.chunk_size)]
        key = job.unit.condition.key() if job.unit.train else None
        if key is not None and key in self._affinity:
            # a universal attack's filter is learned once per actor (Scorer._learned caches it): every unit
            # of the condition goes where it was learned, so it is not learned again on each actor
            slot = self._affinity[key]
        else:
            slot = min(range(len(self._actors)), key=lambda i: (load[i], i))
            if key is not None:
                self._affinity[key] = slot
        job.slot, job.generation = slot, self._generation[slot]
        load[slot] += 1
        return self._actors[slot].score.remote(job.unit, *chunks)

    def run(self, units: Iterable[Unit], scorer: Scorer | None = None) -> Iterator[UnitResult]:
        """Yields one UnitResult per unit as it completes. ``scorer`` (the driver's) is not used."""
        it = iter(units)
        first = next(it, None)
        if first is None:        # nothing left to do (a finished run resumed): no actors needed
            return
        if not self._actors:
            self._start_actors()
        it = itertools.chain([first], it)
        retry: deque[_Job] = deque()
        pending: dict[Any, _Job] = {}
        load = [0] * len(self._actors)
        cap = self.inflight_per_scorer * len(self._actors)
        exhausted = False
        while True:
            while len(pending) < cap and (retry or not exhausted):
                if retry:
                    job = retry.popleft()
                else:
                    unit = next(it, None)
                    if unit is None:
                        exhausted = True
                        break
                    job = _Job(unit)
                pending[self._submit(job, load)] = job
            if not pending:
                return
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            load[job.slot] -= 1
            try:
                scores, problems, quality, segments, files = ray.get(ready[0])
            except RETRYABLE as e:
                if isinstance(e, RayActorError) and job.generation == self._generation[job.slot]:
                    self._replace_actor(job.slot, e)
                job.attempts += 1
                if job.attempts < self.max_attempts:
                    cond = job.unit.condition
                    log.warning("ray: a unit of %s@%d (%d utterances) was lost to %s; submitting it again "
                                "(attempt %d)", cond.family, cond.severity, len(job.unit.tasks),
                                type(e).__name__, job.attempts + 1)
                    retry.append(job)
                    continue
                yield self._failed(job, e)
                continue
            yield UnitResult(job.unit, scores, problems, quality, segments, files)

    def _failed(self, job: _Job, err: BaseException) -> UnitResult:
        cond = job.unit.condition
        log.error("ray: a unit of %s@%d failed %d times; recording its scores as failed (%s)", cond.family,
                  cond.severity, job.attempts, err)
        paths = {t.utt_id: t.path for t in job.unit.tasks}
        reason = f"{type(err).__name__} after {job.attempts} attempts: {str(err).splitlines()[0][:300]}"
        return UnitResult(job.unit, [], [(u, paths[u], "score", reason, cond.family, cond.severity, name)
                                         for name, ids in job.unit.needs for u in ids])
