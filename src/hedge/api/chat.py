"""``POST /v1/chat/completions`` and ``/v1/embeddings``: where a model request enters the gateway.

Authenticate, read and validate the body, hand it to the pipeline
(:class:`hedge.gateway.pipeline.Exchange`), and render what comes back: a JSON
body, an SSE stream, or an error, each with its ``x-hedge-*`` headers. The
pipeline routes, retries, books and records; this module only speaks HTTP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from hedge.access.keys import VirtualKey
from hedge.api.cycle import DEPARTURE
from hedge.api.experiments import follow_up
from hedge.api.http import (
    JSON,
    authenticate,
    encoded,
    error_response,
    header,
    read_body,
    runtime_of,
    tags_of,
)
from hedge.api.sse import ClientGone, SSEResponse, unless_client_leaves
from hedge.api.validation import parse_json_object, validate_chat, validate_embeddings
from hedge.cost.pricing import format_usd
from hedge.errors import HedgeError, InvalidRequest
from hedge.gateway.attempt import Native
from hedge.gateway.pipeline import Completion, Exchange
from hedge.gateway.runtime import Runtime
from hedge.gateway.stream import Stream
from hedge.record import RequestRecord, new_request_id, render_route

Result = Completion | Stream | HedgeError | None
"""What the pipeline made of a request; ``None``: the client left before an answer was ready."""


async def chat_completions(request: Request) -> Response:
    return await handle(request, "chat")


async def embeddings(request: Request) -> Response:
    return await handle(request, "embeddings")


async def handle(request: Request, endpoint: str) -> Response:
    exchange, result = await receive(request, endpoint)
    return follow_up(request, exchange, result, render(exchange.record, result))


Inbound = Callable[[dict[str, Any], VirtualKey | None], Awaitable[dict[str, Any]]]
"""Turns another API's body into an OpenAI chat body, knowing the caller's key (``/v1/messages``,
``/v1/responses`` ...); it may look things up (e.g. a stored conversation) and raise a HedgeError."""


async def receive(
    request: Request,
    endpoint: str,
    inbound: Inbound | None = None,
    native: Native | None = None,
    stop_limit: int | None = 4,
) -> tuple[Exchange, Result]:
    """The whole request, up to what to render: auth, body, validation, then the pipeline.

    ``endpoint`` names the request in its record (``chat``, ``embeddings``, ``messages`` ...);
    ``inbound`` translates another API's body into an OpenAI chat body first; ``native`` is that
    body as it is, for deployments that serve its API themselves (see ``Exchange.serve``);
    ``stop_limit``: the most stop sequences the client's API allows (None: each deployment's own).
    """
    runtime = runtime_of(request)
    exchange = Exchange(runtime, endpoint, new_request_id(), request.headers)
    try:
        key = await authenticate(request, runtime)
        raw = await read_body(request, runtime.config.server.max_body_bytes)
        exchange.keep_request_body(raw)
        body = parse_json_object(raw)
        if inbound is not None:
            body = await inbound(body, key)
        if exchange.kind == "chat":
            validate_chat(body, stop_limit=stop_limit)
        else:
            validate_embeddings(body)
        tags = tags_of(request)
        deadline = _deadline(runtime, header(request, b"x-hedge-timeout-ms"))
    except ClientDisconnect:
        exchange.abandoned("client disconnected while sending its request")
        return exchange, None
    except HedgeError as exc:
        exchange.refused(exc)
        return exchange, exc
    except BaseException as exc:
        exchange.broke(exc)
        raise
    try:
        return exchange, await unless_client_leaves(
            request.receive, exchange.serve(body, key, tags, deadline, native), request.scope.get(DEPARTURE)
        )
    except ClientGone:
        return exchange, None
    except HedgeError as exc:
        return exchange, exc


def render(rec: RequestRecord, result: Result) -> Response:
    """The OpenAI-shaped HTTP response for what the pipeline made of a request."""
    if result is None:
        return Response(status_code=499)
    if isinstance(result, HedgeError):
        response = error_response(result, rec.request_id)
        if rec.attempts:
            response.headers.update(hedge_headers(rec))
        return response
    if isinstance(result, Stream):
        return SSEResponse(result, hedge_headers(rec, result))
    return WholeJSON(result.body, headers=hedge_headers(rec, result))


class WholeJSON(Response):
    """A whole JSON answer: Starlette's ``Response`` with its headers made in one step, since
    neither content-length nor content-type is among :func:`hedge_headers`."""

    media_type = JSON

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        raw = encoded(headers or {})
        raw.append((b"content-length", b"%d" % len(self.body)))
        raw.append((b"content-type", b"application/json"))
        self.raw_headers = raw


def hedge_headers(rec: RequestRecord, result: Completion | Stream | None = None) -> dict[str, str]:
    """The ``x-hedge-*`` headers: who answered, how it was routed, what it cost."""
    headers = {
        "x-request-id": rec.request_id,  # what the OpenAI SDKs expose as ``_request_id``
        "x-hedge-request-id": rec.request_id,
        "x-hedge-attempts": str(rec.attempts),
    }
    if rec.experiment is not None:
        headers["x-hedge-experiment"] = f"{rec.experiment}/{rec.arm}"
    if isinstance(result, Completion) and result.cache == "hit":
        headers["x-hedge-provider"] = result.provider
        headers["x-hedge-model"] = result.model
        headers["x-hedge-cost-usd"] = format_usd(result.cost_usd)
        headers["x-hedge-cache"] = "hit"
        return headers
    if rec.route:
        headers["x-hedge-route"] = render_route(rec.route)
    if rec.budget is not None:
        headers["x-hedge-budget"] = rec.budget
    dropped = result.dropped_params if isinstance(result, Completion) else rec.dropped_params
    if dropped:
        headers["x-hedge-dropped-params"] = ", ".join(dropped)
    if rec.emulated_params and result is not None:
        headers["x-hedge-emulated"] = ", ".join(rec.emulated_params)
    if result is not None:
        headers["x-hedge-provider"] = result.provider
        headers["x-hedge-model"] = result.model
    if isinstance(result, Completion):
        if result.escalated is not None:
            headers["x-hedge-escalated"] = result.escalated
        if result.cache is not None:
            headers["x-hedge-cache"] = result.cache
        headers["x-hedge-cost-usd"] = format_usd(result.cost_usd)
    return headers


def _deadline(runtime: Runtime, value: str | None) -> float:
    """Seconds this request may take: ``resilience.request_timeout_s``, lowered (never raised) by a
    valid ``x-hedge-timeout-ms`` header; a malformed header is a 400, not ignored."""
    limit = runtime.config.resilience.request_timeout_s
    if value is None:
        return limit
    try:
        wanted = float(value) / 1000
    except ValueError:
        wanted = -1.0
    if not 0 < wanted < float("inf"):
        raise InvalidRequest(
            f"Invalid x-hedge-timeout-ms header {value[:40]!r}: expected a positive number of milliseconds.",
            param="x-hedge-timeout-ms",
            code="invalid_value",
        )
    return min(limit, wanted)
