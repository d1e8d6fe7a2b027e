"""`bench serve`: one detector behind a small HTTP service (starlette on uvicorn).

Protocol (what ``--model http://HOST:PORT``, models/remote.py, speaks):

* ``GET /health`` -> 200 ``{"status": "ok", "model", "architecture", "checkpoint_sha256", "sample_rate",
  "nb_samp", "policy", "output", "max_bytes", ...}``.
* ``POST /score`` with an audio file as the body (any format ``foundation.audio.load_audio`` reads: wav,
  flac, ogg, mp3, m4a ...; any rate, resampled to the model's) -> 200 ``{"score": float}`` (higher = more
  bona fide, the input policy of the card or ``--policy``), or with ``--output decision``
  ``{"decision": "bonafide" | "spoof"}`` (bona fide iff score >= ``--threshold``).
* Errors are JSON ``{"error": reason}``: 400 for an empty or unreadable body (the decoder's reason),
  413 when the body exceeds ``--max-bytes`` (checked on Content-Length before reading and while reading),
  503 with ``Retry-After`` when ``--max-concurrent`` requests are scoring and ``--max-queue`` more wait.

Loopback (127.0.0.1) by default: any other ``--host`` is an explicit choice and is logged as a warning
(the service has no authentication and no TLS; put it behind a proxy that has them).
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import tempfile
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 32 * 1024 * 1024   # 32 MiB: 8.7 min of 16 kHz float32 WAV, 17 min of 16-bit
DEFAULT_MAX_CONCURRENT = 2
DEFAULT_MAX_QUEUE = 16
OUTPUTS = ("score", "decision")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Service:
    """The detector and what a request needs: decoding, the input policy, the decision threshold."""

    def __init__(self, loaded, policy: str | None = None, device: str = "cpu", batch_size: int = 8,
                 output: str = "score", threshold: float = 0.0, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_concurrent: int = DEFAULT_MAX_CONCURRENT, max_queue: int = DEFAULT_MAX_QUEUE):
        from bench.scoring.windows import parse_policy

        if output not in OUTPUTS:
            raise ValueError(f"--output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        for name, v, low in (("--max-bytes", max_bytes, 1), ("--max-concurrent", max_concurrent, 1),
                             ("--max-queue", max_queue, 0), ("--batch-size", batch_size, 1)):
            if int(v) < low:
                raise ValueError(f"{name} must be at least {low}, got {v}")
        self.loaded, self.device, self.batch_size = loaded, device, int(batch_size)
        self.policy = parse_policy(policy or loaded.card.input_policy)
        self.output, self.threshold = output, float(threshold)
        self.max_bytes, self.max_concurrent, self.max_queue = int(max_bytes), int(max_concurrent), int(max_queue)

    def health(self) -> dict[str, Any]:
        import hashlib
        import json

        det = self.loaded.detector
        doc = {"status": "ok", "model": self.loaded.name, "architecture": self.loaded.card.architecture,
               "checkpoint_sha256": self.loaded.sha256, "sample_rate": int(det.sample_rate),
               "nb_samp": int(det.nb_samp), "policy": str(self.policy), "output": self.output,
               **({"threshold": self.threshold} if self.output == "decision" else {}),
               "max_bytes": self.max_bytes, "max_concurrent": self.max_concurrent, "max_queue": self.max_queue}
        # everything that determines the scores, in one digest a client binds its run to (models/remote.py)
        served = {k: doc.get(k) for k in ("model", "architecture", "checkpoint_sha256", "sample_rate", "nb_samp",
                                          "policy", "output", "threshold")}
        served["card_config"] = dict(self.loaded.card.config)
        doc["config_sha256"] = hashlib.sha256(json.dumps(served, sort_keys=True, default=str).encode()).hexdigest()
        return doc

    def score_bytes(self, body: bytes) -> float:
        """Decodes one audio file (bytes) and scores it; raises ``foundation.audio.AudioError`` for bad audio."""
        from bench.scoring.score import score_batch
        from foundation.audio import AudioError, load_audio

        fd, tmp = tempfile.mkstemp(prefix="bench-serve-", suffix=".audio")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            wav, _info = load_audio(tmp, target_sr=self.loaded.detector.sample_rate)
        except AudioError as e:
            raise AudioError("request body", e.reason.replace(tmp, "the request body")) from None
        finally:
            os.unlink(tmp)
        return float(score_batch(self.loaded.detector, [wav], self.policy, batch_size=self.batch_size,
                                 device=self.device)[0])

    def answer(self, score: float) -> dict[str, Any]:
        if self.output == "decision":
            return {"decision": "bonafide" if score >= self.threshold else "spoof"}
        return {"score": score}


def create_app(service: Service):
    """The ASGI application (starlette)."""
    try:
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse
        from starlette.routing import Route
    except ImportError as e:
        raise ImportError("bench serve needs starlette and uvicorn: pip install 'deepfake-bench[serve]'") from e
    from foundation.audio import AudioError

    state = {"waiting": 0, "sem": None}

    def error(status: int, reason: str, **headers: str) -> JSONResponse:
        return JSONResponse({"error": reason}, status_code=status, headers=headers or None)

    async def health(request):
        return JSONResponse(service.health())

    async def score(request):
        limit = service.max_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return error(413, f"the body has {declared} bytes; this service takes at most {limit} (--max-bytes)")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return error(413, f"the body exceeds {limit} bytes (--max-bytes)")
        if not body:
            return error(400, "empty body: send an audio file (wav, flac, ogg, mp3, ...) as the request body")
        if state["waiting"] >= service.max_concurrent + service.max_queue:
            return error(503, f"busy: {state['waiting']} requests are in flight; retry later", **{"Retry-After": "1"})
        if state["sem"] is None:
            state["sem"] = asyncio.Semaphore(service.max_concurrent)
        state["waiting"] += 1
        try:
            async with state["sem"]:
                value = await run_in_threadpool(service.score_bytes, bytes(body))
        except AudioError as e:
            return error(400, f"unreadable audio: {e.reason}")
        except ValueError as e:   # e.g. a clip too short for the model
            return error(400, f"cannot score this audio: {e}")
        finally:
            state["waiting"] -= 1
        return JSONResponse(service.answer(value))

    return Starlette(routes=[Route("/health", health, methods=["GET"]), Route("/score", score, methods=["POST"])])


def serve(model: str, checkpoint: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          policy: str | None = None, device: str = "auto", log_level: str = "info", label_map: Any = None,
          **options: Any) -> None:
    """Loads the detector and serves it until interrupted (``options``: see :class:`Service`)."""
    try:
        import uvicorn
    except ImportError as e:
        raise ImportError("bench serve needs starlette and uvicorn: pip install 'deepfake-bench[serve]'") from e
    from foundation.device import resolve_device
    from models import load_detector

    if not is_loopback(host):
        log.warning("binding to %s, not loopback: an explicit choice to expose the detector beyond this machine "
                    "(no authentication, no TLS; put it behind a proxy that has them)", host)
    dev = resolve_device(device)
    ld = load_detector(model, checkpoint=checkpoint, device=dev, label_map=label_map)
    service = Service(ld, policy=policy, device=dev, **options)
    log.info("serving %s (%s, policy %s, output %s) on http://%s:%d", ld.name, ld.checkpoint or "-",
             service.policy, service.output, host, port)
    uvicorn.run(create_app(service), host=host, port=int(port), log_level=log_level)
