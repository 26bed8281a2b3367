"""``POST /v1/messages/count_tokens``: Anthropic's token counting API, for any alias.

The body is a Messages body without the generation settings (Anthropic refuses ``max_tokens``,
``stream``, ``temperature`` ... there). It is validated and translated as ``/v1/messages``
translates it, and routed as that request would be: the caller's key (a key restricted to other
models gets the same 403), the alias's rules, its plan. Then:

* the plan's Anthropic-style deployments are asked, in plan order, to count the request
  ``/v1/messages`` would send them (``{base_url}/v1/messages/count_tokens`` with the deployment's
  model and the provider's headers). One whose breaker is open or that is cooling down is
  passed over, and so is one that fails in a way another might not (5xx, 429, a timeout, the
  network, an upstream without the endpoint); a failure caused by the request itself (400)
  is the client's answer, as on ``/v1/messages``. The first count is the answer: ``native``;
* with no such deployment in the plan, when every one failed, or past the request's deadline
  (``resilience.request_timeout_s``), the gateway's own estimate answers:
  :func:`hedge.providers.token_estimate.estimate_input_tokens` (its module says what it rests on
  and how far off it may be): ``estimated``.

The body is exactly Anthropic's (``{"input_tokens": N}``); which kind of count it is travels in
the ``x-hedge-token-count`` header (``native`` or ``estimated``), with ``x-hedge-provider`` and
``x-hedge-model`` for a native count and ``x-hedge-route`` for what was tried.

Counting is free upstream, so it books nothing: no budget reservation or spend, no rate-limit
slot on the key or the deployment, no breaker verdict. Each request gets one record (endpoint
``count_tokens``, no tokens, no cost), so it shows in the ledger, the metrics and the access log.
Every error is in Anthropic's shape.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from hedge.access.gate import refuse_model
from hedge.access.keys import VirtualKey
from hedge.api.chat import hedge_headers
from hedge.api.http import JSON, authenticate, read_body, runtime_of, tags_of
from hedge.api.messages import anthropic_error
from hedge.api.validation import parse_json_object, validate_chat
from hedge.errors import HedgeError, UpstreamError
from hedge.gateway.runtime import Runtime
from hedge.providers.anthropic import AnthropicAdapter
from hedge.providers.anthropic_inbound import to_openai
from hedge.providers.token_estimate import estimate_input_tokens
from hedge.record import Outcome, RequestRecord, RouteStep, new_request_id
from hedge.resilience.breaker import State
from hedge.routing.deployment import Deployment

ENDPOINT = "count_tokens"
NATIVE = "native"
ESTIMATED = "estimated"
COUNT_HEADER = "x-hedge-token-count"


async def count_tokens(request: Request) -> Response:
    runtime = runtime_of(request)
    rec = RequestRecord(new_request_id(), ENDPOINT, alias="")
    started = time.perf_counter()
    key: VirtualKey | None = None
    try:
        key = await authenticate(request, runtime)
        if key is not None:
            rec.key_id, rec.team = key.id, key.team
        raw = await read_body(request, runtime.config.server.max_body_bytes)
        body = parse_json_object(raw)
        chat = to_openai(body, counting=True)
        validate_chat(chat)
        tags = tags_of(request)
        count, kind = await _count(runtime, rec, body, chat, key, tags)
    except ClientDisconnect:
        _finish(runtime, rec, key, started, 499, "client disconnected while sending its request")
        return Response(status_code=499)
    except HedgeError as exc:
        _finish(runtime, rec, key, started, exc.status, exc.message)
        response = anthropic_error(exc, rec.request_id)
        if rec.attempts:
            response.headers.update(hedge_headers(rec))
        return response
    except BaseException as exc:
        cancelled = isinstance(exc, asyncio.CancelledError)
        _finish(runtime, rec, key, started, 499 if cancelled else 500, type(exc).__name__)
        raise
    _finish(runtime, rec, key, started, 200, None)
    headers = {**hedge_headers(rec), "request-id": rec.request_id, COUNT_HEADER: kind}
    if kind == NATIVE and rec.provider is not None and rec.model is not None:
        headers["x-hedge-provider"], headers["x-hedge-model"] = rec.provider, rec.model
    return Response(orjson.dumps({"input_tokens": count}), headers=headers, media_type=JSON)


async def _count(
    runtime: Runtime,
    rec: RequestRecord,
    body: dict[str, Any],
    chat: dict[str, Any],
    key: VirtualKey | None,
    tags: tuple[str, ...],
) -> tuple[int, str]:
    """The count and its kind (``native`` or ``estimated``), noting what was tried on ``rec``."""
    ctx = runtime.router.context(chat, tags)
    allowed: list[str] | None = None
    if key is not None:
        refuse_model(key, chat["model"])
        allowed = key.models or None
    alias, plan = runtime.router.plan(chat["model"], ctx, allowed)
    rec.alias, rec.tags = alias.name, ctx.tags
    try:
        async with asyncio.timeout(runtime.config.resilience.request_timeout_s):
            for dep in plan:
                count = await _ask(runtime, rec, dep, chat)
                if count is not None:
                    return count, NATIVE
    except TimeoutError:
        pass  # the deadline passed while an upstream was counting: the estimate answers in time
    rec.provider = rec.model = None
    return estimate_input_tokens(body), ESTIMATED


async def _ask(runtime: Runtime, rec: RequestRecord, dep: Deployment, chat: dict[str, Any]) -> int | None:
    """``dep``'s count of the request, or None if it is not Anthropic-style, is held back, or failed
    in a way another deployment (or the estimate) may do better; a client error is raised."""
    adapter = dep.adapter
    if not isinstance(adapter, AnthropicAdapter):
        return None
    breaker = runtime.failover.breaker(dep)  # read, never moved: a count is no verdict on the deployment
    if breaker.cooling_down():
        rec.route.append(RouteStep(dep.id, Outcome.COOLING_DOWN))
        return None
    if breaker.observed_state() is State.OPEN:
        rec.route.append(RouteStep(dep.id, Outcome.CIRCUIT_OPEN))
        return None
    upstream = adapter.count_tokens_request(chat, dep.model)
    rec.attempts += 1
    rec.provider, rec.model = dep.provider, dep.model
    try:
        reply = await runtime.transport.send(dep.provider, upstream, dep.timeouts, adapter.error)
        count = adapter.count_tokens_response(await reply.read())
    except UpstreamError as exc:
        why = str(exc.code or exc.upstream_status or exc.status)
        rec.route.append(RouteStep(dep.id, Outcome.FAILED, why))
        if not exc.retryable:
            raise
        return None
    except BaseException:
        rec.route.append(RouteStep(dep.id, Outcome.CANCELLED))
        raise
    rec.route.append(RouteStep(dep.id, Outcome.OK))
    return count


def _finish(
    runtime: Runtime,
    rec: RequestRecord,
    key: VirtualKey | None,
    started: float,
    status: int,
    error: str | None,
) -> None:
    """The request's one record, to every sink (no tokens or cost: nothing is booked on the key)."""
    rec.status, rec.error = status, error
    rec.latency_ms = (time.perf_counter() - started) * 1000
    runtime.record(rec, key)
