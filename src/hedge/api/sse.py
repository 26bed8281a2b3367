"""Sending a :class:`~hedge.gateway.stream.Stream` to an HTTP client as Server-Sent Events.

A small ASGI response of its own (rather than Starlette's ``StreamingResponse``) because the
upstream must be let go on *every* exit path: a normal end, an upstream failure, and a client
that disconnects, which cancels the pump and with it the upstream read. Whatever happens,
:meth:`Stream.close` runs, and the stream books and records itself there.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from hedge.api.cycle import DEPARTURE, Departure
from hedge.api.http import encoded
from hedge.gateway.stream import Stream

T = TypeVar("T")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class Dialect(Protocol):
    """How a stream's OpenAI events reach the client: as they are, or translated (``/v1/messages``)."""

    def events(self, events: list[bytes]) -> bytes: ...

    async def end(self, stream: Stream) -> bytes:
        """The last bytes, once the stream is over (``stream.failure`` says how it ended); async, so
        a face may store what was streamed (e.g. a Responses API response) before it ends."""
        ...


class OpenAIDialect:
    """The OpenAI stream as the pipeline produced it."""

    def events(self, events: list[bytes]) -> bytes:
        return b"".join(events)

    async def end(self, stream: Stream) -> bytes:
        return b"".join(stream.tail())


class SSEResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, stream: Stream, headers: dict[str, str], dialect: Dialect | None = None) -> None:
        self.status_code = 200
        self.background = None
        # What Starlette's init_headers makes of these (no body: no content-length), in one step.
        raw = encoded({**SSE_HEADERS, **headers})
        if not any(name == b"content-type" for name, _ in raw):
            raw.append((b"content-type", b"text/event-stream; charset=utf-8"))
        self.raw_headers = raw
        self.stream = stream
        self.dialect = dialect or OpenAIDialect()
        self.watch: Callable[[list[bytes]], None] | None = None
        """Sees each batch of the pipeline's events as it passes (e.g. to gather a shadow's reference)."""
        self.after: Callable[[], None] | None = None
        """Called once the stream is over and closed, if the client stayed to its end."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = False
        try:
            await unless_client_leaves(receive, self._pump(send), scope.get(DEPARTURE))
        except ClientGone:
            gone = True
        finally:
            await self.stream.close(client_gone=gone)
        if not gone and self.after is not None:
            self.after()

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        dialect = self.dialect
        watch = self.watch
        async for events in self.stream:
            if watch is not None:
                watch(events)
            await send({"type": "http.response.body", "body": dialect.events(events), "more_body": True})
        await send({"type": "http.response.body", "body": await dialect.end(self.stream), "more_body": False})


async def disconnected(receive: Receive) -> None:
    """Return once the client has disconnected (call it only after the request body was read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class ClientGone(Exception):
    """The client disconnected before the work was done; the work was cancelled."""


async def unless_client_leaves(receive: Receive, work: Awaitable[T], departure: object = None) -> T:
    """Run ``work`` while watching the client; if it disconnects, cancel ``work`` (and with it the
    upstream call) and raise :class:`ClientGone`.

    ``departure``: the request's :class:`~hedge.api.cycle.Departure` (its scope's
    ``DEPARTURE``), which Hedge's server protocol fires when the connection is lost; then nothing
    per request watches. Without one (another server, an in-process ASGI client) a watcher task
    reads ``receive``: call it only once the request body was read, so that ``receive`` sees
    nothing but the disconnect. Either way ``work`` runs in this task and is cancelled from
    outside: one task per request, not two and an ``asyncio.wait`` (a request's start is paid in
    one queue when hundreds begin at once).
    """
    if isinstance(departure, Departure):
        return await _unless_departed(departure, work)
    me = asyncio.current_task()
    assert me is not None
    gone = False
    waiting = True

    def on_watch_done(watch: asyncio.Task[None]) -> None:
        nonlocal gone
        if waiting and not watch.cancelled() and watch.exception() is None:
            gone = True
            me.cancel()

    watch = asyncio.ensure_future(disconnected(receive))
    watch.add_done_callback(on_watch_done)
    try:
        result = await work
    except asyncio.CancelledError:
        if gone and me.uncancel() == 0:  # our own cancel, not (also) one from outside this request
            raise ClientGone from None
        raise
    finally:
        waiting = False
        watch.cancel()
    if gone:  # cancelled, but the work finished all the same: take the cancel back; no one to answer
        me.uncancel()
        raise ClientGone
    return result


async def _unless_departed(departure: Departure, work: Awaitable[T]) -> T:
    if departure.left:
        if inspect.iscoroutine(work):
            work.close()  # never started: nothing to cancel, and no "never awaited" warning
        raise ClientGone
    me = asyncio.current_task()
    assert me is not None
    gone = False

    def on_leave() -> None:
        nonlocal gone
        gone = True
        me.cancel()

    departure.on_leave = on_leave
    try:
        result = await work
    except asyncio.CancelledError:
        if gone and me.uncancel() == 0:
            raise ClientGone from None
        raise
    finally:
        departure.on_leave = None
    if gone:
        me.uncancel()
        raise ClientGone
    return result
