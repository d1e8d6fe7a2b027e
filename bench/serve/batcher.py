"""Dynamic batching: windows of concurrent requests and streams scored in shared forward passes.

A caller hands its windows to :meth:`Batcher.score` and awaits their scores. One worker thread runs the forward
passes, one at a time (the detector's own threads do the parallel work). When it is free it takes what is queued;
if that is less than ``max_batch`` windows it waits up to ``wait_s`` after the oldest queued window arrived for
more, then scores up to ``max_batch`` windows (a caller's windows are never split; a caller with more than
``max_batch`` goes alone, and the engine cuts it into ``--batch-size`` batches). So the wait is bounded and so is
the batch; under concurrency, callers share forwards, which is where the throughput comes from.

A forward that fails with several callers in it is repeated per caller, so one caller's bad input fails only that
caller. A caller that goes away (its future cancelled) just does not get its scores.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

log = logging.getLogger(__name__)


class Batcher:
    def __init__(self, score_fn: Callable[[list[Any]], list[float]], max_batch: int, wait_s: float,
                 on_batch: Callable[[int], None] | None = None):
        if int(max_batch) < 1 or not wait_s >= 0:
            raise ValueError(f"a batcher needs max_batch >= 1 and wait_s >= 0, got {max_batch} and {wait_s}")
        self.score_fn, self.max_batch, self.wait_s = score_fn, int(max_batch), float(wait_s)
        self.on_batch = on_batch
        self._items: collections.deque = collections.deque()   # (windows, future, enqueued at)
        self.queued = 0                                         # windows waiting
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="bench-score")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="bench-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._items:
            _w, fut, _t = self._items.popleft()
            if not fut.done():
                fut.set_exception(RuntimeError("the service is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def score(self, windows: Sequence[Any]) -> list[float]:
        """The scores of ``windows`` (one per window, in order), computed in a shared forward pass."""
        if not windows:
            return []
        if self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running (the application's startup did not run)")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._items.append((list(windows), fut, loop.time()))
        self.queued += len(windows)
        self._wake.set()
        return await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._items:
                self._wake.clear()
                await self._wake.wait()
                continue
            deadline = self._items[0][2] + self.wait_s
            while self.queued < self.max_batch and (rest := deadline - loop.time()) > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), rest)
                except asyncio.TimeoutError:
                    break
            take, n = [], 0
            while self._items and (not take or n + len(self._items[0][0]) <= self.max_batch):
                item = self._items.popleft()
                take.append(item)
                n += len(item[0])
            self.queued -= n
            take = [t for t in take if not t[1].done()]   # callers gone meanwhile
            if take:
                await self._forward(loop, take)

    async def _forward(self, loop: asyncio.AbstractEventLoop, take: list[tuple]) -> None:
        windows = [w for ws, _f, _t in take for w in ws]
        try:
            values = await loop.run_in_executor(self._executor, self.score_fn, windows)
        except Exception as e:  # noqa: BLE001 - handed to the callers (each alone, if several shared the batch)
            if len(take) > 1:
                log.warning("a shared forward of %d windows failed (%s: %s); scoring its %d callers one by one",
                            len(windows), type(e).__name__, e, len(take))
                for item in take:
                    await self._forward(loop, [item])
                return
            if not take[0][1].done():
                take[0][1].set_exception(e)
            return
        if self.on_batch is not None:
            self.on_batch(len(windows))
        k = 0
        for ws, fut, _t in take:
            if not fut.done():
                fut.set_result(list(values[k:k + len(ws)]))
            k += len(ws)
