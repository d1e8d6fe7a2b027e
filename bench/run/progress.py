"""The progress of a run: a one-line bar on a terminal, log lines otherwise, and the API's callback."""
from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("bench.run.runner")


class Progress:
    """Progress of a run. On a terminal: one rich line that fits 80 columns (condition, bar, done/total,
    rate, elapsed, ETA), with log lines printed above it rather than over it; otherwise a log line
    every ~15 s and per condition. ``callback(done, total, condition)`` (the API's ``progress=``) is
    called after every unit either way."""

    WIDTH = 80

    def __init__(self, enabled: bool, total: int, callback=None, console=None):
        self.enabled, self.total, self.callback, self.console = enabled, total, callback, console
        self._p = None
        self._streams: list[tuple[logging.StreamHandler, Any]] = []
        self._done, self._desc, self._t0, self._last = 0, "", time.time(), 0.0

    def __enter__(self) -> "Progress":
        if not self.enabled:
            return self
        from rich.console import Console

        console = self.console or Console(stderr=True)
        if console.is_terminal:
            import sys

            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            from rich.table import Column
            from rich.text import Text

            class Rate(ProgressColumn):
                def render(self, task):
                    return Text(f"{task.speed:4.1f}/s" if task.speed else "  --/s")

            self._p = Progress(TextColumn("{task.description}", table_column=Column(width=18, no_wrap=True,
                                                                                   overflow="ellipsis")),
                               BarColumn(bar_width=14), MofNCompleteColumn(), Rate(), TimeElapsedColumn(),
                               TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
                               expand=False, redirect_stderr=True, redirect_stdout=True)
            self._p.start()
            self._task = self._p.add_task("scoring", total=self.total)
            # log handlers hold the stream they were made with: point them at the live display's proxy
            for h in logging.getLogger().handlers:
                if isinstance(h, logging.StreamHandler) and h.stream in (sys.__stderr__, console.file):
                    self._streams.append((h, h.stream))
                    h.setStream(sys.stderr)
        return self

    def describe(self, text: str) -> None:
        if self._p is not None:
            self._p.update(self._task, description=text)
        elif self.enabled and text != self._desc and self._desc:
            self._log()
        self._desc = text

    def advance(self, n: int) -> None:
        self._done += n
        if self._p is not None:
            self._p.advance(self._task, n)
        elif self.enabled and time.time() - self._last > 15:
            self._log()
        if self.callback is not None:
            self.callback(self._done, self.total, self._desc)

    def _log(self) -> None:
        self._last = time.time()
        el = self._last - self._t0
        rate = self._done / el if el > 0 else 0.0
        eta = (self.total - self._done) / rate if rate > 0 else float("nan")
        log.info("%s: %d/%d scores, %.2f scores/s, ETA %.0f s", self._desc, self._done, self.total, rate, eta)

    def __exit__(self, *exc) -> None:
        for h, old in self._streams:
            h.setStream(old)
        self._streams.clear()
        if self._p is not None:
            self._p.stop()
