"""``POST /v1/messages``: Anthropic-SDK clients use Hedge too, and are routed to any provider.

The body is translated to an OpenAI chat request and goes through exactly the
same pipeline (keys, routing, failover, cost); the answer is translated back,
a stream event by event, errors into Anthropic's error shape.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from hedge.api.chat import handle
from hedge.api.http import JSON
from hedge.api.streaming import ChatStream
from hedge.providers.anthropic_inbound import AnthropicEvents, error_body, to_anthropic, to_openai
from hedge.providers.sse import SSEParser


async def messages(request: Request) -> Response:
    response = await handle(request, "chat", inbound=to_openai)
    if isinstance(response, ChatStream):
        return AnthropicStream(response)
    headers = {k: v for k, v in response.headers.items() if k.startswith(("x-hedge-", "retry-after"))}
    data = orjson.loads(bytes(response.body))
    if response.status_code >= 400:
        message = (data.get("error") or {}).get("message", "error")
        body = error_body(response.status_code, message)
    else:
        body = to_anthropic(data)
    return Response(orjson.dumps(body), status_code=response.status_code, headers=headers, media_type=JSON)


class AnthropicStream(Response):
    """Runs the gateway's OpenAI stream and re-frames each event as Anthropic's."""

    def __init__(self, inner: ChatStream) -> None:
        self.inner = inner
        self.status_code = inner.status_code
        self.background = None
        self.raw_headers = inner.raw_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parser = SSEParser()
        events = AnthropicEvents(model="")
        finished = False

        async def translate(message: Message) -> None:
            nonlocal finished
            if message["type"] != "http.response.body":
                await send(message)
                return
            out: list[bytes] = []
            for event in parser.feed(message.get("body", b"")):
                if event.data == b"[DONE]":
                    if not finished:
                        out += events.finish(None)
                        finished = True
                    continue
                chunk = orjson.loads(event.data)
                if "error" in chunk:
                    out += events.error(502, str((chunk["error"] or {}).get("message", "stream failed")))
                    finished = True
                    continue
                translated = events.chunk(chunk)
                if chunk.get("usage") and not chunk.get("choices"):
                    finished = True
                out += translated
            await send(
                {
                    "type": "http.response.body",
                    "body": b"".join(out),
                    "more_body": message.get("more_body", False),
                }
            )

        await self.inner(scope, receive, translate)
