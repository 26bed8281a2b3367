"""A response's head leaves in the same write as its body's first bytes: one syscall, not two.

uvicorn writes the status line and headers the moment ``http.response.start`` is sent, then the
body on ``http.response.body``; uvloop sends each write at once, so a whole response costs two
``send`` calls (about 35 µs each on a small shared VM: a few percent of a request's CPU) and the
client two TCP segments. Every Hedge response sends its first body bytes right after its start
(a whole body, or a stream's first events, which the pipeline has before it answers), so the head
is held until then. It never waits longer than the current turn of the event loop: a response
whose body comes later gets its head on its own, as before.

:class:`HeldHeadCycle` also builds the head itself: uvicorn checks every header name and value
with a regular expression of its own (two searches a header, a dozen headers a Hedge response);
here the bytes each expression forbids (read off the expressions themselves, so the two always
agree) are deleted from all names joined and from all values joined, and a head whose text gets
shorter is refused: a C loop over the bytes instead of the regular-expression engine's character-set
test, which cost about 50 instructions a byte.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)

_NAME_BYTES = bytes(b for b in range(256) if HEADER_RE.match(bytes([b])))
_VALUE_BYTES = bytes(b for b in range(256) if HEADER_VALUE_RE.match(bytes([b])))
"""The bytes uvicorn's expressions refuse in a header name and in a header value."""


class HeadWriter:
    """The transport a request cycle writes to: it holds the head it is given, then sends it with
    the next write, or on its own at the end of the loop's turn."""

    __slots__ = ("_flush", "_held", "_loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._held = b""
        self._flush: asyncio.Handle | None = None
        self._loop = loop  # the connection's: asking for the running one is a getpid system call

    def hold(self, head: bytes) -> None:
        self._held = head
        self._flush = self._loop.call_soon(self.flush)

    def write(self, data: bytes) -> None:
        held = self._held
        if held:
            self._held = b""
            if self._flush is not None:
                self._flush.cancel()
                self._flush = None
            data = held + data
        self.transport.write(data)

    def flush(self) -> None:
        self._flush = None
        held, self._held = self._held, b""
        if held and not self.transport.is_closing():
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # the rest of the transport's interface, unchanged
        return getattr(self.transport, name)


class HeldHeadCycle(RequestResponseCycle):
    """uvicorn's request cycle, writing through a :class:`HeadWriter` that holds the head.

    ``send`` does what uvicorn's does (flow control, framing by content-length or chunks,
    ``connection: close``, HEAD), with the head built as the module says.
    """

    transport: HeadWriter  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        if self.access_log:  # uvicorn's own access line (Hedge serves with it off): its own path
            await RequestResponseCycle.send(self, message)
            return
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', got '{message['type']}'.")
            head = self._head(message["status"], self.default_headers + list(message.get("headers", ())))
            self.response_started = True
            self.waiting_for_100_continue = False
            self.transport.hold(head)
            return
        if self.response_complete:
            return
        if message["type"] != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', got '{message['type']}'.")
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            self.transport.write(b"")  # the held head
        elif self.chunked_encoding:
            if body:
                data = b"%x\r\n%b\r\n" % (len(body), body)
                self.transport.write(data if more_body else data + b"0\r\n\r\n")
            else:
                self.transport.write(b"" if more_body else b"0\r\n\r\n")
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            self.transport.write(body)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()

    def _head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The status line and headers, noting the framing they ask for (as uvicorn does)."""
        names = b"".join([name for name, _ in headers])
        if len(names.translate(None, _NAME_BYTES)) != len(names):
            raise RuntimeError("Invalid HTTP header name.")
        values = b"".join([value for _, value in headers])
        if len(values.translate(None, _VALUE_BYTES)) != len(values):
            raise RuntimeError("Invalid HTTP header value.")
        content = [STATUS_LINE[status]]
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
        if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status not in (204, 304):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)
