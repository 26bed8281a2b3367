"""One model request from plan to record: the gateway's pipeline, which every face calls.

A face (the HTTP API, the Anthropic-dialect API, a batch worker ...) starts an :class:`Exchange`
as soon as a request arrives, so even one refused at the door is recorded once; it then calls
:meth:`Exchange.serve` with the parsed body and the caller's key. Serving admits the request
against the key's budget and limits, asks the router for a plan, holds back deployments that
have not passed their conformance cases, answers from the response cache if it may, and
otherwise tries the plan through failover, one :mod:`~hedge.gateway.attempt` at a time,
escalating a weak answer to a stronger alias when the alias says so. An experiment on the alias
(the runtime's :class:`~hedge.gateway.hooks.Assigner`) may first hand the request to one of its
arms' aliases. It returns a
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

from hedge.access.gate import BudgetExceeded
from hedge.access.keys import VirtualKey
from hedge.config import Price
from hedge.errors import HedgeError, NoDeploymentAvailable, StoreUnavailable, UpstreamError
from hedge.gateway.attempt import Native, complete, complete_native, fit, open_stream
from hedge.gateway.booking import book, book_cache_hit, book_lost
from hedge.gateway.caching import cache_get, cache_put, cache_scope, cache_ttl
from hedge.gateway.hedging import LostRace, Race, hedged
from hedge.gateway.runtime import Runtime
from hedge.gateway.stream import Stream
from hedge.observe.tracing import RequestTrace
from hedge.providers.base import Usage, tier_name
from hedge.providers.capabilities import emulated
from hedge.record import NO_CHARGES, Outcome, RequestRecord, RouteStep
from hedge.routing.context import RouteContext
from hedge.routing.deployment import Deployment
from hedge.routing.escalation import escalation_reason
from hedge.routing.router import Alias
from hedge.routing.sticky import pin_name, session_of
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

    __slots__ = (
        "_headers",
        "_key",
        "_native",
        "_recorded",
        "_trace",
        "body",
        "kind",
        "record",
        "runtime",
        "started",
    )

    def __init__(
        self,
        runtime: Runtime,
        endpoint: str,
        request_id: str,
        headers: Mapping[str, str],
        *,
        shadow: bool = False,
        batch_id: str | None = None,
    ) -> None:
        """``endpoint`` is what the client called (``chat``, ``embeddings``, ``messages``,
        ``responses`` ...): the record's and the metrics' name for it. A ``shadow`` exchange is a
        copy of another request: booked as shadow spend and never split by an experiment;
        ``batch_id`` the batch the request is a line of (booked with it in the ledger)."""
        self.runtime = runtime
        self.body: dict[str, Any] | None = None
        """The chat (or embeddings) body as served, once :meth:`serve` was called."""
        self.kind = "embeddings" if endpoint == "embeddings" else "chat"
        """What the pipeline sends upstream: every face but embeddings arrives as a chat body."""
        self.started = time.perf_counter()
        self.record = RequestRecord(request_id, endpoint, alias="", shadow=shadow, batch_id=batch_id)
        """The request's record: read it freely; the pipeline alone writes it."""
        tracer = runtime.tracer
        self._trace: RequestTrace | None = (
            tracer.start_request(self.record, headers) if tracer.enabled else None
        )
        self._headers = headers
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
        self.body = body
        try:
            ctx = runtime.router.context(body, tags)
            serving = self._assign(body, key)
            if key is not None:
                self._key = key
                rec.key_id, rec.team = key.id, key.team
                fallback = await self._admit(key, body["model"], serving, ctx)
                if fallback is not None:  # over a soft budget: a cheaper alias serves, and says so
                    body = self.body = {**body, "model": fallback}
                    serving = fallback
                    rec.budget = "fallback"
                    rec.experiment = rec.arm = None  # not the arm's answer: it must not count for it
            seconds = runtime.config.resilience.request_timeout_s if deadline_s is None else deadline_s
            for shared in runtime.signatures:  # other replicas' signatures and thinking blocks
                await shared.fetch(body)
            result = await _within(seconds, self._route(body, serving, ctx))
            if isinstance(result, Completion):
                for shared in runtime.signatures:
                    await shared.flush()  # the next turn may reach another replica
            return result
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

    def _assign(self, body: dict[str, Any], key: VirtualKey | None) -> str:
        """The alias that plans this request: the one asked for, or its experiment arm's. A key
        restricted to other aliases than the arm's stays out of the experiment."""
        asked = body.get("model")
        assigner = self.runtime.assigner
        if assigner is None or self.record.shadow or not isinstance(asked, str):
            return str(asked)
        arm = assigner.assign(asked, key, body, self._headers)
        if arm is None or (key is not None and key.models and arm.use not in key.models):
            return asked
        self.record.experiment, self.record.arm = arm.experiment, arm.arm
        return arm.use

    async def _admit(self, key: VirtualKey, alias: str, serving: str, ctx: RouteContext) -> str | None:
        """Admit the request on the key's (and its team's) budget and limits; returns the fallback
        alias that is to serve it when one of them is over its soft budget."""
        runtime = self.runtime
        try:
            team = await runtime.teams.find(key.team) if key.team else None
            admission = await runtime.gate.admit(
                key,
                alias,
                self.record.request_id,
                lambda reserve: runtime.router.max_cost(serving, ctx, reserve),
                team,
            )
            fallback = admission.fallback
            if fallback is not None and fallback not in runtime.router.aliases:
                raise BudgetExceeded(
                    f"This API key is over its budget, and its budget_fallback alias '{fallback}' is not "
                    "configured."
                )
            return fallback
        except HedgeError:
            raise
        except Exception as exc:
            warn_store_unavailable("key limits", exc)
            raise StoreUnavailable(
                "This key's budget and rate limits cannot be checked now (state store unavailable).",
                code="limits_unavailable",
            ) from None

    async def _route(self, body: dict[str, Any], serving: str, ctx: RouteContext) -> Completion | Stream:
        runtime = self.runtime
        rec = self.record
        key = self._key
        allowed = key.models if key is not None and key.models else None
        if allowed is not None and rec.budget == "fallback":
            allowed = [*allowed, serving]  # the fallback an administrator named is allowed
        session = await self._session(body, serving, ctx, allowed)
        alias, plan = runtime.router.plan(serving, ctx, allowed, session.pinned if session else None)
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
        rec.service_tier = tier_name(body.get("service_tier"))
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

        race = self._race(alias, plan)
        if stream:
            opened = await self._run(
                alias, plan, self._stream_attempt(body, ctx, baseline, options, race), race, stream
            )
            if race is not None:  # a losing lane may have started its attempt after the winner
                rec.provider, rec.model = opened.provider, opened.model
            await self._pin(session, alias, opened.deployment.id)
            return opened
        done = await self._run(
            alias, plan, self._whole_attempt(body, ctx, baseline, options, race), race, stream
        )
        if race is not None:
            rec.provider, rec.model = done.provider, done.model
        await self._pin(session, alias, f"{done.provider}/{done.model}")
        escalate = alias.config.escalate
        if escalate is not None and allowed is not None and escalate.to not in allowed:
            escalate = None  # a restricted key is never served by an alias outside its restriction
        if escalate is not None and self.kind == "chat" and not done.native:
            reason = escalation_reason(done.body, body, escalate.when)
            if reason is not None:
                whole = self._whole_attempt(body, ctx, baseline, options, None)
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

    async def _session(
        self, body: dict[str, Any], serving: str, ctx: RouteContext, allowed: list[str] | None
    ) -> Session | None:
        """The request's sticky session, if its alias has one, and the deployment it is pinned to
        (only while that one is healthy: otherwise the strategy picks, and the session moves)."""
        runtime = self.runtime
        if not runtime.router.sticky:
            return None
        target = runtime.router.resolve(serving, ctx, allowed)
        sticky = target.config.sticky
        if sticky is None:
            return None
        session = session_of(sticky, body, self._headers)
        if session is None:
            return None
        name = pin_name(target.name, session)
        try:
            pinned = await runtime.affinity.get(name)
        except Exception as exc:
            warn_store_unavailable("sticky sessions", exc)
            pinned = None
        if pinned is not None and not runtime.failover.healthy(pinned):
            pinned = None
        return Session(name, pinned, sticky.ttl_s)

    async def _pin(self, session: Session | None, alias: Alias, served: str) -> None:
        """Keep the session on the deployment that served it (its own alias's only), for its TTL."""
        if session is None or not any(dep.id == served for dep in alias.deployments):
            return
        try:
            await self.runtime.affinity.put(session.name, served, session.ttl_s)
        except Exception as exc:
            warn_store_unavailable("sticky sessions", exc)

    def _race(self, alias: Alias, plan: list[Deployment]) -> Race | None:
        """A race if this request is to be hedged: the alias hedges and the plan has a second deployment."""
        if alias.config.hedge_after_ms is None or len(plan) < 2 or self._native is not None:
            return None
        return Race()

    async def _run(
        self,
        alias: Alias,
        plan: list[Deployment],
        attempt: Callable[[Deployment], Awaitable[T]],
        race: Race | None,
        stream: bool,
    ) -> T:
        """Failover over ``plan``, hedged when the alias says so and the delay is known."""
        failover = self.runtime.failover
        after_s = _hedge_delay(alias.config.hedge_after_ms, plan[0], stream) if race is not None else None
        if race is None or after_s is None:
            return await failover.run(plan, attempt, self.record.route, alias.max_attempts)
        return await hedged(failover, plan, attempt, self.record.route, alias.max_attempts, after_s, race)

    def _lost(self, dep: Deployment, usage: Usage | None, ctx: RouteContext) -> None:
        """An attempt that lost a hedged request's race: book what its provider bills (its usage, or
        the prompt estimate when it was cut off before answering)."""
        billed = usage if usage is not None else Usage(ctx.prompt_tokens, 0)
        book_lost(self.record, billed, dep.price_at(ctx.now))

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
        # The tier asked of this deployment (none if it was dropped): priced so unless it says otherwise.
        self.record.service_tier = tier_name(send.get("service_tier"))
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
        self,
        body: dict[str, Any],
        ctx: RouteContext,
        baseline: Price | None,
        options: dict[str, Any],
        race: Race | None,
    ) -> Callable[[Deployment], Awaitable[Completion]]:
        runtime = self.runtime

        async def send(dep: Deployment, fitted: dict[str, Any], dropped: list[str]) -> Completion:
            try:
                answer = await complete(runtime.transport, dep, self.kind, fitted)
            except asyncio.CancelledError:
                if race is not None and race.lost(dep.id):
                    self._lost(dep, None, ctx)
                raise
            if race is not None:
                if not race.claim(dep.id):
                    self._lost(dep, answer.usage, ctx)
                    raise LostRace(dep.id)
                self._served_by(dep, dropped)
            book(self.record, answer.usage, dep.price_at(ctx.now), baseline, unpriced=dep.price_missing)
            return Completion(answer.body, dep.provider, dep.model, self.record.cost_usd, dropped)

        async def send_native(dep: Deployment, native: Native) -> Completion:
            answer = await complete_native(runtime.transport, dep, native)
            book(self.record, answer.usage, dep.price_at(ctx.now), baseline, unpriced=dep.price_missing)
            return Completion(answer.body, dep.provider, dep.model, self.record.cost_usd, native=True)

        async def attempt(dep: Deployment) -> Completion:
            native = self._native_for(dep)
            if native is not None:
                await self._count_attempt(dep)
                return await self._traced(dep, send_native(dep, native))
            fitted, dropped = await self._begin_attempt(dep, body, options)
            return await self._traced(dep, send(dep, fitted, dropped))

        return attempt

    def _served_by(self, dep: Deployment, dropped: list[str]) -> None:
        """A hedged request's winner: the record names it, whichever attempt started last."""
        rec = self.record
        rec.provider, rec.model, rec.dropped_params = dep.provider, dep.model, dropped

    def _stream_attempt(
        self,
        body: dict[str, Any],
        ctx: RouteContext,
        baseline: Price | None,
        options: dict[str, Any],
        race: Race | None,
    ) -> Callable[[Deployment], Awaitable[Stream]]:
        runtime = self.runtime
        want_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def attempt(dep: Deployment) -> Stream:
            native = self._native_for(dep)
            dropped: list[str] = []
            if native is not None:
                fitted = body
                await self._count_attempt(dep)
            else:
                fitted, dropped = await self._begin_attempt(dep, body, options)
            price = dep.price_at(ctx.now)
            opening = open_stream(runtime.transport, dep, fitted, want_usage, native=native)
            try:
                opened = await self._traced(dep, opening)
            except asyncio.CancelledError:
                if race is not None and race.lost(dep.id):
                    self._lost(dep, None, ctx)
                raise
            if race is not None:
                if not race.claim(dep.id):
                    opened.reply.close()
                    opened.flight.end(None)
                    self._lost(dep, Usage(ctx.prompt_tokens, max(0, len(opened.first) - 1)), ctx)
                    raise LostRace(dep.id)
                self._served_by(dep, dropped)
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
        rec.lost_cost_usd, rec.lost_prompt_tokens, rec.lost_completion_tokens = 0.0, 0, 0  # in ``paid``
        rec.lost_charges = NO_CHARGES
        classes = (rec.charges, rec.cached_tokens, rec.cache_write_tokens, rec.reasoning_tokens)
        rec.route.append(RouteStep(to, Outcome.ESCALATED, reason))
        target, plan = runtime.router.plan(to, ctx, allowed)
        plan = self._conformant(plan)
        try:
            second = await runtime.failover.run(plan, attempt, rec.route, target.max_attempts)
        except HedgeError:
            rec.cost_usd, rec.prompt_tokens, rec.completion_tokens, rec.provider, rec.model = paid
            rec.charges, rec.cached_tokens, rec.cache_write_tokens, rec.reasoning_tokens = classes
            first.escalated = f"{reason} -> {to} (failed; first answer kept)"
            return first
        rec.cost_usd += paid[0]
        rec.prompt_tokens += paid[1]
        rec.completion_tokens += paid[2]
        rec.charges += classes[0]
        rec.cached_tokens += classes[1]
        rec.cache_write_tokens += classes[2]
        rec.reasoning_tokens += classes[3]
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


@dataclass(slots=True, frozen=True)
class Session:
    """A sticky session of one request: where its pin lives, the deployment pinned (if healthy)."""

    name: str
    pinned: str | None
    ttl_s: float


def _hedge_delay(setting: float | str | None, first: Deployment, stream: bool) -> float | None:
    """Seconds before a hedge goes out: the configured milliseconds, or the first deployment's
    observed p95 (time to first token for streams); None while it has no observations yet."""
    if setting is None:
        return None
    if isinstance(setting, int | float):
        return float(setting) / 1000
    p95 = first.stats.p95_ttft_ms() if stream else first.stats.p95_latency_ms()
    return None if p95 is None else p95 / 1000


async def _within(seconds: float, work: Awaitable[T]) -> T:
    """The request's one deadline, across attempts and backoff.

    What ``asyncio.timeout`` does, on one timer handle: under uvloop ``asyncio.timeout`` costs about
    5 µs a request (its own object, a reschedule, the timer) and this about half of that."""
    me = asyncio.current_task()
    assert me is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        me.cancel()

    timer = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        result = await work
    except asyncio.CancelledError:
        if expired and me.uncancel() == 0:  # our own cancel, not (also) one from outside
            raise HedgeError(
                f"The request did not complete within its deadline of {seconds:g} s "
                "(resilience.request_timeout_s, or the x-hedge-timeout-ms header).",
                status=504,
                type="timeout_error",
                code="request_timeout",
            ) from None
        raise
    finally:
        timer.cancel()
    if expired:  # it fired as the work finished: take the cancel back, the answer stands
        me.uncancel()
    return result
