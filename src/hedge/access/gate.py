"""Enforcement: before a request, the key may call this model, has budget left and is under its
rate limits; after it, its spend and tokens are booked.

Budgets are checked against a spend counter (memory, or Redis shared by all
replicas) that is initialised from the ledger once per key and period and then
incremented as requests are booked. With several replicas the overspend past a
budget is bounded by the requests already in flight when the budget is crossed:
each is admitted while the counter is under budget, and booked when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from hedge.access.keys import VirtualKey
from hedge.errors import AuthError, HedgeError, PermissionDenied
from hedge.observe.records import RequestRecord
from hedge.store.counters import Counters, window_start
from hedge.store.ledger import Ledger

MINUTE = 60
log = logging.getLogger("hedge.gate")


def period_bounds(period: str | None, now: float) -> tuple[float, int | None]:
    """Start of the budget period containing ``now`` (UTC) and a TTL that outlives it."""
    when = datetime.fromtimestamp(now, UTC)
    midnight = when.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return midnight.timestamp(), 2 * 86400
    if period == "week":
        return (midnight - timedelta(days=midnight.weekday())).timestamp(), 8 * 86400
    if period == "month":
        return midnight.replace(day=1).timestamp(), 32 * 86400
    return 0.0, None


class RateLimited(HedgeError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(HedgeError):
    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class Gate:
    def __init__(self, counters: Counters, ledger: Ledger | None) -> None:
        self.counters = counters
        self.ledger = ledger
        self._pending: set[asyncio.Task[None]] = set()

    def _spend_name(self, key: VirtualKey, now: float) -> tuple[str, float, int | None]:
        start, ttl = period_bounds(key.budget_period, now)
        return f"spend:{key.id}:{key.budget_period or 'total'}:{int(start)}", start, ttl

    async def spent(self, key: VirtualKey, now: float | None = None) -> float:
        now = time.time() if now is None else now
        name, start, ttl = self._spend_name(key, now)
        value = await self.counters.spend_get(name)
        if value is None:
            initial = await self.ledger.key_spend(key.id, start) if self.ledger is not None else 0.0
            value = await self.counters.spend_init(name, initial, ttl)
        return value

    async def admit(self, key: VirtualKey, alias: str) -> None:
        """Raise the client-facing error if ``key`` may not make this request now."""
        now = time.time()
        if key.revoked_at is not None:
            raise AuthError("This API key has been revoked.", code="key_revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise AuthError("This API key has expired.", code="key_expired")
        if key.models and alias not in key.models:
            raise PermissionDenied(
                f"This API key may not use model '{alias}'. Allowed: {', '.join(key.models)}.",
                code="model_not_allowed",
                param="model",
            )
        if key.budget_usd is not None:
            spent = await self.spent(key, now)
            if spent >= key.budget_usd:
                period = key.budget_period or "total"
                raise BudgetExceeded(
                    f"This API key has used its {period} budget of {key.budget_usd:g} USD "
                    f"(spent {spent:.6f} USD)."
                )
        if key.rpm is not None:
            count = await self.counters.add(f"rpm:{key.id}", 1, MINUTE)
            if count > key.rpm:
                raise _limited(f"{key.rpm} requests per minute", now)
        if key.tpm is not None:
            used = await self.counters.get(f"tpm:{key.id}", MINUTE)
            if used >= key.tpm:
                raise _limited(f"{key.tpm} tokens per minute", now)

    def book(self, record: RequestRecord, key: VirtualKey) -> None:
        """Record sink side: count the request's cost and tokens against its key, off the request path."""
        tokens = record.prompt_tokens + record.completion_tokens
        if not record.cost_usd and not tokens:
            return
        task = asyncio.ensure_future(self._book(record.cost_usd, tokens, record.started_at, key))
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not book spend for a key: %r", task.exception())

    async def _book(self, cost: float, tokens: int, when: float, key: VirtualKey) -> None:
        if cost and key.budget_usd is not None:
            await self.spent(key, when)  # make sure the counter exists (initialised from the ledger)
            name, _, ttl = self._spend_name(key, when)
            await self.counters.spend_add(name, cost, ttl)
        if tokens and key.tpm is not None:
            await self.counters.add(f"tpm:{key.id}", tokens, MINUTE)

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


def _limited(what: str, now: float) -> RateLimited:
    retry = max(1, int(window_start(now, MINUTE) + MINUTE - now + 0.999))
    return RateLimited(
        f"Rate limit reached for this API key: {what}. Retry after {retry} s.",
        headers={"retry-after": str(retry)},
    )
