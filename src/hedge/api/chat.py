"""``POST /v1/chat/completions`` and ``/v1/embeddings``: where a model request enters the gateway.

Validate, ask the router for a plan, then try the plan's deployments in order
until one answers. Translation belongs to the deployment's adapter, pricing to
``hedge.cost``; this module only wires them together and shapes the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from hedge.api.http import (
    JSON,
    authenticate,
    error_response,
    new_request_id,
    read_body,
    runtime_of,
    warn_store_unavailable,
)
from hedge.api.streaming import ChatStream, first_events
from hedge.api.validation import parse_json_object, validate_chat, validate_embeddings
from hedge.config import Price
from hedge.cost.pricing import cost_usd, format_usd
from hedge.errors import HedgeError, InvalidRequest, NoDeploymentAvailable, UpstreamError
from hedge.observe.records import RequestRecord
from hedge.observe.tracing import RequestTrace
from hedge.providers.base import Usage
from hedge.providers.capabilities import drop, unsupported
from hedge.routing.context import RouteContext
from hedge.routing.deployment import Deployment
from hedge.routing.escalation import escalation_reason
from hedge.runtime import Runtime
from hedge.store.cache import cache_key

log = logging.getLogger("hedge")


async def chat_completions(request: Request) -> Response:
    return await handle(request, "chat")


async def embeddings(request: Request) -> Response:
    return await handle(request, "embeddings")


async def handle(
    request: Request, endpoint: str, inbound: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> Response:
    """The whole request: auth, body, validation, key limits, routing. ``inbound`` translates
    another API's body (e.g. Anthropic Messages) into an OpenAI one first."""
    runtime = runtime_of(request)
    started = time.perf_counter()
    record = RequestRecord(new_request_id(), endpoint, alias="")
    tracer = runtime.tracer
    trace = tracer.start_request(record, request.headers) if tracer.enabled else None
    try:
        key = await authenticate(request, runtime)
        raw = await read_body(request, runtime.config.server.max_body_bytes)
        if runtime.config.server.log_bodies:
            record.request_body = raw
        body = parse_json_object(raw)
        if inbound is not None:
            body = inbound(body)
        if endpoint == "chat":
            validate_chat(body)
        else:
            validate_embeddings(body)
        tags = tuple(t.strip() for t in request.headers.get("x-hedge-tags", "").split(",") if t.strip())
        ctx = runtime.router.context(body, tags)
        if key is not None:
            record.key, record.key_id, record.team = key, key.id, key.team
            alias_name = body["model"]
            try:
                await runtime.gate.admit(
                    key,
                    alias_name,
                    record.request_id,
                    lambda reserve: runtime.router.max_cost(alias_name, ctx, reserve),
                )
            except HedgeError:
                raise
            except Exception as exc:
                warn_store_unavailable("key limits", exc)
                raise HedgeError(
                    "This key's budget and rate limits cannot be checked now (state store unavailable).",
                    status=503,
                    type="service_unavailable",
                    code="limits_unavailable",
                ) from None
        deadline = _deadline(runtime, request.headers.get("x-hedge-timeout-ms"))
        return await _unless_client_leaves(
            request, _within(deadline, _route(runtime, body, record, started, ctx, trace))
        )
    except _ClientGone:
        record.status = 499
        record.error = "client disconnected"
        record.latency_ms = (time.perf_counter() - started) * 1000
        runtime.record(record)
        return Response(status_code=499)
    except ClientDisconnect:
        record.status = 499
        record.error = "client disconnected while sending its request"
        record.latency_ms = (time.perf_counter() - started) * 1000
        runtime.record(record)
        return Response(status_code=499)
    except HedgeError as exc:
        record.status = exc.status
        record.error = exc.message
        record.latency_ms = (time.perf_counter() - started) * 1000
        if runtime.config.server.log_bodies:
            record.response_body = exc.to_bytes()
        runtime.record(record)
        response = error_response(exc, record.request_id)
        if record.attempts:
            response.headers.update(_headers(record))
        return response
    except BaseException as exc:
        # Cancelled (the client went away) or unexpected: still one record, so nothing stays "in flight".
        record.status = 499 if isinstance(exc, asyncio.CancelledError) else 500
        record.error = record.error or type(exc).__name__
        record.latency_ms = (time.perf_counter() - started) * 1000
        runtime.record(record)
        raise


class _ClientGone(Exception):
    """The client disconnected before an answer was ready; its upstream request was cancelled."""


async def _unless_client_leaves(request: Request, work: Awaitable[Response]) -> Response:
    """Run ``work`` while watching the client; if it disconnects, cancel ``work`` (and so the upstream call).

    Only called once the body has been read, so the watcher's ``receive`` sees nothing but the
    disconnect. A stream that has started watches for itself (``ChatStream``).
    """
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        watch.cancel()
        raise
    if task.done():
        watch.cancel()
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise _ClientGone


async def _disconnected(receive: Callable[[], Awaitable[Any]]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _deadline(runtime: Runtime, header: str | None) -> float:
    """Seconds this request may take: ``resilience.request_timeout_s``, lowered (never raised) by a
    valid ``x-hedge-timeout-ms`` header; a malformed header is a 400, not ignored."""
    limit = runtime.config.resilience.request_timeout_s
    if header is None:
        return limit
    try:
        wanted = float(header) / 1000
    except ValueError:
        wanted = -1.0
    if not 0 < wanted < float("inf"):
        raise InvalidRequest(
            f"Invalid x-hedge-timeout-ms header {header[:40]!r}: expected a positive number of milliseconds.",
            param="x-hedge-timeout-ms",
            code="invalid_value",
        )
    return min(limit, wanted)


async def _within(seconds: float, work: Awaitable[Response]) -> Response:
    """The request's one deadline, across attempts and backoff; a stream's ends at its first token."""
    try:
        async with asyncio.timeout(seconds):
            return await work
    except TimeoutError:
        raise HedgeError(
            f"The request did not complete within its deadline of {seconds:g} s "
            "(resilience.request_timeout_s, or the x-hedge-timeout-ms header).",
            status=504,
            type="timeout_error",
            code="request_timeout",
        ) from None


async def _route(
    runtime: Runtime,
    body: dict[str, Any],
    record: RequestRecord,
    started: float,
    ctx: RouteContext,
    trace: RequestTrace | None = None,
) -> Response:
    router = runtime.router
    allowed = record.key.models if record.key is not None and record.key.models else None
    alias, plan = router.plan(body["model"], ctx, allowed)
    plan, held = runtime.conformance.split(plan)
    record.route.extend(f"{dep.id}=not_conformant" for dep, _ in held)
    if not plan:
        reasons = "; ".join(f"{dep.id}: {why}" for dep, why in held)
        raise NoDeploymentAvailable(
            f"No deployment of '{alias.name}' has passed its required conformance cases ({reasons}). "
            "Run 'hedge check' against it."
        )
    record.alias = alias.name
    record.tags = ctx.tags
    if trace is not None:
        trace.routed(body)
    runtime.started(record)
    stream = record.endpoint == "chat" and bool(body.get("stream"))
    record.stream = stream
    want_usage = stream and bool((body.get("stream_options") or {}).get("include_usage"))
    options = body.get("hedge") or {}

    def attempt_for(baseline: Price | None) -> Callable[[Deployment], Awaitable[Response]]:
        async def attempt(dep: Deployment) -> Response:
            send = _fit_to_provider(dep, body, record, options.get("on_unsupported"))
            await router.reserve(dep, runtime.counters)
            record.attempts += 1
            record.provider, record.model = dep.provider, dep.model
            price = dep.price_at(ctx.now)
            if stream:
                sending = _stream(
                    runtime, dep, send, want_usage, record, price, baseline, started, ctx.prompt_tokens
                )
            else:
                sending = _complete(runtime, dep, send, record, price, baseline)
            return await (sending if trace is None else trace.attempt(dep, sending))

        return attempt

    cache_ttl = _cache_ttl(alias.config.cache_ttl_s, options, stream)
    cache_id = (
        cache_key(alias.name, record.endpoint, body, _cache_scope(alias.config.cache_scope, record))
        if cache_ttl
        else None
    )
    if cache_id is not None:
        hit = await _cache_get(runtime, cache_id)
        if hit is not None:
            return _cached(runtime, hit, record, alias.baseline_price, started)
    response = await runtime.failover.run(
        plan, attempt_for(alias.baseline_price), record.route, alias.max_attempts
    )
    escalate = alias.config.escalate
    if escalate is not None and allowed is not None and escalate.to not in allowed:
        escalate = None  # a restricted key is never served by an alias outside its restriction
    if escalate is not None and not stream and record.endpoint == "chat":
        reason = escalation_reason(response.body, body, escalate.when)
        if reason is not None:
            first = (
                record.cost_usd,
                record.prompt_tokens,
                record.completion_tokens,
                record.provider,
                record.model,
            )
            record.route.append(f"escalate:{reason}->{escalate.to}")
            target, plan = router.plan(escalate.to, ctx, allowed)
            plan, held = runtime.conformance.split(plan)
            record.route.extend(f"{dep.id}=not_conformant" for dep, _ in held)
            try:
                response = await runtime.failover.run(
                    plan, attempt_for(alias.baseline_price), record.route, target.max_attempts
                )
            except HedgeError:
                # The stronger model is unavailable: the first answer, paid for, is better than an error.
                record.cost_usd, record.prompt_tokens, record.completion_tokens = first[:3]
                record.provider, record.model = first[3], first[4]
                response.headers["x-hedge-escalated"] = (
                    f"{reason} -> {escalate.to} (failed; first answer kept)"
                )
            else:
                # Both attempts were paid for: book both.
                record.cost_usd += first[0]
                record.prompt_tokens += first[1]
                record.completion_tokens += first[2]
                response.headers["x-hedge-escalated"] = f"{reason} -> {escalate.to}"
    if cache_id is not None and cache_ttl:
        entry = {
            "body": bytes(response.body).decode(),
            "provider": record.provider,
            "model": record.model,
            "usage": [record.prompt_tokens, record.completion_tokens, record.cached_tokens],
        }
        await _cache_put(runtime, cache_id, entry, cache_ttl)
        response.headers["x-hedge-cache"] = "miss"
    if not stream:
        record.latency_ms = (time.perf_counter() - started) * 1000
        response.headers["x-hedge-cost-usd"] = format_usd(record.cost_usd)
        response.headers["x-hedge-route"] = ", ".join(record.route)
        response.headers["x-hedge-attempts"] = str(record.attempts)
        if runtime.config.server.log_bodies:
            record.response_body = bytes(response.body)
        runtime.record(record)
    return response


DEFAULT_CACHE_TTL_S = 300.0


def _cache_scope(scope: str, record: RequestRecord) -> str:
    """Who may share this request's cached answer: one key (the master key is one too), one team, or all."""
    if scope == "global":
        return "global"
    if scope == "team" and record.team:
        return f"team:{record.team}"
    return f"key:{record.key_id or 'master'}"


async def _cache_get(runtime: Runtime, key: str) -> dict[str, Any] | None:
    """A cache that cannot be read is a miss, never a failed request."""
    try:
        return await runtime.cache.get(key)
    except Exception:
        log.warning("response cache read failed; serving without it", exc_info=True)
        return None


async def _cache_put(runtime: Runtime, key: str, entry: dict[str, Any], ttl: float) -> None:
    try:
        await runtime.cache.put(key, entry, ttl)
    except Exception:
        log.warning("response cache write failed; the answer is served uncached", exc_info=True)


def _cache_ttl(alias_ttl: float | None, options: dict[str, Any], stream: bool) -> float | None:
    """The alias's cache TTL, or the request's own choice (``hedge.cache``: true, false or seconds)."""
    if stream:
        return None
    choice = options.get("cache")
    if choice is False:
        return None
    if choice is True:
        return alias_ttl or DEFAULT_CACHE_TTL_S
    if isinstance(choice, int | float) and not isinstance(choice, bool) and choice > 0:
        return float(choice)
    return alias_ttl


def _cached(
    runtime: Runtime, hit: dict[str, Any], record: RequestRecord, baseline: Price | None, started: float
) -> Response:
    """Serve a cache hit: booked at zero cost; the baseline still shows what it would have cost."""
    prompt, completion, cached = hit["usage"]
    record.cache_hit = True
    record.provider, record.model = hit["provider"], hit["model"]
    record.prompt_tokens, record.completion_tokens, record.cached_tokens = 0, 0, 0
    if baseline is not None:
        record.baseline_cost_usd = cost_usd(Usage(prompt, completion, cached), baseline)
    record.latency_ms = (time.perf_counter() - started) * 1000
    record.route.append("cache=hit")
    if runtime.config.server.log_bodies:
        record.response_body = hit["body"].encode()
    runtime.record(record)
    headers = {
        "x-hedge-request-id": record.request_id,
        "x-hedge-provider": str(hit["provider"]),
        "x-hedge-model": str(hit["model"]),
        "x-hedge-attempts": "0",
        "x-hedge-cost-usd": format_usd(0.0),
        "x-hedge-cache": "hit",
    }
    return Response(hit["body"].encode(), headers=headers, media_type=JSON)


def _fit_to_provider(
    dep: Deployment, body: dict[str, Any], record: RequestRecord, policy: str | None
) -> dict[str, Any]:
    """Apply the unsupported-parameter policy: the body to send, or a 400 naming what cannot be honoured.

    The refusal is retryable without blame, so failover first looks for another
    deployment of the alias that can honour the request.
    """
    caps = dep.adapter.capabilities
    if record.endpoint == "chat":
        bad = unsupported(body, caps)
    else:
        bad = [] if caps.embeddings else ["embeddings"]
    record.dropped_params = []
    if not bad:
        return body
    if record.endpoint == "chat" and (policy or dep.on_unsupported) == "drop":
        record.dropped_params = bad
        return drop(body, bad, caps)
    names = ", ".join(f"'{p}'" for p in bad)
    what = "does not support embeddings" if bad == ["embeddings"] else f"cannot honour {names}"
    raise UpstreamError(
        f"Provider '{dep.provider}' (model {dep.model}) {what}. Remove it, route to a provider that "
        'supports it, or send "hedge": {"on_unsupported": "drop"} to drop it.',
        status=400,
        type="invalid_request_error",
        code="unsupported_parameter",
        param=bad[0],
        retryable=True,
        blame=False,
    )


def _headers(record: RequestRecord, dep: Deployment | None = None) -> dict[str, str]:
    headers = {"x-hedge-request-id": record.request_id, "x-hedge-attempts": str(record.attempts)}
    route = record.route if dep is None else [*record.route, f"{dep.id}=ok"]
    if route:
        headers["x-hedge-route"] = ", ".join(route)
    if record.dropped_params:
        headers["x-hedge-dropped-params"] = ", ".join(record.dropped_params)
    if dep is not None:
        headers["x-hedge-provider"] = dep.provider
        headers["x-hedge-model"] = dep.model
    return headers


async def _complete(
    runtime: Runtime,
    dep: Deployment,
    body: dict[str, Any],
    record: RequestRecord,
    price: Price,
    baseline: Price | None,
) -> Response:
    adapter = dep.adapter
    chat = record.endpoint == "chat"
    if chat:
        upstream = adapter.chat_request(body, dep.model, False, False)
    else:
        upstream = adapter.embeddings_request(body, dep.model)
    began = time.perf_counter()
    dep.stats.start()
    latency: float | None = None
    try:
        resp = await runtime.transport.open_checked(dep.provider, upstream, dep.timeouts, dep.adapter.error)
        raw = await runtime.transport.read(resp, dep.provider)
        translated = (
            adapter.chat_response(raw, upstream) if chat else adapter.embeddings_response(raw, upstream)
        )
        latency = (time.perf_counter() - began) * 1000
    finally:
        usage_out = None
        if latency is not None and translated.usage is not None:
            usage_out = translated.usage.completion_tokens
        dep.stats.end(latency, None, usage_out)
    _book(record, translated.usage, price, baseline)
    return Response(translated.body, headers=_headers(record, dep), media_type=JSON)


def _book(record: RequestRecord, usage: Usage | None, price: Price, baseline: Price | None) -> None:
    """Price the usage translation reported, at the price in force, and against the baseline."""
    if usage is not None:
        usage = usage.sane(f"{record.provider}/{record.model}")
    record.cost_usd = cost_usd(usage, price)
    if baseline is not None:
        record.baseline_cost_usd = cost_usd(usage, baseline)
    if usage is not None:
        record.prompt_tokens = usage.prompt_tokens
        record.completion_tokens = usage.completion_tokens
        record.cached_tokens = usage.cached_tokens


async def _stream(
    runtime: Runtime,
    dep: Deployment,
    body: dict[str, Any],
    want_usage: bool,
    record: RequestRecord,
    price: Price,
    baseline: Price | None,
    started: float,
    prompt_estimate: int,
) -> Response:
    upstream = dep.adapter.chat_request(body, dep.model, True, want_usage)
    dep.stats.start()
    try:
        resp = await runtime.transport.open_checked(dep.provider, upstream, dep.timeouts, dep.adapter.error)
        translator = dep.adapter.stream_translator(dep.model, want_usage)
        try:
            first = await first_events(resp, translator, dep)
        except BaseException:
            resp.close()
            raise
    except BaseException:
        dep.stats.end(None)
        raise
    return ChatStream(
        upstream=resp,
        translator=translator,
        first=first,
        deployment=dep,
        want_usage=want_usage,
        headers=_headers(record, dep),
        record=record,
        price=price,
        baseline=baseline,
        on_done=runtime.record,
        started=started,
        prompt_estimate=prompt_estimate,
        on_failure=runtime.failover.breaker(dep).failure,
    )
