"""A streamed answer, after its first token: an async iterator over translated events that books and
records itself at its end.

The pipeline returns a :class:`Stream` once a deployment has sent its first content (failover
is over by then: what follows reaches the client as it arrives). Iterating it yields batches of
OpenAI SSE events, the held-back first ones first; when the upstream ends, the stream prices
its usage, and :meth:`Stream.tail` gives the OpenAI end of the stream (the usage chunk with its
cost if the client asked for one, then ``[DONE]``, or an error event if the upstream failed
part-way). Whoever renders it must call :meth:`Stream.close` on every exit: that gives the
upstream connection back (or drops it), books an estimate if the stream was cut short, tells
the deployment's breaker about a failure after the first token, and records the request.

A face that speaks another dialect (``/v1/messages``) translates the events and reads
:attr:`Stream.failure` and :meth:`Stream.usage_object` instead of the tail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from hedge.config import Price
from hedge.errors import HedgeError, UpstreamError
from hedge.gateway.attempt import Opened
from hedge.gateway.booking import book
from hedge.providers.base import StreamTranslator, Usage
from hedge.record import RequestRecord
from hedge.routing.deployment import Deployment
from hedge.store.bodies import BODY_LIMIT
from hedge.wire.sse import DONE, frame

log = logging.getLogger("hedge")
_WARNED_NO_USAGE: set[str] = set()
"""Deployments already warned about, so the log says it once, not once per request."""


class Stream:
    def __init__(
        self,
        opened: Opened,
        *,
        deployment: Deployment,
        want_usage: bool,
        record: RequestRecord,
        price: Price,
        baseline: Price | None,
        started: float,
        prompt_estimate: int,
        on_failure: Callable[[], None] | None,
        finish: Callable[[RequestRecord], None],
        native: bool = False,
    ) -> None:
        self.deployment = deployment
        self.native = native
        """The events are in the client's own API (a request passed through), not chat chunks."""
        self.record = record
        self.failure: HedgeError | None = None
        """Why the upstream failed after the first token (``None``: it did not)."""
        self._reply = opened.reply
        self._translator = opened.translator
        self._flight = opened.flight
        self._first: list[bytes] | None = opened.first
        self._want_usage = want_usage
        self._price = price
        self._baseline = baseline
        self._started = started
        self._prompt_estimate = prompt_estimate
        self._on_failure = on_failure
        self._finish = finish
        self._events_sent = len(opened.first)
        self._ended = False
        self._booked = False
        self._clean = False
        self._closed = False
        self._kept: bytearray | None = bytearray() if record.request_body is not None else None
        """The stream as sent, when bodies are logged (up to the body log's limit)."""

    @property
    def translator(self) -> StreamTranslator:
        """The upstream stream's translator: what it read of the stream's end (usage, final state)."""
        return self._translator

    @property
    def provider(self) -> str:
        return self.deployment.provider

    @property
    def model(self) -> str:
        return self.deployment.model

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> list[bytes]:
        first = self._first
        if first is not None:
            self._first = None
            return self._keep(first)
        if self._ended:
            raise StopAsyncIteration
        rec = self.record
        if rec.ttft_ms is None:  # the first events have been sent: that is the client's first token
            rec.ttft_ms = (time.perf_counter() - self._started) * 1000
        translator = self._translator
        try:
            while not translator.ended:  # past its last event an upstream that never closes must not keep us
                data = await self._reply.piece()
                if not data:
                    break
                out = translator.feed(data)
                if out:
                    self._events_sent += len(out)
                    return self._keep(out)
            rest = translator.close()
            if not translator.finished:
                raise UpstreamError(
                    f"provider '{self.deployment.provider}' closed the stream before it was complete",
                    status=502,
                    code="upstream_stream_truncated",
                )
            self._clean = True
        except HedgeError as exc:
            # Content already reached the client: the stream ends with an error, never silently.
            rec.status, rec.error = exc.status, exc.message
            self.failure = exc
            if self._on_failure is not None:
                self._on_failure()  # the deployment failed after its first token: its breaker should know
            rest = []
        self._ended = True
        self._book()
        if rest:
            return self._keep(rest)
        raise StopAsyncIteration

    def tail(self) -> list[bytes]:
        """The OpenAI end of the stream, once iterating it has finished: an error event, or the usage
        chunk (when the client asked for one) and ``[DONE]``."""
        if self.failure is not None:
            return self._keep([frame(self.failure.to_dict())])
        if self.native:
            return []  # the upstream's own last event has been forwarded already
        out = [frame(self.usage_chunk())] if self._want_usage else []
        out.append(DONE)
        return self._keep(out)

    def usage_so_far(self) -> dict[str, Any]:
        """The OpenAI usage known now, before the end: the upstream's counts if it has sent any
        (Anthropic and Gemini report the prompt at the start), else the gateway's prompt estimate."""
        chunk = self._translator.usage_chunk
        usage = (chunk or {}).get("usage")
        if isinstance(usage, dict):
            return dict(usage)
        return {"prompt_tokens": self._prompt_estimate, "completion_tokens": 0}

    def usage_object(self) -> dict[str, Any]:
        """The final ``usage`` object: the upstream's counts (or ours), plus what the request cost."""
        chunk = self._translator.usage_chunk
        usage = self._translator.usage or Usage()
        usage_obj = dict((chunk or {}).get("usage") or {}) or {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        }
        usage_obj["hedge_cost_usd"] = round(self.record.cost_usd, 10)
        if self._translator.usage is None:
            usage_obj["hedge_usage_missing"] = True
        return usage_obj

    def usage_chunk(self) -> dict[str, Any]:
        chunk = self._translator.usage_chunk
        if chunk is None:
            chunk = {
                "id": "chatcmpl-" + self.record.request_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.deployment.model,
                "choices": [],
            }
        return {**chunk, "usage": self.usage_object()}

    async def close(self, client_gone: bool = False) -> None:
        """End the stream on any exit; ``client_gone``: the client left before its end (499)."""
        if self._closed:
            return
        self._closed = True
        rec = self.record
        if client_gone:
            rec.status, rec.error = 499, "client disconnected"
        cancelled = False
        reply = self._reply
        if self._clean and self._translator.ended and not reply.at_eof():
            # Past its last event: reuse the connection only if the body also ends promptly.
            try:
                self._clean = await reply.ends_soon()
            except asyncio.CancelledError:
                self._clean, cancelled = False, True
        if self._clean:
            reply.release()
        else:
            reply.close()
        if not self._booked:
            self._book()
        rec.latency_ms = (time.perf_counter() - self._started) * 1000
        ok = rec.status < 400
        self._flight.end(rec.latency_ms if ok else None, rec.ttft_ms, rec.completion_tokens if ok else None)
        if self._kept is not None:
            rec.response_body = bytes(self._kept)
        self._finish(rec)
        if cancelled:
            raise asyncio.CancelledError

    def _keep(self, events: list[bytes]) -> list[bytes]:
        kept = self._kept
        if kept is not None and len(kept) <= BODY_LIMIT:
            for event in events:
                kept += event[: BODY_LIMIT + 1 - len(kept)]
        return events

    def _book(self) -> None:
        self._booked = True
        usage = self._translator.usage
        rec = self.record
        estimated = usage is None
        if usage is None and rec.status >= 400:
            # Cut short (client gone, upstream failed): the provider still bills the prompt and what it
            # produced, so book an estimate rather than nothing (one token per content event).
            usage = Usage(self._prompt_estimate, max(0, self._events_sent - 1))
            rec.error = f"{rec.error or 'stream cut short'} (usage estimated)"
        if usage is None and self.deployment.id not in _WARNED_NO_USAGE:
            _WARNED_NO_USAGE.add(self.deployment.id)
            log.warning(
                "%s sent no usage in its stream: such requests are booked at 0 tokens and 0 USD "
                "('hedge check' flags this as stream-usage)",
                self.deployment.id,
            )
        book(
            rec,
            usage,
            self._price,
            self._baseline,
            unpriced=self.deployment.price_missing,
            estimated=estimated,
        )
