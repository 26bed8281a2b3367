"""``POST /v1/responses``: OpenAI Responses API clients, served by any provider.

The body is translated to an OpenAI chat request (:mod:`hedge.providers.responses_inbound`) and
goes through exactly the same pipeline as ``/v1/chat/completions`` (keys, routing, failover,
cost; recorded as endpoint ``responses``); what comes back is translated into a Response object,
or, streamed, into the Responses event sequence (``event: response.output_text.delta`` ...).
Errors keep OpenAI's shape. The translation is a module of its own, so a provider that speaks
the Responses API natively could be passed the body as it is instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from hedge.access.keys import VirtualKey
from hedge.api.chat import hedge_headers, receive
from hedge.api.http import JSON, error_response
from hedge.api.sse import SSEResponse
from hedge.errors import HedgeError
from hedge.gateway.stream import Stream
from hedge.providers.responses_inbound import ResponsesEvents, to_chat, to_response
from hedge.wire.sse import event_data


@dataclass(slots=True)
class _Turn:
    """One Responses request as the face sees it: the client's body and what translation made of it."""

    created_at: int
    body: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    """This request's input items, in stored form."""
    previous: list[dict[str, Any]] = field(default_factory=list)
    """The conversation before it (``previous_response_id``)."""


def response_id(request_id: str) -> str:
    """A response's id follows from its request's, so the ledger record and the response match."""
    return "resp_" + request_id.removeprefix("req_")


async def create_response(request: Request) -> Response:
    turn = _Turn(created_at=int(time.time()))

    async def inbound(body: dict[str, Any], key: VirtualKey | None) -> dict[str, Any]:
        chat, turn.items = to_chat(body, turn.previous)
        turn.body = body
        return chat

    exchange, result = await receive(request, "responses", inbound=inbound)
    rec = exchange.record
    rid = response_id(rec.request_id)
    if result is None:
        return Response(status_code=499)
    if isinstance(result, HedgeError):
        response = error_response(result, rec.request_id)
        if rec.attempts:
            response.headers.update(hedge_headers(rec))
        return response
    if isinstance(result, Stream):
        events = ResponsesEvents(turn.body, response_id=rid, created_at=turn.created_at)
        return SSEResponse(result, hedge_headers(rec, result), ResponsesDialect(events))
    out = to_response(
        orjson.loads(result.body),
        turn.body,
        response_id=rid,
        created_at=turn.created_at,
        completed_at=int(time.time()),
    )
    out["usage"]["hedge_cost_usd"] = round(result.cost_usd, 10)  # as a streamed response's usage has it
    return Response(orjson.dumps(out), headers=hedge_headers(rec, result), media_type=JSON)


class ResponsesDialect:
    """The pipeline's OpenAI chat chunks, re-framed as Responses API events as they pass."""

    def __init__(self, events: ResponsesEvents) -> None:
        self._events = events

    def events(self, events: list[bytes]) -> bytes:
        out: list[bytes] = []
        for event in events:
            data = event_data(event)
            if data and data != b"[DONE]":
                out += self._events.chunk(orjson.loads(data))
        return b"".join(out)

    async def end(self, stream: Stream) -> bytes:
        if stream.failure is not None:
            return b"".join(self._events.fail(stream.failure.message))
        return b"".join(self._events.finish(stream.usage_object(), int(time.time())))
