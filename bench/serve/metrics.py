"""``GET /metrics``: what the service is doing, in Prometheus' text format (prometheus_client).

Every series is prefixed ``bench_``; one registry per application (so several services in one process, as in the
tests, do not mix):

* ``bench_model_info{model, architecture, checkpoint_sha256, policy}`` = 1: which detector answers;
* ``bench_requests_total{endpoint, status}`` and ``bench_request_duration_seconds{endpoint}`` (a histogram): HTTP
  requests by route (``/health``, ``/score``, ``/metrics``; anything else is ``other``, so random paths cannot grow
  the label set) and status;
* ``bench_requests_in_flight``: requests being read, decoded, waiting or scored (the queue that ``--max-queue``
  bounds); ``bench_batch_queue_windows``: windows waiting for a forward pass;
* ``bench_batch_windows`` (a histogram): windows per forward pass (dynamic batching at work when above 1);
* ``bench_active_streams``, ``bench_streams_total{outcome}`` (done, error, idle, too_long, busy, disconnected) and
  ``bench_stream_delay_seconds`` (a histogram): from the arrival of the chunk that completes a window to its score
  being sent.
"""
from __future__ import annotations

import time
from typing import Any, Callable

#: routes that get their own label; everything else is "other"
ENDPOINTS = ("/health", "/score", "/metrics")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The service's series; ``in_flight``/``queued``/``streams``: functions read at scrape time."""

    def __init__(self, health: dict[str, Any], in_flight: Callable[[], float], queued: Callable[[], float],
                 streams: Callable[[], float]):
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError as e:
            raise ImportError("bench serve needs prometheus_client: pip install 'deepfake-bench[serve]'") from e
        self.registry = r = CollectorRegistry()
        info = Gauge("bench_model_info", "The served detector (value 1)",
                     ["model", "architecture", "checkpoint_sha256", "policy"], registry=r)
        info.labels(str(health.get("model")), str(health.get("architecture")),
                    str(health.get("checkpoint_sha256") or ""), str(health.get("policy"))).set(1)
        self.requests = Counter("bench_requests_total", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=r)
        self.latency = Histogram("bench_request_duration_seconds", "HTTP request latency", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        Gauge("bench_requests_in_flight", "Requests being read, decoded, queued or scored",
              registry=r).set_function(in_flight)
        Gauge("bench_batch_queue_windows", "Windows waiting for a forward pass", registry=r).set_function(queued)
        Gauge("bench_active_streams", "Open /stream WebSockets", registry=r).set_function(streams)
        self.batch = Histogram("bench_batch_windows", "Windows per forward pass", buckets=BATCH_BUCKETS, registry=r)
        self.streams = Counter("bench_streams_total", "Streams by how they ended", ["outcome"], registry=r)
        self.stream_delay = Histogram("bench_stream_delay_seconds", "Chunk completing a window -> its score sent",
                                      buckets=LATENCY_BUCKETS, registry=r)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def middleware(self, app: Any) -> Any:
        """An ASGI middleware counting HTTP requests (by route and status) and timing them."""
        metrics = self

        async def wrapped(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            endpoint = scope.get("path") if scope.get("path") in ENDPOINTS else "other"
            status = {"code": 500}
            t0 = time.perf_counter()

            async def send_status(message):
                if message["type"] == "http.response.start":
                    status["code"] = int(message["status"])
                await send(message)
            try:
                await app(scope, receive, send_status)
            finally:
                metrics.requests.labels(endpoint, str(status["code"])).inc()
                metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)
        return wrapped
