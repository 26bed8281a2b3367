"""A response's head leaves in the same write as its body's first bytes: one syscall, not two.

uvicorn writes the status line and headers the moment ``http.response.start`` is sent, then the
body on ``http.response.body``; uvloop sends each write at once, so a whole response costs two
``send`` calls (about 35 µs each on a small shared VM: a few percent of a request's CPU) and the
client two TCP segments. Every Hedge response sends its first body bytes right after its start
(a whole body, or a stream's first events, which the pipeline has before it answers), so the head
is held until then. It never waits longer than the current turn of the event loop: a response
whose body comes later gets its head on its own, as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle


class HeadWriter:
    """The transport a request cycle writes to: it holds the head it is told to hold, then sends it
    with the next write, or on its own at the end of the loop's turn."""

    __slots__ = ("_flush", "_held", "hold_next", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.hold_next = False
        self._held = b""
        self._flush: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        if self.hold_next:
            self.hold_next = False
            self._held = data
            self._flush = asyncio.get_running_loop().call_soon(self.flush)
            return
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
    """uvicorn's request cycle, writing through a :class:`HeadWriter` that holds the head."""

    transport: HeadWriter  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        if not self.response_started:
            self.transport.hold_next = message["type"] == "http.response.start"
        await RequestResponseCycle.send(self, message)
        self.transport.hold_next = False  # nothing written (a disconnect): hold nothing later
