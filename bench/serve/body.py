"""Reading a request body without letting bodies flood memory or hold a worker.

* A :class:`BodyBudget` bounds the bytes of all bodies being read or decoded at once (``--max-body-memory``): a
  request reserves its ``Content-Length`` before its first byte is read (a chunked one reserves as it reads), and
  is answered 503 when the reservation does not fit; the bytes are released once the body is decoded.
* :func:`read_body` reads one body under ``--max-bytes`` (413, checked on ``Content-Length`` before reading and
  while reading) and within ``--read-timeout`` seconds for the whole body (408 after that: a client sending one
  byte a second does not keep its slot).

The caller checks its queue (503) before calling :func:`read_body`, so a busy service reads no body at all; the
server discards a refused body as it arrives (bench/serve/protocol.py bounds how long that may take).
"""
from __future__ import annotations

import asyncio
from typing import Any


class BodyError(Exception):
    """A body refused: ``status`` (400, 408, 413, 503) and the reason for the JSON answer."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


class BodyBudget:
    """Bytes of request bodies in flight, at most ``limit``."""

    def __init__(self, limit: int):
        if int(limit) < 1:
            raise ValueError(f"--max-body-memory must be at least 1 byte, got {limit}")
        self.limit, self.used = int(limit), 0

    def reserve(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def release(self, n: int) -> None:
        self.used = max(0, self.used - n)


class Reservation:
    """One request's share of the budget: grows as a chunked body is read, released once (idempotent)."""

    def __init__(self, budget: BodyBudget):
        self.budget, self.held = budget, 0

    def grow_to(self, n: int) -> None:
        if n > self.held:
            if not self.budget.reserve(n - self.held):
                raise BodyError(503, f"busy: {self.budget.used} bytes of request bodies are in flight (at most "
                                f"{self.budget.limit}, --max-body-memory); retry later", {"Retry-After": "1"})
            self.held = n

    def release(self) -> None:
        self.budget.release(self.held)
        self.held = 0


async def read_body(request: Any, max_bytes: int, timeout_s: float, reservation: Reservation) -> bytearray:
    """The body of a starlette ``request``, under the limits above; raises :class:`BodyError`."""
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit():
        n = int(declared)
        if n > max_bytes:
            raise BodyError(413, f"the body has {n} bytes; this service takes at most {max_bytes} (--max-bytes)")
        reservation.grow_to(n)

    from starlette.requests import ClientDisconnect

    async def read() -> bytearray:
        body = bytearray()
        try:
            async for chunk in request.stream():
                if len(body) + len(chunk) > max_bytes:
                    raise BodyError(413, f"the body exceeds {max_bytes} bytes (--max-bytes)")
                reservation.grow_to(len(body) + len(chunk))
                body += chunk
        except ClientDisconnect:
            raise BodyError(400, "the client closed the connection before the body was complete") from None
        return body

    try:
        return await asyncio.wait_for(read(), timeout_s)
    except asyncio.TimeoutError:
        raise BodyError(408, f"the body did not arrive within {timeout_s:g} s (--read-timeout); send it faster or "
                        "in one piece", {"Connection": "close"}) from None
