"""A hostile upstream for tests: it does what a broken or malicious provider would.

``hedge mock`` is a well-behaved witness of the real wire formats; this server is
the opposite. It runs in a thread of the test process (so a test can count what it
received) and picks its behaviour from the first path segment, so one server plays
every part: ``base_url: http://127.0.0.1:PORT/<mode>/v1`` for OpenAI style,
``http://127.0.0.1:PORT/<mode>`` for the native styles.

Modes:

- ``echo-auth``: an error status whose body, in the style's own error shape, quotes
  every credential header the gateway sent (and the query string).
- ``echo-auth-stream``: a 200 stream whose first event is the style's error event,
  quoting the credentials the same way.
- ``echo-auth-late``: a 200 stream that sends some content, then that error event.
- ``done-no-close``: an OpenAI stream that sends ``[DONE]`` and then keeps the
  connection open without another byte.
- ``gzip-bomb``: a small gzip body that expands to ``BOMB_BYTES``.
- ``huge-event``: a stream whose first event never ends (``BOMB_BYTES`` without a
  blank line).
- ``usage-<prompt>-<completion>``: a normal OpenAI answer reporting that usage
  (negative or absurd numbers included).
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from hedge.cli.net import free_port

BOMB_BYTES = 64 * 1024 * 1024

SERVER_KEY: web.AppKey[HostileUpstream] = web.AppKey("server")

_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")


def _echo(request: web.Request) -> str:
    sent = [f"{name}: {request.headers[name]}" for name in _CREDENTIAL_HEADERS if name in request.headers]
    return f"invalid request, you sent {'; '.join(sent)} query={request.query_string}"


def _style(request: web.Request) -> str:
    path = request.path
    if path.endswith("/messages"):
        return "anthropic"
    if ":generateContent" in path or ":streamGenerateContent" in path:
        return "gemini"
    return "openai"


def _error_body(style: str, message: str) -> dict[str, Any]:
    if style == "anthropic":
        return {"type": "error", "error": {"type": "api_error", "message": message}}
    if style == "gemini":
        return {"error": {"code": 500, "message": message, "status": "INTERNAL"}}
    return {"error": {"message": message, "type": "server_error", "param": message, "code": None}}


def _chunk(text: str, finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "hostile",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _completion(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-hostile",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "hostile",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": 0},
    }


def _stream_events(style: str, message: str, content_first: bool) -> list[bytes]:
    """The style's stream: optionally some content, then its error event."""
    if style == "anthropic":
        start = {
            "type": "message_start",
            "message": {
                "id": "msg_hostile",
                "type": "message",
                "role": "assistant",
                "model": "hostile",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 3, "output_tokens": 0},
            },
        }
        events = [b"event: message_start\ndata: " + orjson.dumps(start) + b"\n\n"]
        if content_first:
            block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}
            events.append(b"event: content_block_start\ndata: " + orjson.dumps(block) + b"\n\n")
            events.append(b"event: content_block_delta\ndata: " + orjson.dumps(delta) + b"\n\n")
        error = _error_body("anthropic", message)
        events.append(b"event: error\ndata: " + orjson.dumps(error) + b"\n\n")
        return events
    if style == "gemini":
        events = []
        if content_first:
            part = {"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "index": 0}]}
            events.append(b"data: " + orjson.dumps(part) + b"\n\n")
        events.append(b"data: " + orjson.dumps(_error_body("gemini", message)) + b"\n\n")
        return events
    events = [_chunk("hi")] if content_first else []
    events.append(b"data: " + orjson.dumps(_error_body("openai", message)) + b"\n\n")
    return events


async def _handle(request: web.Request) -> web.StreamResponse:
    server: HostileUpstream = request.app[SERVER_KEY]
    mode = request.match_info["mode"]
    server.hits[mode] = server.hits.get(mode, 0) + 1
    style = _style(request)
    if mode == "echo-auth":
        return web.json_response(_error_body(style, _echo(request)), status=500)
    if mode in ("echo-auth-stream", "echo-auth-late"):
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for event in _stream_events(style, _echo(request), content_first=mode == "echo-auth-late"):
            await resp.write(event)
        await resp.write_eof()
        return resp
    if mode == "done-no-close":
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_chunk("hello") + _chunk(" world", "stop") + b"data: [DONE]\n\n")
        server.open_streams += 1
        try:
            await asyncio.Event().wait()  # never another byte, never a close: the gateway must hang up
        finally:
            server.open_streams -= 1
        return resp
    if mode == "gzip-bomb":
        return web.Response(
            body=server.bomb(),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
    if mode == "huge-event":
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"x": "')
        piece = b"a" * (1024 * 1024)
        for _ in range(BOMB_BYTES // len(piece)):
            await resp.write(piece)
        await resp.write(b'"}\n\n')
        await resp.write_eof()
        return resp
    if mode.startswith("usage"):
        _, prompt, completion = mode.split("_")
        body = await request.json()
        if not body.get("stream"):
            return web.json_response(_completion(int(prompt), int(completion)))
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        usage = {"prompt_tokens": int(prompt), "completion_tokens": int(completion), "total_tokens": 0}
        end = {**orjson.loads(_chunk("", "stop")[6:]), "choices": [], "usage": usage}
        await resp.write(_chunk("hi") + _chunk("", "stop") + b"data: " + orjson.dumps(end) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
    return web.json_response(_error_body(style, f"unknown hostile mode {mode}"), status=404)


class HostileUpstream:
    """The server, running on its own event loop in a daemon thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hits: dict[str, int] = {}
        self.open_streams = 0
        self._bomb: bytes | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def bomb(self) -> bytes:
        if self._bomb is None:
            self._bomb = gzip.compress(b" " * BOMB_BYTES, compresslevel=9)
        return self._bomb

    def url(self, mode: str, openai: bool = True) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}" + ("/v1" if openai else "")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app[SERVER_KEY] = self
        app.router.add_route("*", "/{mode}/{rest:.*}", _handle)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> HostileUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("hostile upstream did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def hostile_upstream() -> Iterator[HostileUpstream]:
    """For a fixture: ``yield from hostile_upstream()``."""
    server = HostileUpstream().start()
    yield server
    server.stop()
