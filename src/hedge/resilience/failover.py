"""Failover: try a plan of deployments until one answers.

Each attempt goes to the next deployment of the plan (the alias's, then its
fallback aliases'); deployments whose breaker is open or that are cooling down
after a Retry-After are skipped. When every deployment of the plan has failed
or is blocked, the request waits (exponential backoff with full jitter, at
least the shortest remaining cooldown) and goes round again, as long as the
wait stays under ``max_retry_wait_s``, attempts remain, and the retry budget
allows. Errors caused by the request itself (400, 413 ...) are never retried.

Each failure is blamed on what caused it. A 429 only cools its deployment down for
its Retry-After: the deployment is healthy, so the breaker is not told, and when
the pause is over it serves again (a client of a single deployment sees the 429,
not a 503 from an open breaker). A 401/403 means the provider refuses the
gateway's credentials: the request fails over but never tries that deployment
again (no retry can fix a key), the deployment is flagged misconfigured, and it
is a strike, so a deployment with a bad key stops costing every request an
attempt and the retry budget. Errors with ``blame=False`` (the gateway ran out of
file descriptors, a deployment lacks a feature) say nothing about the deployment.
Every Retry-After is capped at ``max_cooldown_s``, for the breaker and the client.

The ``trace`` records every deployment considered and what became of it, as typed
:class:`~hedge.record.RouteStep` values; the API renders it as ``x-hedge-route``.
Failover knows deployments only by their ``id`` (:class:`HasId`): what an attempt
does with one is the caller's business.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from hedge.config import ResilienceConfig
from hedge.errors import HedgeError, NoDeploymentAvailable, UpstreamError
from hedge.record import OK, Outcome, RouteStep
from hedge.resilience.backoff import backoff_seconds
from hedge.resilience.breaker import Breaker, Clock
from hedge.resilience.budget import RetryBudget

T = TypeVar("T")


class HasId(Protocol):
    """Anything failover can try: it needs only a stable id (a deployment's ``provider/model``)."""

    @property
    def id(self) -> str: ...


D = TypeVar("D", bound=HasId)


class Failover:
    def __init__(
        self,
        config: ResilienceConfig,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.breakers: dict[str, Breaker] = {}
        self.budget = RetryBudget(config.retry_budget, clock)
        self.on_new_breaker: Callable[[Breaker], None] | None = None

    def breaker(self, dep: HasId) -> Breaker:
        return self.breakers.get(dep.id) or self.breaker_by_id(dep.id)

    def breaker_by_id(self, name: str) -> Breaker:
        b = self.breakers.get(name)
        if b is None:
            b = self.breakers[name] = Breaker(
                name, self.config.breaker, self._clock, max_cooldown_s=self.config.max_cooldown_s
            )
            if self.on_new_breaker is not None:
                self.on_new_breaker(b)
        return b

    def _ready_in(self, plan: Sequence[HasId]) -> float:
        """Seconds until the first blocked deployment of the plan may take traffic again."""
        now = self._clock()
        return min((self.breaker(dep).ready_in(now) for dep in plan), default=0.0)

    def healthy(self, dep_id: str) -> bool:
        """Whether the deployment may take a request now, read without claiming a probe slot:
        what sticky routing and hedging ask before they prefer a deployment."""
        breaker = self.breakers.get(dep_id)
        if breaker is None:
            return True
        return breaker.misconfigured is None and breaker.ready_in(self._clock()) <= 0

    async def run(
        self,
        plan: Sequence[D],
        attempt: Callable[[D], Awaitable[T]],
        trace: list[RouteStep],
        max_attempts: int | None = None,
        new_request: bool = True,
    ) -> T:
        """Try ``plan`` until one deployment answers. ``new_request=False`` for a second lane of one
        request (a hedge): it must not count as another request in the retry budget's ratio."""
        limit = max_attempts or self.config.max_attempts
        if new_request:
            self.budget.request()
        attempts = 0
        last: HedgeError | None = None
        round_no = 0
        waited = 0.0
        refused: set[str] = set()  # deployments that rejected the gateway's credentials in this request
        while True:
            for dep in plan:
                if attempts >= limit:
                    raise _final(last, plan, trace)
                if dep.id in refused:
                    continue
                breaker = self.breaker(dep)
                blocked = breaker.blocked_reason()
                if blocked is not None:
                    trace.append(RouteStep(dep.id, Outcome(blocked)))
                    continue
                if attempts > 0 and not self.budget.try_retry():
                    breaker.release()
                    trace.append(RouteStep(dep.id, Outcome.RETRY_BUDGET_EXHAUSTED))
                    raise _final(last, plan, trace)
                attempts += 1
                try:
                    result = await attempt(dep)
                except UpstreamError as exc:
                    exc.cap_retry_after(self.config.max_cooldown_s)
                    trace.append(
                        RouteStep(dep.id, Outcome.FAILED, str(exc.code or exc.upstream_status or exc.status))
                    )
                    last = exc
                    if not exc.retryable:
                        breaker.release()
                        raise
                    if _refused_credentials(exc):
                        refused.add(dep.id)
                    judge(breaker, exc)
                    continue
                except BaseException:
                    # Cancelled (the client left, or the request's deadline passed): no verdict on it.
                    breaker.release()
                    trace.append(RouteStep(dep.id, Outcome.CANCELLED))
                    raise
                breaker.success()
                trace.append(RouteStep(dep.id, OK))
                return result
            live = [dep for dep in plan if dep.id not in refused]
            if not live:
                raise _final(last, plan, trace)
            round_no += 1
            wait = backoff_seconds(round_no, self.config.backoff, self._ready_in(live), self._rng)
            if attempts >= limit or round_no >= limit or waited + wait > self.config.max_retry_wait_s:
                raise _final(last, plan, trace, wait)
            waited += wait
            await self._sleep(wait)


def _refused_credentials(exc: UpstreamError) -> bool:
    return exc.code == "upstream_auth_error" or exc.upstream_status in (401, 403)


def judge(breaker: Breaker, exc: UpstreamError) -> None:
    """Tell the deployment's breaker what a retryable failure says about the deployment's health
    (a failed request, or a failed health probe)."""
    if not exc.blame:
        breaker.release()
    elif exc.status == 429 or exc.upstream_status == 429:
        breaker.release()
        breaker.cool_down(exc.retry_after)
    elif _refused_credentials(exc):
        status = exc.upstream_status if exc.upstream_status in (401, 403) else 401
        breaker.mark_misconfigured(f"the provider rejected the gateway's credentials ({status})")
        breaker.failure(exc.retry_after)
    else:
        breaker.failure(exc.retry_after)


def _final(
    last: HedgeError | None, plan: Sequence[HasId], trace: list[RouteStep], wait: float | None = None
) -> HedgeError:
    if last is not None:
        return last
    names = ", ".join(d.id for d in plan)
    headers = {"retry-after": str(max(1, round(wait)))} if wait else {}
    return NoDeploymentAvailable(
        f"No deployment is available right now (tried {names}: {'; '.join(map(str, trace))}).",
        headers=headers,
    )
