"""``bench run``/``bench score`` options about inputs and services that change or misbehave under a run
(README: Reliability): how long an audio file may be, what to do with files whose content changed, and
whether to wait for a served detector that stopped answering; and the resource folders of ``bench run`` and
``bench perturb`` (options or environment variables)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

MAX_SECONDS_HELP = ("refuse audio files longer than this many seconds, before decoding them (default 600; 0 = no "
                    "limit): a small compressed file can declare hours of many-channel audio")


def max_seconds(value: float) -> float | None:
    """``--max-seconds``: 0 means no limit (None)."""
    return None if value == 0 else value


def add_max_seconds(s: argparse.ArgumentParser) -> None:
    s.add_argument("--max-seconds", type=float, default=600.0, metavar="S", help=MAX_SECONDS_HELP)


def add_reliability_options(s: argparse.ArgumentParser) -> None:
    """bench run's options for inputs and services that change under it (README: Reliability)."""
    add_max_seconds(s)
    s.add_argument("--rescore-changed", action="store_true",
                   help="files whose content changed since they were scored (sha256) are scored again; without "
                   "it such a resume is refused naming the files")
    s.add_argument("--wait-for-service", type=float, nargs="?", const=float("inf"), default=None, metavar="S",
                   help="when a served detector (http://) stops answering, wait for it (at most S seconds; no value: "
                   "without limit) and go on; without it the run stops as incomplete (exit 75) and the same "
                   "command finishes it")
    s.add_argument("--skip-unavailable", action="store_true",
                   help="a family that cannot run here (e.g. AMR-WB without libvo-amrwbenc) is skipped and named in "
                   "the summary, run.json, skipped.csv and the report; without it such a suite is refused up front")


def reliability_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    """The options above as ``bench.api.run``'s keyword arguments."""
    return {"max_seconds": max_seconds(a.max_seconds), "rescore_changed": a.rescore_changed,
            "wait_for_service": a.wait_for_service, "skip_unavailable": getattr(a, "skip_unavailable", False)}


def incomplete_exit(e: BaseException) -> int:
    """Called while ``e`` is being handled: a run stopped by a served detector that stopped answering is
    incomplete, not failed (its message on stderr, exit code 75: the same command finishes it); any other
    exception is raised again."""
    from bench.run.outage import RunIncomplete
    from bench.run.units import unavailable

    if not (isinstance(e, RunIncomplete) or unavailable(e)):
        raise e
    sys.stderr.write(f"bench: {e}\n")
    return RunIncomplete.exit_code


def resources(a: argparse.Namespace) -> dict[str, str]:
    """The resource folders given (``--noise-dir`` ...) or in the environment (``BENCH_NOISE_DIR`` ...)."""
    res = {}
    for key, env in (("noise_dir", "BENCH_NOISE_DIR"), ("rir_dir", "BENCH_RIR_DIR"),
                     ("device_ir_dir", "BENCH_DEVICE_IR_DIR")):
        val = getattr(a, key, None) or os.environ.get(env)
        if val:
            res[key] = val
    return res
