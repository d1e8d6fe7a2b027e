"""Executors move units of work around; they never change what a unit computes.

The local executor prepares audio (read + perturb) in a pool of spawned worker processes and
scores in this process on the run's device, preparing the next units while the current one is
scored, with a bounded number of tasks in flight so memory does not grow with the manifest.
Every executor yields :class:`bench.units.UnitResult` objects; the runner is the single writer.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Iterable, Iterator, Mapping, Sequence

from bench.prepare import init_worker, prepare
from bench.units import Scorer, Unit, UnitResult

log = logging.getLogger(__name__)


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int, seed: int, sr: int, bonafide: Sequence[tuple[str, str]],
                 resources: Mapping[str, str], prefetch: int = 64, cache_dir: str | None = None, **_: Any):
        self.workers = int(workers)
        self.init = (seed, sr, tuple(bonafide), dict(resources), cache_dir)
        self.prefetch = max(1, prefetch)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "LocalExecutor":
        init_worker(*self.init)
        if self.workers > 0:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=init_worker, initargs=self.init)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(self, units: Iterable[Unit], scorer: Scorer) -> Iterator[UnitResult]:
        for unit, prepared in self._prepared(units):
            yield scorer(unit, prepared)

    def _prepared(self, units: Iterable[Unit]):
        if self._pool is None:
            for unit in units:
                yield unit, [prepare(t) for t in unit.tasks]
            return
        window: deque[tuple[Unit, list[Future]]] = deque()
        in_flight = 0
        it = iter(units)
        exhausted = False
        while True:
            while not exhausted and (in_flight < self.prefetch or not window):
                unit = next(it, None)
                if unit is None:
                    exhausted = True
                    break
                futs = [self._pool.submit(prepare, t) for t in unit.tasks]
                window.append((unit, futs))
                in_flight += len(futs)
            if not window:
                return
            unit, futs = window.popleft()
            in_flight -= len(futs)
            yield unit, [f.result() for f in futs]


def make_executor(name: str, **kwargs: Any):
    if name == "local":
        return LocalExecutor(**kwargs)
    if name == "ray":
        try:
            from bench.ray_executor import RayExecutor
        except ImportError as e:
            raise RuntimeError(f"the ray executor needs Ray ({e}): pip install 'deepfake-bench[ray]' "
                               "(or pip install 'ray[default]')") from None
        return RayExecutor(**kwargs)
    raise ValueError(f"unknown executor {name!r}; choose local or ray")
