"""``POST /v1/completions``: OpenAI's legacy text completions, served by chat models on any provider.

The body is translated into an OpenAI chat request
(:func:`hedge.providers.completions_inbound.to_chat`) and goes through exactly the same pipeline as
``/v1/chat/completions`` (keys, routing, failover, cost, the ledger, under the endpoint name
``completions``); what comes back is translated into ``text_completion`` objects, whole or chunk by
chunk. Errors keep OpenAI's shape, which both APIs share.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from hedge.access.keys import VirtualKey
from hedge.api.chat import hedge_headers, receive, render
from hedge.api.http import JSON
from hedge.api.sse import SSEResponse
from hedge.gateway.pipeline import Completion
from hedge.gateway.stream import Stream
from hedge.providers.completions_inbound import CompletionEvents, Legacy, to_chat, to_text_completion
from hedge.wire.sse import chunks, frame


async def completions(request: Request) -> Response:
    asked: list[Legacy] = []

    async def inbound(body: dict[str, Any], _key: VirtualKey | None) -> dict[str, Any]:
        chat, legacy = to_chat(body)
        asked.append(legacy)
        return chat

    exchange, result = await receive(request, "completions", inbound=inbound)
    rec = exchange.record
    if isinstance(result, Stream):
        return SSEResponse(result, hedge_headers(rec, result), CompletionsDialect(asked[0]))
    if isinstance(result, Completion):
        body = to_text_completion(orjson.loads(result.body), asked[0])
        return Response(orjson.dumps(body), headers=hedge_headers(rec, result), media_type=JSON)
    return render(rec, result)  # an error in OpenAI's shape, or the client left (499)


class CompletionsDialect:
    """The pipeline's chat stream events, re-framed as legacy completion chunks as they pass."""

    def __init__(self, legacy: Legacy) -> None:
        self._events = CompletionEvents(legacy)

    def events(self, events: list[bytes]) -> bytes:
        out: list[bytes] = []
        for chunk in chunks(events):
            out += self._events.chunk(chunk)
        return b"".join(out)

    async def end(self, stream: Stream) -> bytes:
        if stream.failure is not None:
            return frame(stream.failure.to_dict())  # as the chat stream ends: the SDK raises APIError
        return b"".join(self._events.finish(stream.usage_object()))
