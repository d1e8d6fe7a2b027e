"""`bench serve`: one detector behind a small HTTP service (starlette on uvicorn).

Protocol (what ``--model http://HOST:PORT``, models/remote.py, speaks):

* ``GET /health`` -> 200 ``{"status": "ok", "model", "architecture", "checkpoint_sha256", "sample_rate",
  "nb_samp", "policy", "output", "max_bytes", ..., "config_sha256"}`` (the digest of everything that determines
  the scores: a run against the service is bound to it).
* ``POST /score`` with an audio file as the body (any format ``foundation.audio.load_audio`` reads: wav,
  flac, ogg, mp3, m4a ...; any rate, resampled to the model's) -> 200 ``{"score": float}`` (higher = more
  bona fide, the input policy of the card or ``--policy``), or with ``--output decision``
  ``{"decision": "bonafide" | "spoof"}`` (bona fide iff score >= ``--threshold``, a finite number).
* ``/stream`` (WebSocket, bench/serve/stream.py): window scores as audio arrives. ``GET /metrics``: Prometheus text
  (bench/serve/metrics.py).
* Every other answer is JSON ``{"error": reason}``: 400 for an empty or unreadable body (the decoder's reason),
  404/405 for another path or method, 408 when the head or body arrives too slowly (``--header-timeout``,
  ``--read-timeout``), 413 when the body exceeds ``--max-bytes`` (checked on Content-Length before reading and while
  reading), 400 too for more than ``--max-seconds`` of audio (checked on its header before decoding), 422 when the
  detector gives a non-finite score, 431 for a head over ``--max-header-bytes``, 503 with
  ``Retry-After`` when ``--max-concurrent`` requests are scoring and ``--max-queue`` more wait (decided before the
  body is read) or the bodies in flight would exceed ``--max-body-memory``, 500 with the exception's name otherwise.

Scoring: with ``--batch-wait-ms`` > 0 (default 5) the windows of concurrent requests and streams are scored in
shared forward passes of up to ``--batch-size`` windows (bench/serve/batcher.py); with 0 each request is scored on
its own, ``--max-concurrent`` at a time. Loopback (127.0.0.1) by default: any other ``--host`` is an explicit choice
and is logged as a warning (the service has no authentication and no TLS; put it behind a proxy that has them).
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import math
import os
import tempfile
from typing import Any

from bench.serve.protocol import DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_BYTES

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 32 * 1024 * 1024   # 32 MiB: 8.7 min of 16 kHz float32 WAV, 17 min of 16-bit
DEFAULT_MAX_CONCURRENT = 2
DEFAULT_MAX_QUEUE = 16
DEFAULT_BATCH_WAIT_MS = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_MAX_STREAMS = 16
DEFAULT_STREAM_MAX_SECONDS = 3600.0
DEFAULT_STREAM_IDLE_TIMEOUT = 10.0
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
DEFAULT_MAX_SECONDS = 60.0   # longest audio file /score decodes (its header checked first; None: no limit)
OUTPUTS = ("score", "decision")


class NonFiniteScore(ValueError):
    """The detector gave NaN or an infinity for a readable input (answered 422)."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _positive(name: str, v: Any, low: float = 0.0, strict: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or \
            (v <= low if strict else v < low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low:g}, got {v!r}")
    return float(v)


class Service:
    """The detector and what a request needs: decoding, the input policy, the decision threshold, the limits."""

    def __init__(self, loaded, policy: str | None = None, device: str = "cpu", batch_size: int = 8,
                 output: str = "score", threshold: float | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_concurrent: int = DEFAULT_MAX_CONCURRENT, max_queue: int = DEFAULT_MAX_QUEUE,
                 batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS, max_body_memory: int | None = None,
                 read_timeout: float = DEFAULT_READ_TIMEOUT, header_timeout: float = DEFAULT_HEADER_TIMEOUT,
                 max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 max_streams: int = DEFAULT_MAX_STREAMS, stream_max_seconds: float = DEFAULT_STREAM_MAX_SECONDS,
                 stream_idle_timeout: float = DEFAULT_STREAM_IDLE_TIMEOUT,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 max_seconds: float | None = DEFAULT_MAX_SECONDS):
        from bench.scoring.windows import parse_policy

        if output not in OUTPUTS:
            raise ValueError(f"--output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        for name, v, low in (("--max-bytes", max_bytes, 1), ("--max-concurrent", max_concurrent, 1),
                             ("--max-queue", max_queue, 0), ("--batch-size", batch_size, 1),
                             ("--max-header-bytes", max_header_bytes, 256), ("--max-connections", max_connections, 1),
                             ("--max-streams", max_streams, 0), ("--max-message-bytes", max_message_bytes, 16)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name} must be a whole number of at least {low}, got {v!r}")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not math.isfinite(threshold)):
            raise ValueError(f"--threshold must be a finite number, got {threshold!r}")   # refused at start
        self.loaded, self.device, self.batch_size = loaded, device, int(batch_size)
        self.policy = parse_policy(policy or loaded.card.input_policy)
        self.output, self.threshold = output, None if threshold is None else float(threshold)
        self.max_bytes, self.max_concurrent, self.max_queue = int(max_bytes), int(max_concurrent), int(max_queue)
        self.batch_wait_s = _positive("--batch-wait-ms", batch_wait_ms, 0.0, strict=False) / 1000.0
        self.max_body_memory = int(max_body_memory) if max_body_memory is not None else 4 * self.max_bytes
        if self.max_body_memory < self.max_bytes:
            raise ValueError(f"--max-body-memory ({self.max_body_memory}) must be at least --max-bytes "
                             f"({self.max_bytes}), or no body of the largest size could ever be read")
        self.read_timeout = _positive("--read-timeout", read_timeout)
        self.header_timeout = _positive("--header-timeout", header_timeout)
        self.max_header_bytes, self.max_connections = int(max_header_bytes), int(max_connections)
        self.max_streams = int(max_streams)
        self.stream_max_seconds = _positive("--stream-max-seconds", stream_max_seconds)
        self.stream_idle_timeout = _positive("--stream-idle-timeout", stream_idle_timeout)
        self.max_message_bytes = int(max_message_bytes)
        self.max_seconds = None if max_seconds is None else _positive("--max-seconds", max_seconds)
        det = loaded.detector
        self.sample_rate, self.nb_samp = int(det.sample_rate), int(det.nb_samp)
        self.window = self.policy.window_for(det)
        self._engine = None

    @property
    def dynamic(self) -> bool:
        return self.batch_wait_s > 0

    @property
    def decision_threshold(self) -> float:
        return 0.0 if self.threshold is None else self.threshold

    def health(self) -> dict[str, Any]:
        det = self.loaded.detector
        doc = {"status": "ok", "model": self.loaded.name, "architecture": self.loaded.card.architecture,
               "checkpoint_sha256": self.loaded.sha256, "sample_rate": int(det.sample_rate),
               "nb_samp": int(det.nb_samp), "policy": str(self.policy), "output": self.output,
               **({"threshold": self.decision_threshold} if self.output == "decision" or self.threshold is not None
                  else {}),
               "max_bytes": self.max_bytes, "max_concurrent": self.max_concurrent, "max_queue": self.max_queue,
               "max_seconds": self.max_seconds, "batch_wait_ms": self.batch_wait_s * 1000.0,
               "max_streams": self.max_streams}
        # everything that determines the scores, in one digest a client binds its run to (models/remote.py)
        served = {k: doc.get(k) for k in ("model", "architecture", "checkpoint_sha256", "sample_rate", "nb_samp",
                                          "policy", "output", "threshold")}
        served["card_config"] = dict(self.loaded.card.config)
        doc["config_sha256"] = hashlib.sha256(json.dumps(served, sort_keys=True, default=str).encode()).hexdigest()
        return doc

    def decode(self, body: bytes | bytearray):
        """One audio file (bytes) as mono float32 at the detector's rate; ``foundation.audio.AudioError`` if bad."""
        from foundation.audio import AudioError, load_audio

        fd, tmp = tempfile.mkstemp(prefix="bench-serve-", suffix=".audio")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            wav, _info = load_audio(tmp, target_sr=self.sample_rate, max_seconds=self.max_seconds)
        except AudioError as e:
            raise AudioError("request body", e.reason.replace(tmp, "the request body")) from None
        finally:
            os.unlink(tmp)
        return wav

    def score_bytes(self, body: bytes) -> float:
        """Decodes and scores one audio file on its own (the path without dynamic batching)."""
        from bench.scoring.score import score_batch

        return float(score_batch(self.loaded.detector, [self.decode(body)], self.policy, batch_size=self.batch_size,
                                 device=self.device)[0])

    def score_windows(self, windows: list) -> list[float]:
        """Window scores by the shared engine (the batcher's one thread calls this)."""
        if self._engine is None:
            from bench.scoring.engine import Engine, InferenceOptions

            self._engine = Engine(self.loaded.detector, InferenceOptions(batch_size=self.batch_size), self.device,
                                  self.loaded.name)
        return self._engine.score_windows(windows)

    def score_windows_alone(self, windows: list) -> list[float]:
        """Window scores by an engine of their own (no dynamic batching: calls may run in parallel threads)."""
        from bench.scoring.engine import Engine, InferenceOptions

        return Engine(self.loaded.detector, InferenceOptions(batch_size=self.batch_size), self.device,
                      self.loaded.name).score_windows(windows)

    def answer(self, score: float) -> dict[str, Any]:
        if not math.isfinite(score):
            raise NonFiniteScore(f"the detector returned a non-finite score ({score}) for this audio")
        if self.output == "decision":
            return {"decision": "bonafide" if score >= self.decision_threshold else "spoof"}
        return {"score": score}

    def window_answer(self, score: float) -> dict[str, Any]:
        """A stream window's fields: the score (unless decision-only) and the decision (with a threshold)."""
        out: dict[str, Any] = {} if self.output == "decision" else {"score": score}
        if self.output == "decision" or self.threshold is not None:
            out["decision"] = "bonafide" if score >= self.decision_threshold else "spoof"
        return out


def create_app(service: Service):
    """The ASGI application (starlette, wrapped by the metrics middleware)."""
    from bench.serve.routes import build_app

    return build_app(service)


def server_config(app: Any, service: Service, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"):
    """uvicorn's configuration with the service's connection limits (bench/serve/protocol.py)."""
    import uvicorn

    from bench.serve.protocol import ConnectionLimits, guarded_protocol

    limits = ConnectionLimits(service.header_timeout, service.max_header_bytes, service.max_connections,
                              service.read_timeout)
    return uvicorn.Config(app, host=host, port=int(port), log_level=log_level, http=guarded_protocol(limits),
                          h11_max_incomplete_event_size=2 * service.max_header_bytes,
                          ws_max_size=service.max_message_bytes, timeout_keep_alive=5)


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
    log.info("serving %s (%s, policy %s, output %s, dynamic batching %s) on http://%s:%d", ld.name,
             ld.checkpoint or "-", service.policy, service.output,
             f"{service.batch_wait_s * 1000:g} ms" if service.dynamic else "off", host, port)
    uvicorn.Server(server_config(create_app(service), service, host, port, log_level)).run()
