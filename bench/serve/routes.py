"""The service's routes and what they share (:class:`AppState`): ``/health``, ``/score``, ``/metrics``, ``/stream``,
JSON answers for every error (404, 405, 500 included), the queue and body budget checked before a body is read, and
the batcher started and stopped with the application. The protocol is described in bench/serve/app.py.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

log = logging.getLogger(__name__)


class AppState:
    """What the requests and streams of one application share."""

    def __init__(self, service: Any):
        from bench.serve.batcher import Batcher
        from bench.serve.body import BodyBudget
        from bench.serve.metrics import Metrics

        self.service = service
        self.in_flight = 0       # /score requests admitted (reading, decoding, waiting, scoring)
        self.streams = 0
        self.budget = BodyBudget(service.max_body_memory)
        self.slots = asyncio.Semaphore(service.max_concurrent)
        self.batcher = Batcher(service.score_windows, service.batch_size, service.batch_wait_s,
                               on_batch=lambda n: self.metrics.batch.observe(n)) if service.dynamic else None
        self.metrics = Metrics(service.health(), lambda: self.in_flight,
                               lambda: self.batcher.queued if self.batcher else 0, lambda: self.streams)

    async def score_windows(self, windows: list) -> list[float]:
        """Window scores: through the shared batch, or (no dynamic batching) alone in a scoring slot."""
        from starlette.concurrency import run_in_threadpool

        if self.batcher is not None:
            return await self.batcher.score(windows)
        async with self.slots:
            values = await run_in_threadpool(self.service.score_windows_alone, windows)
        self.metrics.batch.observe(len(windows))
        return values

    async def score_body(self, body: bytearray) -> float:
        """Decodes (``--max-concurrent`` at a time) and scores one audio file."""
        from starlette.concurrency import run_in_threadpool

        svc = self.service
        if self.batcher is None:   # the path without dynamic batching: decode and score alone, in a slot
            async with self.slots:
                return await run_in_threadpool(svc.score_bytes, body)
        async with self.slots:
            wav = await run_in_threadpool(svc.decode, body)
        del body
        _owners, windows = svc.policy.cut([wav], svc.window)
        return svc.policy.aggregate(await self.batcher.score(windows))


def build_app(service: Any) -> Any:
    try:
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route, WebSocketRoute
    except ImportError as e:
        raise ImportError("bench serve needs starlette and uvicorn: pip install 'deepfake-bench[serve]'") from e
    from bench.serve.body import BodyError, Reservation, read_body
    from bench.serve.stream import handle_stream
    from foundation.audio import AudioError

    state = AppState(service)

    def error(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": reason}, status_code=status, headers=headers or None)

    async def health(request):
        return JSONResponse(service.health())

    async def metrics(request):
        body, ctype = state.metrics.render()
        return Response(body, media_type=ctype)

    async def score(request):
        cap = service.max_concurrent + service.max_queue
        if state.in_flight >= cap:   # before a byte of the body is read
            return error(503, f"busy: {state.in_flight} requests are in flight (--max-concurrent "
                         f"{service.max_concurrent} + --max-queue {service.max_queue}); retry later",
                         {"Retry-After": "1"})
        state.in_flight += 1
        held = Reservation(state.budget)
        try:
            body = await read_body(request, service.max_bytes, service.read_timeout, held)
            if not body:
                return error(400, "empty body: send an audio file (wav, flac, ogg, mp3, ...) as the request body")
            value = await state.score_body(body)
            if not math.isfinite(value):
                return error(422, f"the detector returned a non-finite score ({value}) for this audio")
            return JSONResponse(service.answer(value))
        except BodyError as e:
            return error(e.status, e.reason, e.headers)
        except AudioError as e:
            return error(400, f"unreadable audio: {e.reason}")
        except ValueError as e:   # e.g. a clip too short for the model
            return error(400, f"cannot score this audio: {e}")
        finally:
            held.release()
            state.in_flight -= 1

    async def stream(websocket):
        await handle_stream(websocket, state)

    async def http_error(request, exc: HTTPException):
        reason = {404: f"no such endpoint {request.url.path!r}; endpoints: GET /health, POST /score, GET /metrics, "
                       "WebSocket /stream",
                  405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return error(exc.status_code, reason, dict(exc.headers or {}))

    async def server_error(request, exc: Exception):
        log.error("internal error on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return error(500, f"internal error: {type(exc).__name__}: {exc}")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if state.batcher is not None:
            state.batcher.start()
        try:
            yield
        finally:
            if state.batcher is not None:
                await state.batcher.stop()

    app = Starlette(routes=[Route("/health", health, methods=["GET"]), Route("/score", score, methods=["POST"]),
                            Route("/metrics", metrics, methods=["GET"]), WebSocketRoute("/stream", stream)],
                    exception_handlers={HTTPException: http_error, Exception: server_error}, lifespan=lifespan)
    app.router.redirect_slashes = False   # /score/ is a 404 (JSON), not a 307 with an empty body
    return state.metrics.middleware(app)
