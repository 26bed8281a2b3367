"""Hedge's HTTP/1.1 server protocol, spoken to over raw sockets: what a client can see of it.

The server runs in-process (uvicorn with Hedge's protocol class, as ``hedge serve`` runs it) in front
of a small ASGI app that echoes what it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import uvicorn

from conftest import answer_lifespan
from hedge.api.connections import guarded_protocol
from hedge.api.server import MAX_HEAD_BYTES
from hedge.cli.net import free_port

BOUND = 15.0


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with what it saw of the request as JSON; ``/boom`` fails, ``/late`` answers after a read."""
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    if scope["path"] == "/boom":
        raise RuntimeError("the app failed")
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request"
        body += message["body"]
        if not message.get("more_body"):
            break
    seen = {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode(),
        "query": scope["query_string"].decode(),
        "root_path": scope["root_path"],
        "http_version": scope["http_version"],
        "length": len(body),
        "body": body[:64].decode(errors="replace"),
        "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
    }
    data = orjson.dumps(seen)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})


@contextlib.asynccontextmanager
async def server(**settings: Any) -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        echo,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        http=guarded_protocol(),
        **settings,
    )
    srv = uvicorn.Server(config)
    task = asyncio.ensure_future(srv.serve())
    try:
        async with asyncio.timeout(BOUND):
            while not srv.started:
                assert not task.done(), "the server did not start"
                await asyncio.sleep(0.01)
        yield port
    finally:
        srv.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, BOUND)


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """One response (content-length framed), parsed."""
        async with asyncio.timeout(BOUND):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    async def closed(self) -> bool:
        """The server closed the connection (after what it had sent)."""
        async with asyncio.timeout(BOUND):
            return await self.reader.read() == b""


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Client(reader, writer)
    finally:
        writer.close()


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with server() as port, connect(port) as client:
        client.send(post("/one", b"a") + post("/two", b"bb") + b"GET /three HTTP/1.1\r\nhost: x\r\n\r\n")
        seen = [orjson.loads((await client.response())[2]) for _ in range(3)]
    assert [(s["path"], s["length"]) for s in seen] == [("/one", 1), ("/two", 2), ("/three", 0)]


async def test_the_scope_carries_the_decoded_path_the_raw_path_and_the_query() -> None:
    async with server(root_path="/gw") as port, connect(port) as client:
        client.send(b"GET /a%20b/c?x=1&y=%20 HTTP/1.1\r\nhost: x\r\nX-Trail: v \t\r\n\r\n")
        status, _, body = await client.response()
    seen = orjson.loads(body)
    assert status == 200
    assert (seen["path"], seen["raw_path"], seen["query"]) == ("/gw/a b/c", "/gw/a%20b/c", "x=1&y=%20")
    assert seen["headers"]["x-trail"] == "v", "names are lowered and trailing whitespace is not the value's"


async def test_an_absolute_form_target_is_served_by_its_path() -> None:
    async with server() as port, connect(port) as client:
        client.send(b"GET http://x/v1/models?a=b HTTP/1.1\r\nhost: x\r\n\r\n")
        seen = orjson.loads((await client.response())[2])
    assert (seen["path"], seen["query"]) == ("/v1/models", "a=b")


async def test_a_chunked_body_arrives_whole() -> None:
    async with server() as port, connect(port) as client:
        client.send(b"POST /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        client.send(b"5\r\nhello\r\n")
        await asyncio.sleep(0)
        client.send(b"6\r\n world\r\n0\r\n\r\n")
        seen = orjson.loads((await client.response())[2])
    assert (seen["length"], seen["body"]) == (11, "hello world")


async def test_a_large_body_arrives_whole_through_back_pressure() -> None:
    body = bytes(range(256)) * 16 * 1024  # 4 MiB: reading pauses and resumes many times
    async with server() as port, connect(port) as client:
        client.send(post("/big", body))
        seen = orjson.loads((await client.response())[2])
    assert seen["length"] == len(body)


async def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    async with server() as port, connect(port) as client:
        client.send(b"POST /e HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n")
        async with asyncio.timeout(BOUND):
            interim = await client.reader.readuntil(b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.send(b"data")
        status, _, body = await client.response()
    assert status == 200 and orjson.loads(body)["body"] == "data"


async def test_an_http_1_0_request_is_answered_then_closed() -> None:
    async with server() as port, connect(port) as client:
        client.send(b"GET /old HTTP/1.0\r\n\r\n")
        status, headers, body = await client.response()
        assert await client.closed()
    assert status == 200 and headers["connection"] == "close"
    assert orjson.loads(body)["http_version"] == "1.0"


async def test_a_keep_alive_connection_serves_many_requests_then_closes_when_idle() -> None:
    async with server(timeout_keep_alive=0.2) as port, connect(port) as client:
        for i in range(3):
            client.send(post(f"/{i}", b"x"))
            assert (await client.response())[0] == 200
        assert await client.closed(), "an idle connection is closed after timeout_keep_alive"


async def test_garbage_is_answered_400_in_openais_error_shape() -> None:
    async with server() as port, connect(port) as client:
        client.send(b"NOT HTTP AT ALL\r\n\r\n")
        status, headers, body = await client.response()
        assert await client.closed()
    assert status == 400 and headers["content-type"] == "application/json"
    assert orjson.loads(body)["error"]["type"] == "invalid_request_error"


async def test_a_request_head_over_the_limit_is_answered_431() -> None:
    async with server() as port, connect(port) as client:
        client.send(b"GET / HTTP/1.1\r\nhost: x\r\n")
        for _ in range(MAX_HEAD_BYTES // 1000 + 2):
            client.send(b"x-filler: " + b"a" * 1000 + b"\r\n")
        status, _, body = await client.response()
        assert await client.closed()
    assert status == 431 and orjson.loads(body)["error"]["code"] == "request_head_too_large"


async def test_an_app_that_fails_is_answered_500_as_json_and_the_connection_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with server() as port, connect(port) as client:
        client.send(b"GET /boom HTTP/1.1\r\nhost: x\r\n\r\n")
        status, headers, body = await client.response()
        assert await client.closed()
    assert status == 500 and headers["connection"] == "close"
    assert orjson.loads(body)["error"]["type"] == "server_error"
    assert "the app failed" not in body.decode(), "the error's text stays in the log"
    assert any("unhandled error" in r.getMessage() for r in caplog.records)


async def test_an_upgrade_request_is_answered_as_plain_http_then_closed() -> None:
    async with server() as port, connect(port) as client:
        client.send(b"GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n")
        status, _, body = await client.response()
        assert await client.closed()
    assert status == 200 and orjson.loads(body)["path"] == "/ws"


async def test_the_date_header_is_sent_and_no_server_header_when_it_is_off() -> None:
    async with server(server_header=False) as port, connect(port) as client:
        client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        _, headers, _ = await client.response()
    assert "date" in headers and "server" not in headers
