"""``POST /v1/chat/completions`` and ``/v1/embeddings``: where a model request enters the gateway.

Validate, ask the router for a plan, then try the plan's deployments in order
until one answers. Translation belongs to the deployment's adapter, pricing to
``hedge.cost``; this module only wires them together and shapes the response.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
from starlette.requests import Request
from starlette.responses import Response

from hedge.api.http import (
    JSON,
    authenticate,
    error_response,
    new_request_id,
    read_body,
    runtime_of,
)
from hedge.api.streaming import ChatStream, first_events
from hedge.api.validation import parse_json_object, validate_chat, validate_embeddings
from hedge.cost.pricing import cost_usd, format_usd
from hedge.errors import HedgeError
from hedge.observe.records import RequestRecord
from hedge.routing.deployment import Deployment
from hedge.runtime import Runtime
from hedge.transport import network_error


async def chat_completions(request: Request) -> Response:
    return await _handle(request, "chat")


async def embeddings(request: Request) -> Response:
    return await _handle(request, "embeddings")


async def _handle(request: Request, endpoint: str) -> Response:
    runtime = runtime_of(request)
    started = time.perf_counter()
    record = RequestRecord(new_request_id(), endpoint, alias="")
    try:
        authenticate(request, runtime)
        body = parse_json_object(await read_body(request, runtime.config.server.max_body_bytes))
        if endpoint == "chat":
            validate_chat(body)
        else:
            validate_embeddings(body)
        return await _route(runtime, body, record, started)
    except HedgeError as exc:
        record.status = exc.status
        record.error = exc.message
        record.latency_ms = (time.perf_counter() - started) * 1000
        runtime.record(record)
        response = error_response(exc, record.request_id)
        if record.attempts:
            response.headers.update(_headers(record))
        return response


async def _route(runtime: Runtime, body: dict[str, Any], record: RequestRecord, started: float) -> Response:
    alias, plan = runtime.router.plan(body["model"])
    record.alias = alias.name
    stream = record.endpoint == "chat" and bool(body.get("stream"))
    record.stream = stream
    options = body.get("stream_options") or {}
    want_usage = stream and bool(options.get("include_usage"))
    baseline = alias.baseline_price

    async def attempt(dep: Deployment) -> Response:
        record.attempts += 1
        record.provider, record.model = dep.provider, dep.model
        if stream:
            return await _stream(runtime, dep, body, want_usage, record, baseline, started)
        return await _complete(runtime, dep, body, record, baseline, started)

    return await runtime.failover.run(plan, attempt, record.route, alias.max_attempts)


def _headers(record: RequestRecord, dep: Deployment | None = None) -> dict[str, str]:
    headers = {"x-hedge-request-id": record.request_id, "x-hedge-attempts": str(record.attempts)}
    route = record.route if dep is None else [*record.route, f"{dep.id}=ok"]
    if route:
        headers["x-hedge-route"] = ", ".join(route)
    if dep is not None:
        headers["x-hedge-provider"] = dep.provider
        headers["x-hedge-model"] = dep.model
    return headers


async def _open(runtime: Runtime, dep: Deployment, upstream: Any) -> aiohttp.ClientResponse:
    resp = await runtime.transport.open(dep.provider, upstream, dep.timeouts)
    if resp.status >= 400:
        try:
            raw = await resp.read()
        except BaseException as exc:
            resp.close()
            raise network_error(dep.provider, exc) from None
        resp.release()
        raise dep.adapter.error(resp.status, {k.lower(): v for k, v in resp.headers.items()}, raw)
    return resp


async def _complete(
    runtime: Runtime,
    dep: Deployment,
    body: dict[str, Any],
    record: RequestRecord,
    baseline: Any,
    started: float,
) -> Response:
    adapter = dep.adapter
    if record.endpoint == "chat":
        upstream = adapter.chat_request(body, dep.model, False, False)
    else:
        upstream = adapter.embeddings_request(body, dep.model)
    resp = await _open(runtime, dep, upstream)
    try:
        raw = await resp.read()
    except BaseException as exc:
        resp.close()
        raise network_error(dep.provider, exc) from None
    resp.release()
    chat = record.endpoint == "chat"
    translated = adapter.chat_response(raw) if chat else adapter.embeddings_response(raw)
    usage = translated.usage
    record.cost_usd = cost_usd(usage, dep.price)
    if baseline is not None:
        record.baseline_cost_usd = cost_usd(usage, baseline)
    if usage is not None:
        record.prompt_tokens = usage.prompt_tokens
        record.completion_tokens = usage.completion_tokens
        record.cached_tokens = usage.cached_tokens
    record.latency_ms = (time.perf_counter() - started) * 1000
    runtime.record(record)
    headers = _headers(record, dep)
    headers["x-hedge-cost-usd"] = format_usd(record.cost_usd)
    return Response(translated.body, headers=headers, media_type=JSON)


async def _stream(
    runtime: Runtime,
    dep: Deployment,
    body: dict[str, Any],
    want_usage: bool,
    record: RequestRecord,
    baseline: Any,
    started: float,
) -> Response:
    upstream = dep.adapter.chat_request(body, dep.model, True, want_usage)
    resp = await _open(runtime, dep, upstream)
    translator = dep.adapter.stream_translator(dep.model, want_usage)
    try:
        first = await first_events(resp, translator, dep)
    except BaseException:
        resp.close()
        raise
    return ChatStream(
        upstream=resp,
        translator=translator,
        first=first,
        deployment=dep,
        want_usage=want_usage,
        headers=_headers(record, dep),
        record=record,
        baseline=baseline,
        on_done=runtime.record,
        started=started,
    )
