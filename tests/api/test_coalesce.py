"""A response's head leaves in the same write as its body's first bytes, and never waits for a body
that is slow to come.

The gateway's server protocol runs in-process over a transport that records each write; the client
is a raw socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from conftest import answer_lifespan
from hedge.api.connections import guarded_protocol
from hedge.cli.net import free_port, serve_in_loop

BOUND = 15.0


class Recorded:
    """A transport that records what is written through it, otherwise the real one."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self.writes = writes

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    headers = [(b"content-type", b"text/plain")]
    path = scope["path"]
    if path == "/whole":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [*headers, (b"content-length", b"5")]}
        )
        await send({"type": "http.response.body", "body": b"hello"})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two", "more_body": False})
    elif path == "/late":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await scope["state"]["go"].wait()
        await send({"type": "http.response.body", "body": b"at last", "more_body": False})


@asynccontextmanager
async def server(writes: list[bytes], go: asyncio.Event) -> AsyncIterator[int]:
    base = guarded_protocol()

    class Recording(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(Recorded(transport, writes))  # type: ignore[arg-type]

    async def with_state(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope["state"] = {"go": go}
        await app(scope, receive, send)

    port = free_port()
    async with serve_in_loop(with_state, port, http=Recording):  # type: ignore[arg-type]
        yield port


async def exchange(
    port: int, path: str, until: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
    data = b""
    async with asyncio.timeout(BOUND):
        while until not in data:
            chunk = await reader.read(65536)
            assert chunk, data
            data += chunk
    return reader, writer, data


async def test_a_whole_response_is_one_write() -> None:
    writes: list[bytes] = []
    async with server(writes, asyncio.Event()) as port:
        _, writer, data = await exchange(port, "/whole", b"hello")
        writer.close()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\nhello")
    assert writes == [data]


async def test_a_stream_sends_its_head_with_the_first_chunk_then_each_chunk() -> None:
    writes: list[bytes] = []
    async with server(writes, asyncio.Event()) as port:
        _, writer, data = await exchange(port, "/stream", b"0\r\n\r\n")
        writer.close()
    assert b"".join(writes) == data
    assert len(writes) == 2
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\n3\r\none\r\n")
    assert writes[1] == b"3\r\ntwo\r\n0\r\n\r\n"


async def test_a_head_whose_body_is_late_is_not_held_for_it() -> None:
    writes: list[bytes] = []
    go = asyncio.Event()
    async with server(writes, go) as port:
        reader, writer, head = await exchange(port, "/late", b"\r\n\r\n")  # before any body is sent
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
        go.set()
        data = b""
        async with asyncio.timeout(BOUND):
            while b"0\r\n\r\n" not in data:
                data += await reader.read(65536)
        writer.close()
    assert data == b"7\r\nat last\r\n0\r\n\r\n"
    assert writes == [head, data]
