"""Connection-level guards, below the application: uvicorn's h11 protocol with time and size limits on what a
client sends before the application sees a request, and JSON answers where uvicorn would answer plain text.

* ``--header-timeout`` (default 10 s): a request head (request line and headers) must be complete this long after
  the connection opens or the head's first byte arrives, else ``408 {"error": ...}`` and the connection is closed
  (a client sending one byte a second no longer holds a connection).
* ``--max-header-bytes`` (default 16 KiB): a longer head gets ``431 {"error": ...}``; a malformed one ``400``
  (uvicorn's own answer to both was a plain-text 400, or a reset).
* ``--max-connections`` (default 256): connections beyond it get ``503 {"error": ...}`` with ``Retry-After``.
* A body the application refused before reading it (503, 413) is discarded as it arrives, for at most
  ``--read-timeout`` seconds; then the connection is closed.

A refusal writes its answer, half-closes the connection and keeps discarding what the client still sends for up to
:data:`LINGER_S` seconds before closing: closing with unread data in the socket would reset the connection and
could destroy the answer before the client reads it.
"""
from __future__ import annotations

import http
import json
from dataclasses import dataclass
from typing import Any

LINGER_S = 1.0
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
DEFAULT_MAX_CONNECTIONS = 256


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    read_timeout: float = 30.0


def json_response(status: int, reason: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 answer ``{"error": reason}`` that closes the connection."""
    body = json.dumps({"error": reason}).encode()
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}", "content-type: application/json",
             f"content-length: {len(body)}", "connection: close",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def guarded_protocol(limits: ConnectionLimits) -> type:
    """A subclass of uvicorn's ``H11Protocol`` enforcing ``limits`` (pass it as ``uvicorn.Config(http=...)``)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._head = bytearray()
            self._head_timer = None
            self._drain_timer = None
            self._refused = False
            if len(self.connections) > limits.max_connections:
                self._refuse(503, f"busy: {len(self.connections) - 1} connections are open (--max-connections "
                             f"{limits.max_connections}); retry later", {"Retry-After": "1"})
                return
            self._arm_head_timer()

        def _arm_head_timer(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(limits.header_timeout, self._head_timeout)

        def _disarm(self) -> None:
            for name in ("_head_timer", "_drain_timer"):
                timer = getattr(self, name, None)
                if timer is not None:
                    timer.cancel()
                    setattr(self, name, None)

        def _head_timeout(self) -> None:
            self._head_timer = None
            if not self._refused and self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self._refuse(408, f"the request head did not arrive within {limits.header_timeout:g} s "
                             "(--header-timeout)")

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return                                     # discarded while the answer lingers
            if self.conn.their_state is h11.IDLE:          # a request head is arriving
                self._arm_head_timer()
                room = limits.max_header_bytes + 4 - len(self._head)
                self._head += data[:max(room, 0)]
                end = self._head.find(b"\r\n\r\n")
                if (end < 0 and len(self._head) > limits.max_header_bytes) or end > limits.max_header_bytes:
                    self._refuse(431, f"the request head exceeds {limits.max_header_bytes} bytes "
                                 "(--max-header-bytes)")
                    return
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE and self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
                self._head.clear()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.conn.their_state is h11.IDLE:          # the next request's head: a new clock
                self._head.clear()
            elif self.conn.their_state is h11.SEND_BODY and self._drain_timer is None:
                # answered before the body was read (503, 413): discard it, but not for ever
                self._drain_timer = self.loop.call_later(limits.read_timeout, self._drain_timeout)

        def _drain_timeout(self) -> None:
            self._drain_timer = None
            if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            size = len(self.conn.trailing_data[0])
            if size > limits.max_header_bytes:
                self._refuse(431, f"the request head exceeds {limits.max_header_bytes} bytes (--max-header-bytes)")
            else:
                self._refuse(400, "malformed HTTP request: this service speaks HTTP/1.1 (GET /health, POST /score, "
                             "GET /metrics, WebSocket /stream)")

        def _refuse(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
            self._refused = True
            self._disarm()
            self._unset_keepalive_if_required()
            self._head = bytearray()
            self.logger.info("%s: refused with %d: %s", "%s:%d" % self.client if self.client else "client", status,
                             reason)
            if self.transport.is_closing():
                return
            self.transport.write(json_response(status, reason, headers))
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol
