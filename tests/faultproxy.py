"""A TCP fault proxy for tests: put it in front of a real server and make that server fail on cue.

Tests need the shared PostgreSQL to be "down" without touching it, so a gateway is
pointed at this proxy instead, and the test switches the proxy's mode at run time:

* ``pass``: bytes flow both ways, like a direct connection;
* ``refuse``: the proxy stops listening and drops every open connection, so the client
  sees connection refused / reset, as when the server is down;
* ``blackhole``: connections are accepted and held, but nothing is forwarded either way,
  as when the server (or the network to it) silently stops answering.

Leaving ``blackhole`` drops the held connections (their bytes are gone, so their
protocol state is broken); ``refuse`` then ``pass`` listens on the same port again.
The proxy runs its own asyncio loop in a daemon thread, so synchronous tests and tests
with their own event loop can both drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, Literal

from hedge.cli.net import free_port

Mode = Literal["pass", "refuse", "blackhole"]
MODES: tuple[Mode, ...] = ("pass", "refuse", "blackhole")


class _Link:
    """One client connection and, unless it was accepted in ``blackhole``, its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.held = False
        """Bytes were swallowed on this link: it can never forward again."""

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()


class FaultProxy:
    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5432) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self.port = free_port()
        self.accepted = 0
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy", daemon=True)

    # -- driven from the test's thread ----------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def set_mode(self, mode: Mode) -> None:
        """Switch the mode; returns once the proxy behaves accordingly."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        self._call(self._switch(mode))

    def close(self) -> None:
        self._call(self._switch("refuse"))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url_host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- on the proxy's loop --------------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, "127.0.0.1", self.port, reuse_address=True
            )

    async def _switch(self, mode: Mode) -> None:
        previous, self.mode = self.mode, mode
        if mode == "refuse":
            if self._server is not None:
                self._server.close()
                self._server = None
            self._drop(lambda link: True)
        else:
            await self._listen()
            if previous == "blackhole" and mode == "pass":
                self._drop(lambda link: link.held or link.upstream is None)

    def _drop(self, which: Any) -> None:
        for link in [link for link in self._links if which(link)]:
            link.abort()
            self._links.discard(link)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(writer)
        self._links.add(link)
        try:
            if self.mode != "pass":
                link.held = True
                await self._swallow(reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return
            link.upstream = up_writer
            await asyncio.gather(self._pump(reader, up_writer, link), self._pump(up_reader, writer, link))
        finally:
            link.abort()
            self._links.discard(link)

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if self.mode != "pass" or link.held:
                    link.held = True  # swallowed: this link's stream is broken for good
                    continue
                writer.write(data)
                await writer.drain()
        link.abort()
