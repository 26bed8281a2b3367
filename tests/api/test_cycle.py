"""A response's head leaves in the same write as its body's first bytes, and never waits for a body
that is slow to come.

The gateway's server protocol runs in-process over a transport that records each write; the client
is a raw socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from conftest import answer_lifespan
from hedge.api.connections import guarded_protocol
from hedge.api.cycle import NAME_FORBIDDEN, VALUE_FORBIDDEN, Cycle
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


# -- the head Hedge builds is the head uvicorn builds ----------------------------------------------


class Sink:
    """A transport that keeps what is written and whether it was closed."""

    def __init__(self) -> None:
        self.data = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


CL = (b"content-length", b"5")
CASES: list[tuple[str, str, int, list[tuple[bytes, bytes]], list[tuple[bytes, bool]]]] = [
    # (name, method, status, headers, body messages)
    ("content-length", "GET", 200, [(b"Content-Type", b"text/plain"), CL], [(b"hello", False)]),
    (
        "chunked by default",
        "POST",
        200,
        [(b"content-type", b"text/event-stream")],
        [(b"one", True), (b"", True), (b"two", False)],
    ),
    ("chunked, empty end", "POST", 200, [], [(b"data", True), (b"", False)]),
    ("asked-for chunked", "GET", 200, [(b"Transfer-Encoding", b"Chunked")], [(b"x", False)]),
    ("connection close", "GET", 200, [CL, (b"Connection", b"keep-alive, Close")], [(b"hello", False)]),
    ("HEAD", "HEAD", 200, [CL], [(b"", False)]),
    ("HEAD without a length", "HEAD", 200, [], [(b"", False)]),
    ("204", "GET", 204, [], [(b"", False)]),
    ("304", "GET", 304, [(b"etag", b'"x"')], [(b"", False)]),
    ("value with a tab", "GET", 200, [(b"x-a", b"a\tb"), (b"content-length", b"0")], [(b"", False)]),
    ("a 404 with a body", "GET", 404, [(b"content-length", b"9")], [(b"not found", False)]),
]
BAD: list[tuple[str, list[tuple[bytes, bytes]]]] = [
    ("CR LF in a value", [(b"x-model", b"gpt\r\nset-cookie: a=b")]),
    ("NUL in a value", [(b"x-a", b"a\x00")]),
    ("DEL in a value", [(b"x-a", b"a\x7f")]),
    ("space in a name", [(b"x a", b"1")]),
    ("colon in a name", [(b"x:a", b"1")]),
]


class StubProtocol:
    """What a :class:`Cycle` reads of its connection."""

    def __init__(self, sink: Sink) -> None:
        self.transport = sink
        self.loop = asyncio.get_running_loop()
        self.server_state = type("State", (), {"default_headers": [DATE]})()
        self.write_paused = False
        self.completed = 0

    def on_response_complete(self, cycle: Cycle) -> None:
        self.completed += 1


DATE = (b"date", b"Thu, 03 Dec 2026 10:55:24 GMT")


def _cycle(cls: type[Any], method: str, keep_alive: bool, sink: Sink) -> Any:
    from uvicorn.protocols.http.flow_control import FlowControl

    if cls is Cycle:
        return Cycle(StubProtocol(sink), method, keep_alive, False)  # type: ignore[arg-type]
    scope = {"type": "http", "method": method, "http_version": "1.1", "path": "/", "query_string": b""}
    return cls(
        scope,
        sink,
        FlowControl(sink),  # type: ignore[arg-type]
        logging.getLogger("t"),
        logging.getLogger("t"),
        False,
        [DATE],
        asyncio.Event(),
        False,
        keep_alive,
        lambda: None,
    )


async def _run(cls: type[Any], method: str, status: int, headers: Any, bodies: Any, keep_alive: bool) -> Any:
    sink = Sink()
    cycle = _cycle(cls, method, keep_alive, sink)
    outcome: Any = None
    try:
        await cycle.send({"type": "http.response.start", "status": status, "headers": headers})
        for body, more in bodies:
            await cycle.send({"type": "http.response.body", "body": body, "more_body": more})
    except RuntimeError as exc:
        outcome = str(exc)
    state = (cycle.keep_alive, cycle.chunked_encoding, cycle.response_complete, cycle.expected_content_length)
    return sink.data, sink.closed, state, outcome


@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize(("name", "method", "status", "headers", "bodies"), CASES, ids=[c[0] for c in CASES])
async def test_the_head_and_body_bytes_are_uvicorns(
    name: str, method: str, status: int, headers: Any, bodies: Any, keep_alive: bool
) -> None:
    ours = await _run(Cycle, method, status, headers, bodies, keep_alive)
    theirs = await _run(RequestResponseCycle, method, status, headers, bodies, keep_alive)
    assert ours == theirs
    assert ours[0].startswith(b"HTTP/1.1 ")


@pytest.mark.parametrize(("name", "headers"), BAD, ids=[b[0] for b in BAD])
async def test_a_forbidden_byte_in_any_header_is_refused(name: str, headers: Any) -> None:
    fine = [(b"content-type", b"application/json"), (b"x-hedge-provider", b"p")]
    for placed in ([*headers, *fine], [*fine, *headers]):
        data, _closed, _state, outcome = await _run(Cycle, "GET", 200, placed, [(b"", False)], True)
        assert outcome is not None and outcome.startswith("Invalid HTTP header")
        assert data == b"", "nothing of a refused head is written"


@pytest.mark.parametrize(
    ("bodies", "error"),
    [([(b"hello!", False)], "longer"), ([(b"hell", False)], "shorter")],
)
async def test_a_body_that_breaks_its_content_length_is_an_error(bodies: Any, error: str) -> None:
    ours = await _run(Cycle, "GET", 200, [CL], bodies, True)
    theirs = await _run(RequestResponseCycle, "GET", 200, [CL], bodies, True)
    assert ours[3] == theirs[3] and error in ours[3]


def test_the_forbidden_bytes_are_the_ones_uvicorns_expressions_refuse() -> None:
    from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE

    every = [bytes([b]) for b in range(256)]
    assert set(NAME_FORBIDDEN) == {b[0] for b in every if HEADER_RE.search(b)}
    assert set(VALUE_FORBIDDEN) == {b[0] for b in every if HEADER_VALUE_RE.search(b)}
