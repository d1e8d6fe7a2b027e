"""``/stream``: a WebSocket that scores audio as it arrives.

``ws://HOST:PORT/stream?rate=16000&format=f32le&hop=0.5`` (all optional: ``rate`` defaults to the detector's,
``format`` to ``f32le``, ``hop`` to 0.5 s). The client sends binary messages of raw mono samples (``f32le``:
little-endian float32; ``s16le``: little-endian 16-bit PCM), chunks of any size, and the text message ``end``.
The server answers one JSON text message per window as soon as the window is complete: ``{"start_s", "end_s",
"score"}`` (with ``--output decision`` a ``decision`` instead of the score; with ``--threshold`` both), and after
``end`` a last one ``{"done": true, "windows": N, "duration_s": D}``. Windows are the offline timeline's
(:mod:`bench.scoring.timeline`: the detector's input length every ``hop``, the end-aligned one at the end), so a
stream at the detector's rate gets the scores ``bench score --timeline`` gives for the same audio. Another rate is
resampled on the fly (soxr, as files are; the resampler's edges make the first and last milliseconds differ slightly
from a whole-file resampling). Windows of concurrent streams share forward passes (bench/serve/batcher.py).

A problem ends the stream with ``{"error": reason, "done": true}`` and a close code: 1008 for a bad query, a
stream longer than ``--stream-max-seconds`` or a client silent for ``--stream-idle-timeout`` seconds; 1003 for a
text message other than ``end`` or samples that are not finite; 1013 when ``--max-streams`` are open; 1011 when
scoring fails. uvicorn closes a connection whose message exceeds ``--max-message-bytes`` (code 1009).
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import numpy as np

from bench.scoring.timeline import StreamWindower

log = logging.getLogger(__name__)

FORMATS = {"f32le": ("<f4", 4, 1.0), "s16le": ("<i2", 2, 1.0 / 32768.0)}
QUERY = ("rate", "format", "hop")
MAX_HOP_S = 60.0


class StreamError(Exception):
    def __init__(self, code: int, reason: str, outcome: str = "error"):
        super().__init__(reason)
        self.code, self.reason, self.outcome = code, reason, outcome


def parse_query(params: Any, default_rate: int) -> tuple[int, str, float]:
    """``(rate, format, hop_s)`` of the query, or StreamError 1008 naming the parameter."""
    unknown = sorted(set(params.keys()) - set(QUERY))
    if unknown:
        raise StreamError(1008, f"unknown query parameter(s) {unknown}; known: rate, format, hop")
    try:
        rate = int(params.get("rate", default_rate))
    except ValueError:
        raise StreamError(1008, f"rate must be a whole number of Hz, got {params.get('rate')!r}") from None
    if not 1000 <= rate <= 384000:
        raise StreamError(1008, f"rate must be 1000..384000 Hz, got {rate}")
    fmt = params.get("format", "f32le")
    if fmt not in FORMATS:
        raise StreamError(1008, f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    try:
        hop = float(params.get("hop", 0.5))
    except ValueError:
        hop = float("nan")
    if not (math.isfinite(hop) and 0 < hop <= MAX_HOP_S):
        raise StreamError(1008, f"hop must be a number of seconds in (0, {MAX_HOP_S:g}], got {params.get('hop')!r}")
    return rate, fmt, hop


class ChunkDecoder:
    """Bytes of any chunking -> float32 samples at the detector's rate (a partial sample is kept for the next)."""

    def __init__(self, fmt: str, rate: int, target_rate: int):
        self.dtype, self.width, self.scale = FORMATS[fmt]
        self.rate, self.target = int(rate), int(target_rate)
        self._rest = b""
        self.samples_in = 0
        self._resampler = None
        if self.rate != self.target:
            import soxr

            self._resampler = soxr.ResampleStream(self.rate, self.target, 1, dtype="float32", quality="VHQ")

    def push(self, data: bytes) -> np.ndarray:
        data = self._rest + data
        n = len(data) // self.width
        self._rest = data[n * self.width:]
        x = np.frombuffer(data[:n * self.width], dtype=self.dtype).astype(np.float32) * np.float32(self.scale)
        if not np.all(np.isfinite(x)):
            raise StreamError(1003, f"{int(np.count_nonzero(~np.isfinite(x)))} non-finite samples in a chunk; send "
                              "finite float32 samples in [-1, 1]")
        self.samples_in += n
        return x if self._resampler is None else self._resampler.resample_chunk(x, last=False)

    def finish(self) -> np.ndarray:
        if self._resampler is None:
            return np.zeros(0, np.float32)
        return self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)

    @property
    def seconds(self) -> float:
        return self.samples_in / self.rate


async def handle_stream(websocket: Any, app_state: Any) -> None:
    """The ``/stream`` endpoint (``app_state``: bench/serve/app.py's ``AppState``)."""
    from starlette.websockets import WebSocketDisconnect

    svc, metrics = app_state.service, app_state.metrics
    await websocket.accept()
    outcome = "done"
    counted = False
    try:
        if app_state.streams >= svc.max_streams:
            raise StreamError(1013, f"busy: {app_state.streams} streams are open (--max-streams); retry later",
                              "busy")
        rate, fmt, hop_s = parse_query(websocket.query_params, svc.sample_rate)
        app_state.streams += 1
        counted = True
        decoder = ChunkDecoder(fmt, rate, svc.sample_rate)
        windower = StreamWindower(svc.nb_samp, max(1, int(round(hop_s * svc.sample_rate))))
        n_windows = 0
        while True:
            try:
                msg = await asyncio.wait_for(websocket.receive(), svc.stream_idle_timeout)
            except asyncio.TimeoutError:
                raise StreamError(1008, f"no message for {svc.stream_idle_timeout:g} s (--stream-idle-timeout); "
                                  "closing", "idle") from None
            arrived = time.perf_counter()
            if msg["type"] == "websocket.disconnect":
                outcome = "disconnected"
                return
            if msg.get("bytes") is not None:
                samples = decoder.push(msg["bytes"])
                if decoder.seconds > svc.stream_max_seconds:
                    raise StreamError(1008, f"the stream is longer than {svc.stream_max_seconds:g} s "
                                      "(--stream-max-seconds); closing", "too_long")
                n_windows += await _emit(websocket, app_state, list(windower.push(samples)), arrived)
            elif (msg.get("text") or "").strip() == "end":
                try:
                    last = list(windower.push(decoder.finish())) + list(windower.finish())
                except ValueError as e:
                    raise StreamError(1008, str(e)) from None
                n_windows += await _emit(websocket, app_state, last, arrived)
                await websocket.send_json({"done": True, "windows": n_windows,
                                           "duration_s": windower.received / svc.sample_rate})
                await websocket.close(1000)
                return
            else:
                raise StreamError(1003, f"unknown text message {str(msg.get('text'))[:40]!r}: send binary chunks "
                                  "of samples and the text message 'end'")
    except StreamError as e:
        outcome = e.outcome
        await _close(websocket, e.code, e.reason)
    except WebSocketDisconnect:
        outcome = "disconnected"
    except Exception as e:  # noqa: BLE001 - the client gets the reason as JSON, the log the trace
        outcome = "error"
        log.exception("stream failed")
        await _close(websocket, 1011, f"scoring failed: {type(e).__name__}: {e}")
    finally:
        if counted:
            app_state.streams -= 1
        metrics.streams.labels(outcome).inc()


async def _emit(websocket: Any, app_state: Any, windows: list[tuple], arrived: float) -> int:
    """Scores the completed windows (in the shared batch) and sends one message per window."""
    if not windows:
        return 0
    svc = app_state.service
    scores = await app_state.score_windows([w for _s, _e, w in windows])
    for (start, end, _w), value in zip(windows, scores):
        msg: dict[str, Any] = {"start_s": start / svc.sample_rate, "end_s": end / svc.sample_rate}
        if not math.isfinite(value):
            msg.update(score=None, error=f"the detector returned a non-finite score ({value}) for this window")
        else:
            msg.update(svc.window_answer(value))
        await websocket.send_json(msg)
    app_state.metrics.stream_delay.observe(time.perf_counter() - arrived)
    return len(windows)


async def _close(websocket: Any, code: int, reason: str) -> None:
    """Says why (JSON), then closes with ``code``; a client already gone is only logged."""
    from starlette.websockets import WebSocketDisconnect

    try:
        await websocket.send_json({"error": reason, "done": True})
        await websocket.close(code, reason=reason.encode()[:120].decode(errors="ignore"))
    except (WebSocketDisconnect, RuntimeError, OSError) as e:   # starlette: RuntimeError after a close
        log.debug("stream closed before its error could be sent (%s): %s", type(e).__name__, reason)
