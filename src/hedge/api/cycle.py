"""One request and its response on a connection, as the ASGI app sees them: ``receive`` and ``send``.

:class:`Cycle` is the per-request half of Hedge's HTTP/1.1 server (``hedge.api.server`` is the
per-connection half). It frames a response the way uvicorn's cycle does, byte for byte (a test holds
the two equal), with three differences that each matter per request:

- **the head leaves with the body**: uvicorn writes the status line and headers the moment
  ``http.response.start`` is sent, then the body on ``http.response.body``; uvloop sends each write
  at once, so a whole response cost two ``send`` system calls (about 35 µs each on a small shared
  VM) and the client two TCP segments. Every Hedge response sends its first body bytes right after
  its start, so the head is held until then, but never past the current turn of the event loop: a
  response whose body comes later gets its head on its own.
- **headers checked in one step**: uvicorn checks every header name and value with a regular
  expression (two searches a header, a dozen headers a Hedge response, about 50 instructions a
  byte). Here the bytes those expressions forbid are deleted from all names joined and from all
  values joined, and a head whose text gets shorter is refused: one C loop over the bytes.
- **no event per request**: the body is handed over as it is when it is already in (the common
  case: a small JSON body arrives with its head); a future is made only when ``receive`` must wait.

The cycle is also the request's :class:`Departure`: the protocol tells it when the client's
connection is lost before the response is complete, at no cost per request.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from hedge.api.server import ServerProtocol

log = logging.getLogger("hedge")

DEPARTURE = "hedge.departure"
"""Scope key: the request's :class:`Departure`, which the protocol fires if the client leaves."""

NAME_FORBIDDEN = bytes(range(0x20)) + b'\x7f()<>@,;:[]={} \t\\"'
"""Bytes a header name may not hold (uvicorn's set: control bytes and the separators)."""
VALUE_FORBIDDEN = bytes(range(0x09)) + bytes(range(0x0A, 0x20)) + b"\x7f"
"""Bytes a header value may not hold: control bytes but the tab (a CR or LF would split the head)."""


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


STATUS_LINE = {status: _status_line(status) for status in range(100, 600)}

_SERVER_ERROR = orjson.dumps(
    {
        "error": {
            "message": "The server failed to answer this request.",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }
)


class Departure:
    """Tells a request, at no cost per request, that its client's connection was lost before the
    response was complete.

    Without it, noticing means a task per request blocked in ``receive()`` for the disconnect
    message (``hedge.api.sse.unless_client_leaves`` falls back to that under another server).
    """

    __slots__ = ("left", "on_leave")

    def __init__(self) -> None:
        self.left = False
        self.on_leave: Callable[[], None] | None = None

    def leave(self) -> None:
        self.left = True
        callback, self.on_leave = self.on_leave, None
        if callback is not None:
            callback()


class Cycle(Departure):
    """One request's ``receive`` and ``send``, written to its connection's transport."""

    __slots__ = (
        "_delivered",
        "_flush",
        "_held",
        "_waiter",
        "body",
        "chunked_encoding",
        "disconnected",
        "expected_content_length",
        "keep_alive",
        "method",
        "more_body",
        "protocol",
        "response_complete",
        "response_started",
        "waiting_for_100_continue",
    )

    def __init__(self, protocol: ServerProtocol, method: str, keep_alive: bool, expect_100: bool) -> None:
        self.left = False
        self.on_leave = None
        self.protocol = protocol
        self.method = method
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = expect_100
        self.disconnected = False
        self.body = b""
        self.more_body = True
        self.response_started = False
        self.response_complete = False
        self.chunked_encoding: bool | None = None
        self.expected_content_length = 0
        self._delivered = False  # the last of the body was handed to the app
        self._held = b""  # the response head, until the body's first bytes (or the turn's end)
        self._flush: asyncio.Handle | None = None
        self._waiter: asyncio.Future[None] | None = None

    # -- the app's side ------------------------------------------------------------------------------

    async def run(self, app: Any, scope: dict[str, Any]) -> None:
        """Run the app on this request; answer 500 (or close) when it fails or answers nothing."""
        try:
            result = await app(scope, self.receive, self.send)
        except asyncio.CancelledError:
            self._abandon()
            raise
        except Exception:
            log.exception("unhandled error in the ASGI application")
            if not self.response_started:
                await self._send_500()
            else:
                self._abandon()
        else:
            if result is not None:
                log.error("the ASGI application returned %r instead of None", type(result).__name__)
                self._abandon()
            elif not self.response_started and not self.disconnected:
                log.error("the ASGI application returned without starting a response")
                await self._send_500()
            elif not self.response_complete and not self.disconnected:
                log.error("the ASGI application returned without completing its response")
                self._abandon()

    async def receive(self) -> dict[str, Any]:
        """The body as it arrived (``http.request``), then, once the response is complete or the
        client is gone, ``http.disconnect``."""
        protocol = self.protocol
        if self.waiting_for_100_continue and not protocol.transport.is_closing():
            protocol.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            protocol.resume_reading()
            if self._delivered or (self.more_body and not self.body):
                await self._wait()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        body, self.body = self.body, b""
        if not self.more_body:
            self._delivered = True
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: Any) -> None:
        protocol = self.protocol
        if protocol.write_paused and not self.disconnected:
            await protocol.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', got '{message['type']}'.")
            headers = message.get("headers")
            defaults = protocol.server_state.default_headers
            head = self._head(message["status"], [*defaults, *headers] if headers else defaults)
            self.response_started = True
            self.waiting_for_100_continue = False
            self._held = head
            self._flush = protocol.loop.call_soon(self._flush_head)
            return
        if self.response_complete:
            return
        if message["type"] != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', got '{message['type']}'.")
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if self.method == "HEAD":
            self.expected_content_length = 0
            self._write(b"")  # the held head
        elif self.chunked_encoding:
            if body:
                data = b"%x\r\n%b\r\n" % (len(body), body)
                self._write(data if more_body else data + b"0\r\n\r\n")
            else:
                self._write(b"" if more_body else b"0\r\n\r\n")
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            self._write(body)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.wake()
            if not self.keep_alive:
                protocol.transport.close()
            protocol.on_response_complete(self)

    # -- the protocol's side -------------------------------------------------------------------------

    def add_body(self, chunk: bytes) -> int:
        """Buffer a piece of the body for ``receive``; return how much is buffered."""
        self.body += chunk  # bytes + bytes: the first piece is kept as it is, not copied
        self.wake()
        return len(self.body)

    def end_body(self) -> None:
        self.more_body = False
        self.wake()

    def disconnect(self) -> None:
        """The client is gone, or the server gave up on it: ``receive`` says so, ``send`` is a no-op."""
        self.disconnected = True
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- writing -------------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        held = self._held
        if held:
            self._held = b""
            if self._flush is not None:
                self._flush.cancel()
                self._flush = None
            data = held + data
        self.protocol.transport.write(data)

    def _flush_head(self) -> None:
        self._flush = None
        held, self._held = self._held, b""
        transport = self.protocol.transport
        if held and not transport.is_closing():
            transport.write(held)

    def _abandon(self) -> None:
        """Close the connection: what was sent of a response cannot be completed."""
        self._flush_head()
        self.protocol.transport.close()

    async def _wait(self) -> None:
        waiter = self._waiter = self.protocol.loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    async def _send_500(self) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(_SERVER_ERROR)),
            (b"connection", b"close"),
        ]
        await self.send({"type": "http.response.start", "status": 500, "headers": headers})
        await self.send({"type": "http.response.body", "body": _SERVER_ERROR, "more_body": False})

    def _head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The status line and headers, noting the framing they ask for (as uvicorn does)."""
        names = b"".join([name for name, _ in headers])
        if len(names.translate(None, NAME_FORBIDDEN)) != len(names):
            raise RuntimeError("Invalid HTTP header name.")
        values = b"".join([value for _, value in headers])
        if len(values.translate(None, VALUE_FORBIDDEN)) != len(values):
            raise RuntimeError("Invalid HTTP header value.")
        line = STATUS_LINE.get(status)
        if line is None:
            raise RuntimeError(f"Invalid HTTP status code {status!r}.")
        content = [line]
        has_connection_close = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection" and b"close" in [t.lower().strip() for t in value.split(b",")]:
                self.keep_alive = False
                has_connection_close = True
            content += (name, b": ", value, b"\r\n")  # one join below, no formatting per header
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if self.chunked_encoding is None and self.method != "HEAD" and status not in (204, 304):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)
