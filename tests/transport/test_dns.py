"""An upstream named by host name: looked up once for a burst of new connections, not once each.

The resolver is the one asyncio's loop uses (``socket.getaddrinfo`` in a thread), replaced here by
a table so that a name can resolve to several addresses, one of which refuses connections.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from hedge.transport.dns import Addresses
from hedge.transport.http1 import ConnectError, Origin, Pool


class Resolver:
    """``socket.getaddrinfo`` for made-up names; counts the lookups of each."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: dict[str, int] = {}

    def __call__(self, host: str, port: Any, *_: int) -> Any:
        self.lookups[host] = self.lookups.get(host, 0) + 1
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port))) for ip in self.table[host]]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    fake = Resolver({})
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield fake


async def serve_ok(hosts: list[str]) -> tuple[asyncio.Server, int]:
    """A server answering every request with ``ok``; it records each request's Host header."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
                fields = {k.lower(): v.strip() for k, v in fields.items()}
                hosts.append(fields[b"host"].decode())
                await reader.readexactly(int(fields.get(b"content-length", b"0")))
                await asyncio.sleep(0.05)  # long enough that a burst needs a connection each
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def post(pool: Pool) -> bytes:
    resp = await pool.request("POST", "/v1/x", {}, b"{}", connect_s=5, read_s=30, total_s=30)
    return await resp.read(100)


async def test_a_burst_of_new_connections_shares_one_lookup_and_skips_an_address_that_refuses(
    resolver: Resolver,
) -> None:
    # 127.0.0.2 is loopback too, but nothing listens there on this port: refused, then the next.
    resolver.table["upstream.test"] = ["127.0.0.2", "127.0.0.1"]
    hosts: list[str] = []
    server, port = await serve_ok(hosts)
    pool = Pool(Origin.of(f"http://upstream.test:{port}"), 20, None)
    try:
        answers = await asyncio.gather(*(post(pool) for _ in range(20)))
        assert answers == [b"ok"] * 20
        assert resolver.lookups == {"upstream.test": 1}
        assert hosts == [f"upstream.test:{port}"] * 20  # the name, not the address, on the wire
    finally:
        pool.close()
        server.close()
        await server.wait_closed()


async def test_a_name_that_does_not_resolve_is_a_connect_error_not_remembered(resolver: Resolver) -> None:
    pool = Pool(Origin.of("http://nowhere.test:80"), 1, None)
    try:
        for _ in range(2):  # a leaked slot would make the second a PoolTimeout
            with pytest.raises(ConnectError, match="not known"):
                await post(pool)
        assert resolver.lookups == {"nowhere.test": 2}
    finally:
        pool.close()


async def test_when_every_address_refuses_the_name_is_looked_up_again(resolver: Resolver) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    resolver.table["moved.test"] = ["127.0.0.1"]
    pool = Pool(Origin.of(f"http://moved.test:{port}"), 1, None)
    try:
        for _ in range(2):  # the second looks the name up afresh: the address may have moved
            with pytest.raises(ConnectError):
                await post(pool)
        assert resolver.lookups == {"moved.test": 2}
    finally:
        pool.close()


async def test_an_ip_address_is_never_looked_up(resolver: Resolver) -> None:
    hosts: list[str] = []
    server, port = await serve_ok(hosts)
    pool = Pool(Origin.of(f"http://127.0.0.1:{port}"), 2, None)
    try:
        assert await post(pool) == b"ok"
        assert resolver.lookups == {}
    finally:
        pool.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("ttl_s", "lookups"), [(60.0, 1), (0.0, 3)])
async def test_addresses_are_kept_for_their_time_to_live(
    resolver: Resolver, ttl_s: float, lookups: int
) -> None:
    resolver.table["kept.test"] = ["10.0.0.1", "10.0.0.1", "10.0.0.2"]
    addresses = Addresses("kept.test", 443, ttl_s=ttl_s)
    for _ in range(3):
        assert await addresses.get() == ["10.0.0.1", "10.0.0.2"]  # in order, each once
    assert resolver.lookups == {"kept.test": lookups}


async def test_a_waiter_that_gives_up_does_not_cancel_the_lookup_for_the_others(resolver: Resolver) -> None:
    gate = asyncio.Event()
    resolver.table["slow.test"] = ["10.0.0.9"]
    addresses = Addresses("slow.test", 443)
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await real(*args, **kwargs)

    loop.getaddrinfo = slow  # type: ignore[method-assign]
    try:
        impatient = asyncio.ensure_future(addresses.get())
        patient = asyncio.ensure_future(addresses.get())
        await asyncio.sleep(0)
        impatient.cancel()
        gate.set()
        assert await patient == ["10.0.0.9"]
        assert impatient.cancelled()
        assert resolver.lookups == {"slow.test": 1}
    finally:
        del loop.getaddrinfo
