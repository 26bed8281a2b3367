"""The upstream HTTP/1.1 client against a scripted server that writes exact bytes.

``hedge mock`` (uvicorn) only ever answers one way; these servers answer every way HTTP/1.1
allows (lengths, chunks, a body that ends with the connection, gzip, 100 Continue, a keep-alive
connection closed under us) and some it does not (stray bytes, a hung answer), so each framing
rule of the client is exercised on the wire.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from conftest import wait_until
from hedge.transport import http1
from hedge.transport.http1 import (
    ConnectError,
    ConnectTimeout,
    Origin,
    Pool,
    PoolTimeout,
    ProtocolError,
    ReadTimeout,
    Response,
    TooLarge,
    request_head,
    split_url,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Scripted:
    """A server whose handler reads requests and writes raw bytes; it counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        return head + body


@asynccontextmanager
async def scripted(
    handler: Callable[[Scripted, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    limit: int = 10,
    warm: int = 0,
) -> AsyncIterator[tuple[Scripted, Pool]]:
    box: list[Scripted] = []

    async def bound(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handler(box[0], reader, writer)

    script = Scripted(bound)
    box.append(script)
    server = await asyncio.start_server(script.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = Pool(Origin.of(f"http://127.0.0.1:{port}"), limit, None, warm=warm)
    try:
        yield script, pool
    finally:
        pool.close()
        for w in script.writers:
            w.close()
        server.close()
        await server.wait_closed()


async def post(pool: Pool, body: bytes = b"{}", *, read_s: float = 30, total_s: float = 30) -> Response:
    return await pool.request(
        "POST",
        "/v1/x",
        {"content-type": "application/json"},
        body,
        connect_s=5,
        read_s=read_s,
        total_s=total_s,
    )


def answer(body: bytes, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body


# ---- framing -----------------------------------------------------------------------------------


def chunked(*pieces: bytes) -> bytes:
    out = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    for p in pieces:
        out += f"{len(p):x}\r\n".encode() + p + b"\r\n"
    return out + b"0\r\n\r\n"


FRAMINGS = [
    ("content-length", answer(b'{"ok":true}'), b'{"ok":true}', True),
    ("chunked", chunked(b'{"ok"', b":true}"), b'{"ok":true}', True),
    ("until close (HTTP/1.0)", b'HTTP/1.0 200 OK\r\n\r\n{"ok":true}', b'{"ok":true}', False),
    ("gzip", answer(gzip.compress(b'{"ok":true}'), "content-encoding: gzip"), b'{"ok":true}', True),
    ("deflate", answer(zlib.compress(b'{"ok":true}'), "content-encoding: deflate"), b'{"ok":true}', True),
    ("100 continue first", b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"{}"), b"{}", True),
    ("empty 204", b"HTTP/1.1 204 No Content\r\n\r\n", b"", True),
]


@pytest.mark.parametrize(("raw", "body", "reusable"), [f[1:] for f in FRAMINGS], ids=[f[0] for f in FRAMINGS])
async def test_every_framing_reads_whole_and_reuses_what_it_can(
    raw: bytes, body: bytes, reusable: bool
) -> None:
    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await s.read_request(reader)
            writer.write(raw)
            await writer.drain()
            if not reusable:
                return

    async with scripted(handler) as (script, pool):
        for _ in range(3):
            resp = await post(pool)
            assert await resp.read(1 << 20) == body
        assert script.connections == (1 if reusable else 3)


async def test_a_stream_arrives_piece_by_piece_as_it_is_sent() -> None:
    go = asyncio.Event()

    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await go.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()
        await s.read_request(reader)  # the connection is reused for the next request
        writer.write(answer(b"again"))

    async with scripted(handler) as (script, pool):
        resp = await post(pool)
        assert resp.status == 200 and resp.headers()["transfer-encoding"] == "chunked"
        assert await resp.piece() == b"first"
        assert not resp.at_eof()
        go.set()
        assert await resp.piece() == b"second"
        assert await resp.piece() == b""
        assert resp.at_eof()
        assert await (await post(pool)).read(100) == b"again"
        assert script.connections == 1


async def test_repeated_headers_are_joined_and_names_lower_cased() -> None:
    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        writer.write(answer(b"", "Retry-After: 3", "X-Thing: a", "x-thing: b"))

    async with scripted(handler) as (_, pool):
        resp = await post(pool)
        assert resp.headers()["retry-after"] == "3"
        assert resp.headers()["x-thing"] == "a, b"


BOMB = gzip.compress(b" " * (32 * 1024 * 1024), compresslevel=9)


async def send_bomb(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await s.read_request(reader)
    writer.write(answer(BOMB, "content-encoding: gzip"))


async def test_a_gzip_bomb_is_refused_past_the_limit_without_expanding_it_all() -> None:
    async with scripted(send_bomb) as (_, pool):
        resp = await post(pool)
        pieces = []
        with pytest.raises(TooLarge):
            while piece := await resp.piece():
                pieces.append(len(piece))
                if sum(pieces) > 1024 * 1024:
                    raise TooLarge(1024 * 1024)
        assert max(pieces) <= 1024 * 1024, "one step expanded more than its bound"
        resp.close()


async def test_reading_a_gzip_bomb_whole_stops_at_the_limit() -> None:
    async with scripted(send_bomb) as (_, pool):
        with pytest.raises(TooLarge):
            await (await post(pool)).read(1024 * 1024)


async def test_a_body_larger_than_the_limit_is_refused() -> None:
    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        writer.write(answer(b"x" * 5000))

    async with scripted(handler) as (_, pool):
        with pytest.raises(TooLarge):
            await (await post(pool)).read(4096)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",  # then the connection closes
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-encoding: br\r\ncontent-length: 2\r\n\r\nxx",
        b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 8\r\n\r\nnot gzip",
    ],
    ids=["truncated", "not http", "unasked encoding", "corrupt gzip"],
)
async def test_a_broken_response_is_a_protocol_error(raw: bytes) -> None:
    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        writer.write(raw)
        await writer.drain()

    async with scripted(handler) as (_, pool):
        with pytest.raises(ProtocolError):
            resp = await post(pool)
            await resp.read(1 << 20)


# ---- connections -------------------------------------------------------------------------------


async def test_a_keep_alive_connection_closed_by_the_upstream_is_retried_once_on_a_new_one() -> None:
    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        writer.write(answer(b"one"))
        await writer.drain()
        if s.connections == 1:
            await s.read_request(reader)  # the keep-alive race: the request arrives as we hang up
            return
        await s.read_request(reader)
        writer.write(answer(b"three"))

    async with scripted(handler) as (script, pool):
        assert await (await post(pool)).read(100) == b"one"
        assert await (await post(pool)).read(100) == b"one"  # on a second connection
        assert script.connections == 2


async def test_the_retry_after_the_keep_alive_race_does_not_take_another_stale_connection() -> None:
    gate = asyncio.Event()

    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first_two = s.connections <= 2
        await s.read_request(reader)
        await gate.wait()
        writer.write(answer(b"ok"))
        await writer.drain()
        while True:
            await s.read_request(reader)
            if first_two:
                return  # every connection of the first burst hangs up on its next request
            writer.write(answer(b"ok"))
            await writer.drain()

    async with scripted(handler) as (script, pool):
        burst = [asyncio.ensure_future(post(pool)) for _ in range(2)]
        for _ in range(500):
            if script.connections == 2:
                break
            await asyncio.sleep(0.01)
        gate.set()
        for call in burst:
            assert await (await call).read(100) == b"ok"
        assert await (await post(pool)).read(100) == b"ok"
        assert script.connections == 3


async def test_a_connection_that_closed_while_idle_is_not_used() -> None:
    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        writer.write(answer(b"ok", "connection: keep-alive"))
        await writer.drain()

    async with scripted(handler) as (script, pool):
        assert await (await post(pool)).read(100) == b"ok"
        for _ in range(200):  # the server's FIN reaches the client
            if not pool._idle or pool._idle[0].closed:
                break
            await asyncio.sleep(0.01)
        assert await (await post(pool)).read(100) == b"ok"
        assert script.connections == 2


async def test_endless_headers_are_cut_off() -> None:
    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(100_000):
            writer.write(f"x-h{i}: {'v' * 64}\r\n".encode())
            await writer.drain()

    async with scripted(handler) as (_, pool):
        with pytest.raises(ProtocolError, match="headers exceed"):
            await post(pool)


async def test_a_connection_with_stray_bytes_after_the_answer_is_dropped() -> None:
    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await s.read_request(reader)
            writer.write(answer(b"ok") + b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstray")
            await writer.drain()

    async with scripted(handler) as (script, pool):
        for _ in range(2):
            assert await (await post(pool)).read(100) == b"ok"
        assert script.connections == 2


async def test_the_pool_holds_at_most_its_limit_and_queues_the_rest() -> None:
    gate = asyncio.Event()

    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await s.read_request(reader)
            await gate.wait()
            writer.write(answer(b"ok"))
            await writer.drain()

    async with scripted(handler, limit=2) as (script, pool):
        calls = [asyncio.ensure_future(post(pool)) for _ in range(6)]
        for _ in range(500):
            if len(script.requests) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(script.requests) == 2 and not any(c.done() for c in calls)
        gate.set()
        for c in calls:
            assert await (await c).read(100) == b"ok"
        assert script.connections == 2


async def test_waiting_past_the_connect_timeout_for_a_full_pool_is_a_pool_timeout() -> None:
    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        await asyncio.Event().wait()

    async with scripted(handler, limit=1) as (script, pool):
        first = asyncio.ensure_future(post(pool))
        for _ in range(500):
            if script.requests:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(PoolTimeout):
            await pool.request("POST", "/", {}, b"", connect_s=0.1, read_s=30, total_s=30)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        # the cancelled request gave its slot back
        assert pool._open <= 1


async def test_a_refused_connection_is_a_connect_error_and_frees_its_slot() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = Pool(Origin.of(f"http://127.0.0.1:{port}"), 1, None)
    for _ in range(2):  # a leaked slot would make the second a PoolTimeout
        with pytest.raises(ConnectError):
            await post(pool)
    pool.close()


async def test_a_connect_that_hangs_is_a_connect_timeout() -> None:
    """A listener whose backlog is full drops further SYNs: the connect neither succeeds nor fails."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    pool = Pool(Origin.of(f"http://127.0.0.1:{port}"), 1, None)
    try:
        for _ in range(2):  # a leaked slot would make the second a PoolTimeout
            with pytest.raises(ConnectTimeout):
                await pool.request("POST", "/", {}, b"", connect_s=0.2, read_s=30, total_s=30)
    finally:
        pool.close()
        for s in fillers:
            s.close()
        listener.close()


# ---- timeouts and flow control -----------------------------------------------------------------


async def test_silence_past_the_read_timeout_fails_and_drops_the_connection() -> None:
    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await writer.drain()
        await asyncio.Event().wait()

    async with scripted(handler) as (_, pool):
        resp = await post(pool, read_s=0.2)
        assert await resp.piece() == b"hi"
        with pytest.raises(ReadTimeout):
            await resp.piece()
        assert pool._open == 0 or all(c.closed for c in pool._idle)


async def test_a_trickle_cannot_outlast_the_total_timeout() -> None:
    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)

    async with scripted(handler) as (_, pool):
        resp = await post(pool, read_s=5, total_s=0.3)
        with pytest.raises(ReadTimeout):
            while await resp.piece():
                pass


async def test_a_slow_reader_pauses_the_upstream_instead_of_buffering_everything() -> None:
    sent = 0

    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await s.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        piece = b"x" * 65536
        for _ in range(256):  # 16 MiB
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
            sent += len(piece)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with scripted(handler) as (_, pool):
        resp = await post(pool, read_s=0.3)
        assert await resp.piece()
        for _ in range(100):  # give the server every chance to push more than it should
            await asyncio.sleep(0.01)
        assert resp._size < 8 * 1024 * 1024, "the client buffered the whole body instead of pausing"
        total = 0
        while piece := await resp.piece():  # paused past the read timeout: that silence is ours
            total += len(piece)
        assert total + 65536 >= sent == 256 * 65536


async def test_a_response_closed_before_its_end_takes_its_connection_down() -> None:
    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await s.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
            await writer.drain()

    async with scripted(handler) as (script, pool):
        resp = await post(pool)
        assert await resp.piece() == b"hi"
        resp.close()
        resp = await post(pool)
        assert await resp.piece() == b"hi"
        assert script.connections == 2


# ---- what goes on the wire ---------------------------------------------------------------------


async def test_the_request_on_the_wire() -> None:
    async def handler(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        writer.write(answer(b""))

    async with scripted(handler) as (script, pool):
        await (
            await pool.request(
                "POST", "/v1/chat?x=1", {"authorization": "Bearer k"}, b"{}", connect_s=5, read_s=5, total_s=5
            )
        ).read(10)
    head, _, body = script.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat?x=1 HTTP/1.1"
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert fields["Host"].startswith("127.0.0.1:")
    assert fields["authorization"] == "Bearer k"
    assert fields["Content-Length"] == "2" and body == b"{}"
    assert fields["Accept-Encoding"] == "identity" and fields["User-Agent"].startswith("hedge/")


@pytest.mark.parametrize(
    "headers",
    [{"x-a": "v\r\nx-injected: 1"}, {"x-a\r\nx-b": "v"}, {"x-a": "v\nx-b: 1"}, {"x-a": "v\x00"}],
    ids=["crlf in value", "crlf in name", "lf in value", "nul"],
)
def test_a_header_that_would_smuggle_a_line_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ProtocolError):
        request_head("POST", "/", "h", headers, 0)


def test_a_header_given_by_the_caller_replaces_ours_and_the_framing_is_ours() -> None:
    given = {"User-Agent": "mine", "accept-encoding": "gzip", "HOST": "other.example", "Content-Length": "99"}
    head = request_head("POST", "/", "h", given, 2).decode().lower()
    for name, value in (("user-agent", "mine"), ("accept-encoding", "gzip"), ("host", "other.example")):
        assert head.count(f"\r\n{name}: ") == 1 and f"\r\n{name}: {value}\r\n" in head
    assert head.count("content-length") == 1 and "content-length: 2\r\n" in head
    assert "content-length" not in request_head("GET", "/", "h", {}, None).decode().lower()


@pytest.mark.parametrize(
    ("url", "origin", "target"),
    [
        ("https://api.openai.com/v1/chat/completions", "https://api.openai.com", "/v1/chat/completions"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080", "/v1"),
        ("http://h", "http://h", "/"),
        ("http://h?x=1", "http://h", "/?x=1"),
        ("http://[::1]:9/a?b=c", "http://[::1]:9", "/a?b=c"),
        ("http://h/models/my model:generate", "http://h", "/models/my%20model:generate"),
        ("http://h/é", "http://h", "/%C3%A9"),
    ],
)
def test_urls_split_into_pool_and_target(url: str, origin: str, target: str) -> None:
    assert split_url(url) == (origin, target)


@pytest.mark.parametrize(
    ("url", "host_header"),
    [
        ("https://api.openai.com", "api.openai.com"),
        ("https://api.openai.com:443", "api.openai.com"),
        ("http://h:80", "h"),
        ("http://h:8080", "h:8080"),
        ("http://[::1]:9", "[::1]:9"),
    ],
)
def test_the_host_header_names_the_port_only_when_it_is_not_the_default(url: str, host_header: str) -> None:
    assert Origin.of(url).host_header == host_header


@pytest.mark.parametrize("url", ["ftp://h/x", "http:///x", "https://user:pw@h/x"])
def test_urls_the_client_will_not_use(url: str) -> None:
    with pytest.raises(ValueError):
        Origin.of(url)


# ---- warm connections --------------------------------------------------------------------------


async def answer_each(s: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await s.read_request(reader)
        writer.write(answer(b"ok"))
        await writer.drain()


async def test_warm_connections_are_open_before_the_first_request_and_serve_a_burst() -> None:
    async with scripted(answer_each, limit=10, warm=4) as (script, pool):
        pool.keep_warm()
        await wait_until(lambda: script.connections == 4, "four warm connections")
        assert not script.requests  # opened, nothing sent
        replies = await asyncio.gather(*(post(pool) for _ in range(4)))
        bodies = [await r.read(100) for r in replies]
        assert bodies == [b"ok"] * 4
        assert script.connections == 4  # the burst took the warm ones: no handshake of its own


async def test_a_warm_connection_the_upstream_closes_is_opened_again() -> None:
    async with scripted(answer_each, limit=10, warm=2) as (script, pool):
        pool.keep_warm()
        await wait_until(lambda: script.connections == 2, "two warm connections")
        script.writers[0].close()  # the upstream drops an idle one
        await wait_until(lambda: script.connections == 3, "a third connection replacing it")
        assert await (await post(pool)).read(100) == b"ok"
        assert script.connections == 3


async def test_warming_an_unreachable_upstream_tries_once_then_waits() -> None:
    attempts = 0

    class Counting(Pool):
        async def _open_connection(self, first: tuple[bytes, float, float] | None) -> Any:
            nonlocal attempts
            attempts += 1
            return await super()._open_connection(first)

    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = Counting(Origin.of(f"http://127.0.0.1:{port}"), 10, None, warm=3)
    try:
        pool.keep_warm()
        await wait_until(lambda: attempts == 3 and pool._warming is None, "one round of attempts")
        pool.keep_warm()  # too soon after a failure: nothing
        await asyncio.sleep(0)
        assert attempts == 3 and pool._warming is None
        with pytest.raises(ConnectError):  # requests still try, and say why they failed
            await post(pool)
        assert attempts == 4
    finally:
        pool.close()


async def test_warming_tries_again_after_the_back_off_and_fills_up_once_the_upstream_is_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http1, "_SWEEP_S", 0.2)  # the back-off after a failed round (30 s in use)
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = Pool(Origin.of(f"http://127.0.0.1:{port}"), 10, None, warm=2)
    accepted: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    try:
        pool.keep_warm()
        await wait_until(lambda: pool._warming is None and pool._warm_timer is not None, "a failed round")
        assert pool._open == 0
        server = await asyncio.start_server(accept, "127.0.0.1", port)  # the upstream is back
        await wait_until(lambda: len(accepted) == 2 and pool._open == 2, "two warm connections")
        assert pool._warm_timer is None and len(pool._idle) == 2
    finally:
        pool.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
