"""``bench run``/``bench score`` options about inputs and services that change or misbehave under a run
(README: Reliability): how long an audio file may be, what to do with files whose content changed, and
whether to wait for a served detector that stopped answering."""
from __future__ import annotations

import argparse

MAX_SECONDS_HELP = ("refuse audio files longer than this many seconds, before decoding them (default 600; 0 = no "
                    "limit): a small compressed file can declare hours of many-channel audio")


def max_seconds(value: float) -> float | None:
    """``--max-seconds``: 0 means no limit (None)."""
    return None if value == 0 else value


def add_reliability_options(s: argparse.ArgumentParser) -> None:
    """bench run's options for inputs and services that change under it (README: Reliability)."""
    s.add_argument("--max-seconds", type=float, default=600.0, metavar="S", help=MAX_SECONDS_HELP)
    s.add_argument("--rescore-changed", action="store_true",
                   help="files whose content changed since they were scored (sha256) are scored again; without "
                   "it such a resume is refused naming the files")
    s.add_argument("--wait-for-service", type=float, nargs="?", const=float("inf"), default=None, metavar="S",
                   help="when a served detector (http://) stops answering, wait for it (at most S seconds; no value: "
                   "without limit) and go on; without it the run stops as incomplete (exit 75) and the same "
                   "command finishes it")
