"""An upstream's host name, resolved once for a while and shared, not once per new connection.

``loop.create_connection(host, ...)`` looks its host up on every call, in a thread (the default
executor; under uvloop, libuv's pool of four): a burst of a few hundred new upstream connections
queues as many lookups, each a round trip to the resolver, before the first request goes out.
aiohttp caches lookups for 10 s; a pool here keeps its origin's addresses for ``ttl_s`` and lets
every connection opened meanwhile share one lookup (the one in flight, if any).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket


class Addresses:
    """The IP addresses of one host and port, in the resolver's order of preference."""

    def __init__(self, host: str, port: int, ttl_s: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.ttl_s = ttl_s
        self._fixed: list[str] | None = None
        try:
            ipaddress.ip_address(host)
            self._fixed = [host]  # already an address: nothing to look up
        except ValueError:
            pass
        self._known: list[str] = []
        self._until = 0.0
        self._lookup: asyncio.Future[list[str]] | None = None

    async def get(self) -> list[str]:
        """The addresses; looked up if not known or older than ``ttl_s`` (``OSError`` if that fails)."""
        if self._fixed is not None:
            return self._fixed
        loop = asyncio.get_running_loop()
        if self._known and loop.time() < self._until:
            return self._known
        lookup = self._lookup
        if lookup is None:
            lookup = self._lookup = loop.create_future()
            task = loop.create_task(self._resolve(loop))
            task.add_done_callback(lambda t: self._settle(lookup, t))
        # shield: one waiter's cancellation (its own timeout) must not cancel the others' lookup
        return await asyncio.shield(lookup)

    def forget(self) -> None:
        """Every address failed to connect: look the host up again next time."""
        self._known = []
        self._until = 0.0

    async def _resolve(self, loop: asyncio.AbstractEventLoop) -> list[str]:
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        found: list[str] = []
        for *_, sockaddr in infos:
            address = str(sockaddr[0])
            if address not in found:
                found.append(address)
        if not found:
            raise OSError(f"{self.host} has no address")
        return found

    def _settle(self, lookup: asyncio.Future[list[str]], task: asyncio.Task[list[str]]) -> None:
        self._lookup = None
        if task.cancelled():
            lookup.cancel()
            return
        exc = task.exception()
        if exc is not None:
            lookup.set_exception(exc)
            lookup.exception()  # retrieved here: a lookup no one waits for any more must not warn
            return
        self._known = task.result()
        self._until = asyncio.get_running_loop().time() + self.ttl_s
        lookup.set_result(self._known)
