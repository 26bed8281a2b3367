"""``POST /v1/messages``: Anthropic-SDK clients use Hedge too, and are routed to any provider.

The body is translated to an OpenAI chat request and goes through exactly the same pipeline
as ``/v1/chat/completions`` (keys, routing, failover, cost); what the pipeline returns is
translated back: a completion into a message, a stream event by event into Anthropic's events,
an error into Anthropic's error shape. The translation sits on both sides of the pipeline, so
nothing here reads the gateway's own HTTP output.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from hedge.access.keys import VirtualKey
from hedge.api.chat import hedge_headers, receive
from hedge.api.experiments import follow_up
from hedge.api.http import JSON
from hedge.api.sse import SSEResponse
from hedge.errors import HedgeError
from hedge.gateway.stream import Stream
from hedge.providers.anthropic_inbound import AnthropicEvents, error_body, to_anthropic, to_openai
from hedge.wire.sse import chunks


async def _inbound(body: dict[str, Any], _key: VirtualKey | None) -> dict[str, Any]:
    return to_openai(body)


async def messages(request: Request) -> Response:
    # Anthropic allows more stop sequences than OpenAI's 4: each deployment's own limit applies.
    exchange, result = await receive(request, "chat", inbound=_inbound, stop_limit=None)
    rec = exchange.record
    if result is None:
        return Response(status_code=499)
    if isinstance(result, Stream):
        headers = {**hedge_headers(rec, result), "request-id": rec.request_id}
        return follow_up(request, exchange, result, SSEResponse(result, headers, AnthropicDialect(result)))
    if isinstance(result, HedgeError):
        headers = {**result.headers, "x-hedge-request-id": rec.request_id, "x-request-id": rec.request_id}
        if rec.attempts:
            headers.update(hedge_headers(rec))
        status, body = result.status, error_body(result.status, result.message)
    else:
        headers = hedge_headers(rec, result)
        status, body = 200, to_anthropic(orjson.loads(result.body))
    kept = {k: v for k, v in headers.items() if k.startswith(("x-hedge-", "x-request-id", "retry-after"))}
    kept["request-id"] = rec.request_id  # what the Anthropic SDK exposes as ``_request_id``
    response = Response(orjson.dumps(body), status_code=status, headers=kept, media_type=JSON)
    return follow_up(request, exchange, result, response)


def anthropic_error(exc: HedgeError, request_id: str | None = None) -> Response:
    """``exc`` in Anthropic's error shape (``{"type": "error", "error": {"type", "message"}}``), with its
    status and headers (``retry-after``), and the request id where the Anthropic SDK reads it."""
    headers = dict(exc.headers)
    if request_id:
        headers["request-id"] = headers["x-request-id"] = headers["x-hedge-request-id"] = request_id
    body = orjson.dumps(error_body(exc.status, exc.message))
    return Response(body, status_code=exc.status, headers=headers, media_type=JSON)


class AnthropicDialect:
    """The pipeline's OpenAI stream events, re-framed as Anthropic's as they pass."""

    def __init__(self, stream: Stream | None = None) -> None:
        self._events = AnthropicEvents(model="")
        self._stream = stream

    def events(self, events: list[bytes]) -> bytes:
        if not self._events.started and self._stream is not None:
            self._events.start_usage = self._stream.usage_so_far()
        out: list[bytes] = []
        for chunk in chunks(events):
            out += self._events.chunk(chunk)
        return b"".join(out)

    async def end(self, stream: Stream) -> bytes:
        if stream.failure is not None:
            return b"".join(self._events.error(502, stream.failure.message))
        return b"".join(self._events.finish(stream.usage_object()))
