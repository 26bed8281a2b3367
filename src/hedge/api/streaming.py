"""Forwarding an upstream stream to the client, chunk by chunk as it arrives.

A dedicated ASGI response (rather than Starlette's ``StreamingResponse``)
because the upstream connection must be closed on *every* exit path: normal
end, upstream failure, and a client that disconnects, which cancels the pump
and with it the upstream request. It also books usage and cost when the
stream ends, and adds the cost to the final usage chunk if the client asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from hedge.config import Price
from hedge.cost.pricing import cost_usd
from hedge.errors import HedgeError, UpstreamError
from hedge.observe.records import RequestRecord
from hedge.providers.base import StreamTranslator, Usage
from hedge.providers.sse import DONE, frame
from hedge.routing.deployment import Deployment
from hedge.store.bodies import BODY_LIMIT
from hedge.transport import network_error

log = logging.getLogger("hedge")
_WARNED_NO_USAGE: set[str] = set()
"""Deployments already warned about, so the log says it once, not once per request."""

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def first_events(
    resp: aiohttp.ClientResponse, translator: StreamTranslator, dep: Deployment
) -> list[bytes]:
    """Hold the stream back until its first content, so a failure before it can still fail over.

    Nothing has reached the client yet, so failing over here is invisible to it.
    The time-to-first-token timeout, if set, bounds this phase.
    """
    held: list[bytes] = []
    try:
        async with asyncio.timeout(dep.timeouts.first_token):
            async for data in resp.content.iter_any():
                events = translator.feed(data)
                held.extend(events)
                if any(_has_content(e) for e in events):
                    return held
                if translator.ended:
                    break
            held.extend(translator.close())
    except HedgeError:
        raise
    except BaseException as exc:
        raise network_error(dep.provider, exc) from None
    if not translator.finished:
        raise UpstreamError(
            f"provider '{dep.provider}' ended the stream before its first token",
            status=502,
            code="upstream_empty_stream",
        )
    return held


def _has_content(event: bytes) -> bool:
    """Whether an OpenAI chunk event carries anything beyond the opening role delta."""
    try:
        chunk = orjson.loads(event[6:])
    except orjson.JSONDecodeError:
        return True
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if choice.get("finish_reason") or any(delta.get(k) for k in ("content", "tool_calls", "refusal")):
            return True
    return False


class ChatStream(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        *,
        upstream: aiohttp.ClientResponse,
        translator: StreamTranslator,
        first: list[bytes],
        deployment: Deployment,
        want_usage: bool,
        headers: dict[str, str],
        record: RequestRecord,
        price: Price,
        baseline: Price | None,
        on_done: Callable[[RequestRecord], None],
        started: float,
        prompt_estimate: int = 0,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({**SSE_HEADERS, **headers})
        self._upstream = upstream
        self._translator = translator
        self._first = first
        self._dep = deployment
        self._want_usage = want_usage
        self._record = record
        self._price = price
        self._baseline = baseline
        self._on_done = on_done
        self._started = started
        self._prompt_estimate = prompt_estimate
        self._on_failure = on_failure
        self._events_sent = len(first)
        self._booked = False
        self._clean = False
        self._kept: bytearray | None = bytearray() if record.request_body is not None else None
        """The response as sent, when bodies are logged (up to the body log's limit)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
            if not pump.done():
                self._record.status = 499
                self._record.error = "client disconnected"
                pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        finally:
            watch.cancel()
            if not pump.done():
                pump.cancel()
            cancelled = False
            if self._clean and self._translator.ended and not self._upstream.content.at_eof():
                # Past its last event: reuse the connection only if the body also ends promptly.
                try:
                    self._clean = await _reaches_eof(self._upstream)
                except asyncio.CancelledError:
                    self._clean, cancelled = False, True
            if self._clean:
                self._upstream.release()
            else:
                self._upstream.close()
            self._finish()
            if cancelled:
                raise asyncio.CancelledError

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        translator = self._translator
        await self._body(send, b"".join(self._first), True)
        self._record.ttft_ms = (time.perf_counter() - self._started) * 1000
        try:
            try:
                already_ended = translator.ended  # the whole stream came with its first token
                if not already_ended:
                    async for data in self._upstream.content.iter_any():
                        out = translator.feed(data)
                        if out:
                            self._events_sent += len(out)
                            await self._body(send, b"".join(out), True)
                        if translator.ended:
                            break  # its last event: an upstream that never closes must not keep us waiting
                tail = translator.close()
            except HedgeError:
                raise
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise network_error(self._dep.provider, exc) from None
            if not translator.finished:
                raise UpstreamError(
                    f"provider '{self._dep.provider}' closed the stream before it was complete",
                    status=502,
                    code="upstream_stream_truncated",
                )
            self._clean = True
        except HedgeError as exc:
            # Content already reached the client: end with an error event, never a silent truncation.
            self._record.status = exc.status
            self._record.error = exc.message
            if self._on_failure is not None:
                self._on_failure()  # the deployment failed after its first token: its breaker should know
            await self._body(send, frame(exc.to_dict()), False)
            return
        self._book()
        final = tail
        if self._want_usage:
            final.append(frame(self._usage_chunk()))
        final.append(DONE)
        await self._body(send, b"".join(final), False)

    async def _body(self, send: Send, body: bytes, more: bool) -> None:
        if self._kept is not None and len(self._kept) <= BODY_LIMIT:
            self._kept += body[: BODY_LIMIT + 1 - len(self._kept)]
        await send({"type": "http.response.body", "body": body, "more_body": more})

    def _book(self) -> None:
        self._booked = True
        usage = self._translator.usage
        if usage is not None:
            usage = usage.sane(self._dep.id)
        rec = self._record
        if usage is None and rec.status >= 400:
            # Cut short (client gone, upstream failed): the provider still bills the prompt and what it
            # produced, so book an estimate rather than nothing (one token per content event).
            usage = Usage(self._prompt_estimate, max(0, self._events_sent - 1))
            rec.error = f"{rec.error or 'stream cut short'} (usage estimated)"
        if usage is None and self._dep.id not in _WARNED_NO_USAGE:
            _WARNED_NO_USAGE.add(self._dep.id)
            log.warning(
                "%s sent no usage in its stream: such requests are booked at 0 tokens and 0 USD "
                "('hedge check' flags this as stream-usage)",
                self._dep.id,
            )
        rec.cost_usd = cost_usd(usage, self._price)
        if self._baseline is not None:
            rec.baseline_cost_usd = cost_usd(usage, self._baseline)
        if usage is not None:
            rec.prompt_tokens = usage.prompt_tokens
            rec.completion_tokens = usage.completion_tokens
            rec.cached_tokens = usage.cached_tokens

    def _usage_chunk(self) -> dict[str, Any]:
        chunk = self._translator.usage_chunk
        usage = self._translator.usage or Usage()
        if chunk is None:
            chunk = {
                "id": "chatcmpl-" + self._record.request_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self._dep.model,
                "choices": [],
            }
        usage_obj = dict(chunk.get("usage") or {}) or {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        }
        usage_obj["hedge_cost_usd"] = round(self._record.cost_usd, 10)
        if self._translator.usage is None:
            usage_obj["hedge_usage_missing"] = True
        return {**chunk, "usage": usage_obj}

    def _finish(self) -> None:
        rec = self._record
        if not self._booked:
            self._book()
        rec.latency_ms = (time.perf_counter() - self._started) * 1000
        ok = rec.status < 400
        self._dep.stats.end(
            rec.latency_ms if ok else None, rec.ttft_ms, rec.completion_tokens if ok else None
        )
        if self._kept is not None:
            rec.response_body = bytes(self._kept)
        self._on_done(rec)


_EOF_GRACE_S = 1.0
_EOF_SLACK_BYTES = 64 * 1024


async def _reaches_eof(resp: aiohttp.ClientResponse) -> bool:
    """After the upstream's last event, whether its body ends within a short grace (a well-behaved
    server's chunked terminator is already on its way); a server that never closes is hung up on."""
    extra = 0
    try:
        async with asyncio.timeout(_EOF_GRACE_S):
            while not resp.content.at_eof():
                piece = await resp.content.readany()
                extra += len(piece)
                if not piece or extra > _EOF_SLACK_BYTES:
                    break
    except (TimeoutError, aiohttp.ClientError):
        return False
    return resp.content.at_eof() and extra <= _EOF_SLACK_BYTES


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
