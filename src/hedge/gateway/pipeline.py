"""One model request from plan to record: the gateway's pipeline, which every face calls.

A face (the HTTP API, the Anthropic-dialect API, a batch worker ...) starts an :class:`Exchange`
as soon as a request arrives, so even one refused at the door is recorded once; it then calls
:meth:`Exchange.serve` with the parsed body and the caller's key. Serving admits the request
against the key's budget and limits, asks the router for a plan, holds back deployments that
have not passed their conformance cases, answers from the response cache if it may, and
otherwise tries the plan through failover, one :mod:`~hedge.gateway.attempt` at a time,
escalating a weak answer to a stronger alias when the alias says so. It returns a
:class:`Completion` or a :class:`~hedge.gateway.stream.Stream` (which records itself at its
end), or raises a :class:`~hedge.errors.HedgeError`; either way the request's record is final
and handed to the runtime's sinks exactly once. Nothing here knows HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hedge.access.keys import VirtualKey
from hedge.config import Price
from hedge.errors import HedgeError, NoDeploymentAvailable, StoreUnavailable, UpstreamError
from hedge.gateway.attempt import Native, complete, complete_native, fit, open_stream
from hedge.gateway.booking import book, book_cache_hit
from hedge.gateway.caching import cache_get, cache_put, cache_scope, cache_ttl
from hedge.gateway.runtime import Runtime
from hedge.gateway.stream import Stream
from hedge.observe.tracing import RequestTrace
from hedge.providers.base import Usage
from hedge.providers.capabilities import emulated
from hedge.record import Outcome, RequestRecord, RouteStep
from hedge.routing.context import RouteContext
from hedge.routing.deployment import Deployment
from hedge.routing.escalation import escalation_reason
from hedge.store.cache import cache_key
from hedge.store.db import warn_store_unavailable

T = TypeVar("T")


@dataclass(slots=True)
class Completion:
    """A whole answer (chat completion or embeddings list), in OpenAI format."""

    body: bytes
    provider: str
    model: str
    cost_usd: float
    dropped_params: list[str] = field(default_factory=list)
    cache: str | None = None
    """``"hit"``: served from the response cache; ``"miss"``: cacheable, and now cached."""
    escalated: str | None = None
    """``"<reason> -> <alias>"`` when the first answer was escalated (and how that went)."""
    native: bool = False
    """The body is in the client's own API (a :class:`Native` request passed through), not chat."""


class Exchange:
    """One request through the gateway, from its arrival to its one record."""

    __slots__ = ("_key", "_native", "_recorded", "_trace", "kind", "record", "runtime", "started")

    def __init__(self, runtime: Runtime, endpoint: str, request_id: str, headers: Mapping[str, str]) -> None:
        """``endpoint`` is what the client called (``chat``, ``embeddings``, ``messages``,
        ``responses`` ...): the record's and the metrics' name for it."""
        self.runtime = runtime
        self.kind = "embeddings" if endpoint == "embeddings" else "chat"
        """What the pipeline sends upstream: every face but embeddings arrives as a chat body."""
        self.started = time.perf_counter()
        self.record = RequestRecord(request_id, endpoint, alias="")
        """The request's record: read it freely; the pipeline alone writes it."""
        tracer = runtime.tracer
        self._trace: RequestTrace | None = (
            tracer.start_request(self.record, headers) if tracer.enabled else None
        )
        self._key: VirtualKey | None = None
        self._native: Native | None = None
        self._recorded = False

    def keep_request_body(self, raw: bytes) -> None:
        """With ``server.log_bodies``, the client's body goes into the body log with the record."""
        if self.runtime.config.server.log_bodies:
            self.record.request_body = raw

    def refused(self, exc: HedgeError) -> None:
        """The request failed before it could be served (authentication, a malformed body ...)."""
        self._fail(exc)

    def abandoned(self, why: str) -> None:
        """The client left before its request could be served (499)."""
        rec = self.record
        rec.status, rec.error = 499, why
        self._finish(rec)

    def broke(self, exc: BaseException) -> None:
        """Something unexpected (a bug, or cancellation) ended the request before it was served."""
        rec = self.record
        cancelled = isinstance(exc, asyncio.CancelledError)
        rec.status, rec.error = (499 if cancelled else 500), rec.error or type(exc).__name__
        self._finish(rec)

    async def serve(
        self,
        body: dict[str, Any],
        key: VirtualKey | None,
        tags: tuple[str, ...] = (),
        deadline_s: float | None = None,
        native: Native | None = None,
    ) -> Completion | Stream:
        """Serve a validated request for ``key`` (``None``: the master key) within ``deadline_s``
        (default ``resilience.request_timeout_s``); a stream's deadline ends at its first token.

        With ``native``, a deployment that serves the client's own API is sent the request as it is
        (``body`` is still what every other deployment gets); such answers are neither cached nor
        escalated, since both read chat completions."""
        runtime = self.runtime
        rec = self.record
        self._native = native
        try:
            ctx = runtime.router.context(body, tags)
            if key is not None:
                self._key = key
                rec.key_id, rec.team = key.id, key.team
                await self._admit(key, body["model"], ctx)
            seconds = runtime.config.resilience.request_timeout_s if deadline_s is None else deadline_s
            return await _within(seconds, self._route(body, ctx))
        except HedgeError as exc:
            self._fail(exc)
            raise
        except asyncio.CancelledError:
            rec.status, rec.error = 499, "client disconnected"
            self._finish(rec)
            raise
        except BaseException as exc:
            self.broke(exc)
            raise

    async def _admit(self, key: VirtualKey, alias: str, ctx: RouteContext) -> None:
        runtime = self.runtime
        try:
            await runtime.gate.admit(
                key,
                alias,
                self.record.request_id,
                lambda reserve: runtime.router.max_cost(alias, ctx, reserve),
            )
        except HedgeError:
            raise
        except Exception as exc:
            warn_store_unavailable("key limits", exc)
            raise StoreUnavailable(
                "This key's budget and rate limits cannot be checked now (state store unavailable).",
                code="limits_unavailable",
            ) from None

    async def _route(self, body: dict[str, Any], ctx: RouteContext) -> Completion | Stream:
        runtime = self.runtime
        rec = self.record
        key = self._key
        allowed = key.models if key is not None and key.models else None
        alias, plan = runtime.router.plan(body["model"], ctx, allowed)
        plan = self._conformant(plan)
        if not plan:
            reasons = "; ".join(
                f"{s.target}: {s.detail}" for s in rec.route if s.outcome is Outcome.NOT_CONFORMANT
            )
            raise NoDeploymentAvailable(
                f"No deployment of '{alias.name}' has passed its required conformance cases ({reasons}). "
                "Run 'hedge check' against it."
            )
        rec.alias = alias.name
        rec.tags = ctx.tags
        if self._trace is not None:
            self._trace.routed(body)
        runtime.started(rec)
        stream = self.kind == "chat" and bool(body.get("stream"))
        rec.stream = stream
        options = body.get("hedge") or {}
        baseline = alias.baseline_price

        ttl = None if self._native is not None else cache_ttl(alias.config.cache_ttl_s, options, stream)
        cache_id = None
        if ttl:
            scope = cache_scope(alias.config.cache_scope, rec.key_id, rec.team)
            cache_id = cache_key(alias.name, rec.endpoint, body, scope)
            hit = await cache_get(runtime.cache, cache_id)
            if hit is not None:
                return self._cached(hit, baseline)

        if stream:
            return await runtime.failover.run(
                plan, self._stream_attempt(body, ctx, baseline, options), rec.route, alias.max_attempts
            )
        whole = self._whole_attempt(body, ctx, baseline, options)
        done = await runtime.failover.run(plan, whole, rec.route, alias.max_attempts)
        escalate = alias.config.escalate
        if escalate is not None and allowed is not None and escalate.to not in allowed:
            escalate = None  # a restricted key is never served by an alias outside its restriction
        if escalate is not None and self.kind == "chat" and not done.native:
            reason = escalation_reason(done.body, body, escalate.when)
            if reason is not None:
                done = await self._escalate(done, reason, escalate.to, whole, ctx, allowed)
        if cache_id is not None and ttl:
            entry = {
                "body": done.body.decode(),
                "provider": rec.provider,
                "model": rec.model,
                "usage": [rec.prompt_tokens, rec.completion_tokens, rec.cached_tokens],
            }
            await cache_put(runtime.cache, cache_id, entry, ttl)
            done.cache = "miss"
        done.cost_usd = rec.cost_usd
        if runtime.config.server.log_bodies:
            rec.response_body = done.body
        self._finish(rec)
        return done

    def _conformant(self, plan: list[Deployment]) -> list[Deployment]:
        """The plan without the deployments the conformance gate holds back (noted on the route)."""
        allowed, held = self.runtime.conformance.split(plan)
        self.record.route.extend(RouteStep(dep.id, Outcome.NOT_CONFORMANT, why) for dep, why in held)
        return allowed

    async def _begin_attempt(
        self, dep: Deployment, body: dict[str, Any], options: dict[str, Any]
    ) -> tuple[dict[str, Any], list[str]]:
        """Fit the body to ``dep`` and take a slot of its upstream quota: then it counts as an attempt."""
        send, dropped = fit(dep, self.kind, body, options.get("on_unsupported"))
        self.record.dropped_params = dropped
        self.record.emulated_params = emulated(send, dep.adapter.style) if self.kind == "chat" else []
        await self._count_attempt(dep)
        return send, dropped

    async def _count_attempt(self, dep: Deployment) -> None:
        await self.runtime.quotas.reserve(dep.id)
        rec = self.record
        rec.attempts += 1
        rec.provider, rec.model = dep.provider, dep.model

    def _native_for(self, dep: Deployment) -> Native | None:
        """The request in its own API, if ``dep`` serves that API natively; a 400 that failover may
        take elsewhere if the request needs such a deployment and ``dep`` is not one."""
        native = self._native
        if native is None:
            return None
        if native.serves(dep.adapter):
            self.record.dropped_params = []
            self.record.emulated_params = []
            return native
        param = native.only_native()
        if param is not None:
            raise UpstreamError(
                f"Provider '{dep.provider}' (model {dep.model}) cannot honour '{param}': only a provider "
                "that serves the Responses API itself (responses_api: true) can.",
                status=400,
                type="invalid_request_error",
                code="unsupported_parameter",
                param=param,
                retryable=True,
                blame=False,
            )
        return None

    def _traced(self, dep: Deployment, sending: Awaitable[T]) -> Awaitable[T]:
        return sending if self._trace is None else self._trace.attempt(dep, sending)

    def _whole_attempt(
        self, body: dict[str, Any], ctx: RouteContext, baseline: Price | None, options: dict[str, Any]
    ) -> Callable[[Deployment], Awaitable[Completion]]:
        runtime = self.runtime

        async def send(dep: Deployment, fitted: dict[str, Any], dropped: list[str]) -> Completion:
            answer = await complete(runtime.transport, dep, self.kind, fitted)
            book(self.record, answer.usage, dep.price_at(ctx.now), baseline)
            return Completion(answer.body, dep.provider, dep.model, self.record.cost_usd, dropped)

        async def send_native(dep: Deployment, native: Native) -> Completion:
            answer = await complete_native(runtime.transport, dep, native)
            book(self.record, answer.usage, dep.price_at(ctx.now), baseline)
            return Completion(answer.body, dep.provider, dep.model, self.record.cost_usd, native=True)

        async def attempt(dep: Deployment) -> Completion:
            native = self._native_for(dep)
            if native is not None:
                await self._count_attempt(dep)
                return await self._traced(dep, send_native(dep, native))
            fitted, dropped = await self._begin_attempt(dep, body, options)
            return await self._traced(dep, send(dep, fitted, dropped))

        return attempt

    def _stream_attempt(
        self, body: dict[str, Any], ctx: RouteContext, baseline: Price | None, options: dict[str, Any]
    ) -> Callable[[Deployment], Awaitable[Stream]]:
        runtime = self.runtime
        want_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def attempt(dep: Deployment) -> Stream:
            native = self._native_for(dep)
            if native is not None:
                fitted = body
                await self._count_attempt(dep)
            else:
                fitted, _ = await self._begin_attempt(dep, body, options)
            price = dep.price_at(ctx.now)
            opening = open_stream(runtime.transport, dep, fitted, want_usage, native=native)
            opened = await self._traced(dep, opening)
            return Stream(
                opened,
                deployment=dep,
                want_usage=want_usage,
                record=self.record,
                price=price,
                baseline=baseline,
                started=self.started,
                prompt_estimate=ctx.prompt_tokens,
                on_failure=runtime.failover.breaker(dep).failure,
                finish=self._finish,
                native=native is not None,
            )

        return attempt

    async def _escalate(
        self,
        first: Completion,
        reason: str,
        to: str,
        attempt: Callable[[Deployment], Awaitable[Completion]],
        ctx: RouteContext,
        allowed: list[str] | None,
    ) -> Completion:
        """Ask the stronger alias ``to``; if it cannot answer, the first answer, paid for, is better
        than an error. Both answers are booked when both were paid for."""
        runtime = self.runtime
        rec = self.record
        paid = (rec.cost_usd, rec.prompt_tokens, rec.completion_tokens, rec.provider, rec.model)
        rec.route.append(RouteStep(to, Outcome.ESCALATED, reason))
        target, plan = runtime.router.plan(to, ctx, allowed)
        plan = self._conformant(plan)
        try:
            second = await runtime.failover.run(plan, attempt, rec.route, target.max_attempts)
        except HedgeError:
            rec.cost_usd, rec.prompt_tokens, rec.completion_tokens, rec.provider, rec.model = paid
            first.escalated = f"{reason} -> {to} (failed; first answer kept)"
            return first
        rec.cost_usd += paid[0]
        rec.prompt_tokens += paid[1]
        rec.completion_tokens += paid[2]
        second.escalated = f"{reason} -> {to}"
        return second

    def _cached(self, hit: dict[str, Any], baseline: Price | None) -> Completion:
        rec = self.record
        prompt, completion, cached = hit["usage"]
        rec.cache_hit = True
        rec.provider, rec.model = hit["provider"], hit["model"]
        book_cache_hit(rec, Usage(prompt, completion, cached), baseline)
        rec.route.append(RouteStep("cache", Outcome.CACHE_HIT))
        body = hit["body"].encode()
        if self.runtime.config.server.log_bodies:
            rec.response_body = body
        self._finish(rec)
        return Completion(body, str(hit["provider"]), str(hit["model"]), 0.0, cache="hit")

    def _fail(self, exc: HedgeError) -> None:
        rec = self.record
        rec.status, rec.error = exc.status, exc.message
        if self.runtime.config.server.log_bodies:
            rec.response_body = exc.to_bytes()
        self._finish(rec)

    def _finish(self, rec: RequestRecord) -> None:
        """Hand the final record to the runtime's sinks, once (a stream calls this at its end, having
        set the latency itself; for everything else it is the time until now)."""
        if self._recorded:
            return
        self._recorded = True
        if not rec.latency_ms:
            rec.latency_ms = (time.perf_counter() - self.started) * 1000
        self.runtime.record(rec, self._key)


async def _within(seconds: float, work: Awaitable[T]) -> T:
    """The request's one deadline, across attempts and backoff."""
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
