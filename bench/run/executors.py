"""Executors move units of work around; they never change what a unit computes.

The local executor prepares audio (read + perturb) in a pool of spawned worker processes and
scores in this process on the run's device, preparing the next units while the current one is
scored, with a bounded number of tasks in flight so memory does not grow with the manifest.
Every executor yields :class:`bench.run.units.UnitResult` objects; the runner is the single writer.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from bench.run.prepare import init_pool_worker, init_worker, prepare
from bench.run.units import Scorer, Unit, UnitResult

log = logging.getLogger(__name__)


class _WorkersSkipMain:
    """While active, spawned processes do not re-run the parent's ``__main__`` (a user's script).

    A spawned child normally re-imports the parent's main script, so ``api.run(...)`` at the top of a
    script without an ``if __name__ == "__main__":`` guard would run again in every worker and fail.
    Our workers need only importable modules (:mod:`bench.run.prepare`), so the main module's path and
    name are left out of the children's preparation data.
    """

    def __enter__(self):
        import multiprocessing.spawn as spawn

        self._orig = spawn.get_preparation_data

        def prep(name, _orig=self._orig):
            d = _orig(name)
            d.pop("init_main_from_path", None)
            d.pop("init_main_from_name", None)
            return d
        spawn.get_preparation_data = prep
        return self

    def __exit__(self, *exc):
        import multiprocessing.spawn as spawn

        spawn.get_preparation_data = self._orig


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int, seed: int, sr: int, bonafide: Sequence[tuple[str, str]],
                 resources: Mapping[str, str], prefetch: int = 64, cache_dir: str | None = None,
                 codec_device: str | None = None, max_seconds: float | None = 600.0, **_: Any):
        self.workers = int(workers)
        self.init = (seed, sr, tuple(bonafide), dict(resources), cache_dir, codec_device, max_seconds)
        self.prefetch = max(1, prefetch, 4 * self.workers)   # tasks in flight: enough to keep every worker busy
        self._pool: ProcessPoolExecutor | None = None
        #: seconds the scorer waited for prepared audio, and spent scoring (run.json's ``timing``)
        self.timing = {"waiting_for_preparation_s": 0.0, "scoring_s": 0.0}

    def __enter__(self) -> "LocalExecutor":
        init_worker(*self.init)
        if self.workers > 0:
            self._skip_main = _WorkersSkipMain().__enter__()   # workers start on demand while the pool runs
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=init_pool_worker, initargs=(os.getpid(), *self.init))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._skip_main.__exit__(*exc)

    def run(self, units: Iterable[Unit], scorer: Scorer | Callable[[], Scorer]) -> Iterator[UnitResult]:
        """Scores every unit. ``scorer`` may be a factory: it is then called once the first
        preparations are submitted, so loading the detectors overlaps the workers' start-up."""
        source = _Prefetch(self._pool, units, self.prefetch) if self._pool is not None else None
        if source is not None:
            source.fill()
        if not isinstance(scorer, Scorer):
            scorer = scorer()
        if source is None:
            source = ((unit, [prepare(t) for t in unit.tasks]) for unit in units)
        items = iter(source)
        while True:
            t = time.perf_counter()
            item = next(items, None)   # in-process preparation (workers=0) counts as waiting
            if item is None:
                return
            t1 = time.perf_counter()
            res = scorer(*item)
            self.timing["waiting_for_preparation_s"] += t1 - t
            self.timing["scoring_s"] += time.perf_counter() - t1
            yield res


class _Prefetch:
    """Units in order with their preparations, keeping at most ``prefetch`` tasks in flight."""

    def __init__(self, pool: ProcessPoolExecutor, units: Iterable[Unit], prefetch: int):
        self.pool, self.units, self.prefetch = pool, iter(units), prefetch
        self.window: deque[tuple[Unit, list[Future]]] = deque()
        self.in_flight = 0
        self.exhausted = False

    def fill(self) -> None:
        while not self.exhausted and (self.in_flight < self.prefetch or not self.window):
            unit = next(self.units, None)
            if unit is None:
                self.exhausted = True
                return
            futs = [self.pool.submit(prepare, t) for t in unit.tasks]
            self.window.append((unit, futs))
            self.in_flight += len(futs)

    def __iter__(self) -> Iterator[tuple[Unit, list]]:
        while True:
            self.fill()
            if not self.window:
                return
            unit, futs = self.window.popleft()
            self.in_flight -= len(futs)
            self.fill()   # the next units prepare while this one waits and is scored (no bubble for big units)
            yield unit, [f.result() for f in futs]


def make_executor(name: str, **kwargs: Any):
    if name == "local":
        return LocalExecutor(**kwargs)
    if name == "ray":
        try:
            from bench.run.ray_executor import RayExecutor
        except ImportError as e:
            raise RuntimeError(f"the ray executor needs Ray ({e}): pip install 'deepfake-bench[ray]' "
                               "(or pip install 'ray[default]')") from None
        return RayExecutor(**kwargs)
    raise ValueError(f"unknown executor {name!r}; choose local or ray")
