"""A detector that stops answering in the middle of a run (a served detector that went away or changed).

Its silence is a property of the detector, not of the clips: they are never recorded as unusable inputs
(that would shrink the conditions silently and let the run end "complete"). The scorer lets
:class:`models.base.DetectorUnavailable` through; the runner then either

* waits (``--wait-for-service [SECONDS]``): asks each served detector's ``/health`` until it answers, checks
  that it still serves what the run is bound to, and goes on with what the store still lacks; or
* stops: run.json gets status ``incomplete`` with the reason, the scores already stored are kept, and
  :class:`RunIncomplete` is raised (``bench run`` exits with 75, EX_TEMPFAIL). The same command finishes the
  run once the service is back.

A service that came back serving another model (:class:`models.remote.ServiceChanged`) is never waited for:
the run stops naming both digests.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)


class RunIncomplete(RuntimeError):
    """The run stopped before its end because its detector stopped answering; what was scored is kept and the
    same command finishes it. ``bench run`` exits with :attr:`exit_code`."""

    exit_code = 75   # EX_TEMPFAIL: try again later


def wait_seconds(cfg) -> float | None:
    """``--wait-for-service`` as :func:`models.remote.wait_until_up` takes it: 0 (do not wait), seconds, or None
    (without limit)."""
    w = cfg.wait_for_service
    return 0.0 if w is None else None if math.isinf(w) else float(w)


def after_outage(err: BaseException, cfg, ident: Mapping[str, Any], out: Path, prov: Mapping[str, Any],
                 n_stored: int, n_missing: int) -> None:
    """Returns when the run may go on (the services answer again, serving what they served); otherwise records
    the run as incomplete and raises :class:`RunIncomplete`."""
    from models.remote import ServiceChanged, describe_served, served_identity, wait_until_up

    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    if cfg.wait_for_service and getattr(err, "retryable", False):
        try:
            for m in ident.get("models") or []:
                if isinstance(m, dict) and "served" in m:
                    now = served_identity(wait_until_up(m["model"], wait_seconds(cfg)))
                    if now != m["served"]:
                        raise ServiceChanged(f"{m['model']} came back serving {describe_served(now)}, not "
                                             f"{describe_served(m['served'])} as when this run bound to it")
            log.warning("%s; the service answers again: the run goes on", reason)
            return
        except Exception as e:  # noqa: BLE001 - still down after the wait, or changed: the run stops below
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            err = e
    doc = {**prov, "status": "incomplete", "incomplete_reason": reason}
    tmp = out / "run.tmp"
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str))
    tmp.replace(out / "run.json")
    again = "" if getattr(err, "retryable", False) is False else \
        " when the service is back (or add --wait-for-service to wait for it)"
    raise RunIncomplete(f"the run in {out} is incomplete: {reason}. {n_stored} scores are stored and kept, about "
                        f"{n_missing} were still to compute; give the same command to finish it{again}") from err
