"""Executors move units of work around; they never change what a unit computes.

A :class:`Unit` is (condition, shard of utterances, models). The local executor prepares audio
(read + perturb) in a pool of worker processes and hands the prepared batches back in order,
prefetching the next unit while the caller scores the current one, with a bounded number of
tasks in flight so memory does not grow with the manifest.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

from bench.prepare import Prepared, Task, init_worker, prepare

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unit:
    condition_index: int
    tasks: tuple[Task, ...]
    models: tuple[str, ...]     # the models that still miss scores for (some of) these utterances


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int, seed: int, sr: int, bonafide: Sequence[tuple[str, str]],
                 resources: Mapping[str, str], prefetch: int = 64):
        self.workers = int(workers)
        self.init = (seed, sr, tuple(bonafide), dict(resources))
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

    def map_units(self, units: Iterable[Unit]) -> Iterator[tuple[Unit, list[Prepared]]]:
        """Yields (unit, prepared audio of its tasks in order), preparing ahead in the pool."""
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


def make_executor(name: str, **kwargs: Any) -> LocalExecutor:
    if name == "local":
        return LocalExecutor(**kwargs)
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise RuntimeError("the ray executor needs Ray: pip install 'deepfake-bench[ray]' "
                               "(or pip install 'ray[default]')") from None
        raise RuntimeError("the ray executor is not available in this version yet; use --executor local")
    raise ValueError(f"unknown executor {name!r}; choose local or ray")
