"""Enforcement: before a request, the key may call this model, is under its rate limits and has
budget for the request's maximum cost (reserved); after it, the reservation is settled to the real
cost and its tokens are booked.

Budgets are checked against a spend counter (memory, or Redis shared by all replicas) that is
initialised from the ledger once per key and period, moved by every settled request, and
reconciled with the ledger periodically, so a lost booking cannot under-count a key for long.
See :class:`Gate` for the overspend bound.

A key's team, when the team has a budget, is held to it the same way and in the same admission:
the request reserves its maximum cost on both counters, or on neither. A key or team with a
``budget_fallback`` is not refused at its budget: past it, admission names the fallback alias
that serves the request instead (a cheaper model), and only ``hard_budget_usd`` refuses.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hedge.access.alerts import Alerts
from hedge.access.coalesce import Coalescer
from hedge.access.keys import VirtualKey
from hedge.access.teams import Team
from hedge.config import BudgetConfig
from hedge.errors import AuthError, HedgeError, PermissionDenied
from hedge.record import RequestRecord
from hedge.store.counters import Counters, window_start
from hedge.store.ledger import Ledger
from hedge.tasks import stop

MINUTE = 60
BOOKING_TRIES = 4
BOOKING_BACKOFF_S = 0.2
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


def refuse_unusable(key: VirtualKey, now: float) -> None:
    """401 for a revoked or expired key: checked on every authenticated endpoint, not only the model ones."""
    if key.revoked_at is not None:
        raise AuthError("This API key has been revoked.", code="key_revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise AuthError("This API key has expired.", code="key_expired")


def refuse_model(key: VirtualKey, alias: str) -> None:
    """403 if ``key`` is restricted to other models than ``alias`` (the model the client asked for)."""
    if key.models and alias not in key.models:
        raise PermissionDenied(
            f"This API key may not use model '{alias}'. Allowed: {', '.join(key.models)}.",
            code="model_not_allowed",
            param="model",
        )


class RateLimited(HedgeError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(HedgeError):
    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


NO_LIMIT = 1e300
"""The reservation limit of a budget that never refuses (a fallback and no hard limit)."""


@dataclass(frozen=True, slots=True)
class Budgeted:
    """What admission holds to a budget: a key, or a key's team."""

    scope: str
    """``key`` or ``team``."""
    id: str
    name: str
    budget_usd: float | None
    budget_period: str | None
    hard_budget_usd: float | None
    budget_fallback: str | None

    @classmethod
    def of_key(cls, key: VirtualKey) -> Budgeted:
        return cls(
            "key",
            key.id,
            key.name,
            key.budget_usd,
            key.budget_period,
            key.hard_budget_usd,
            key.budget_fallback,
        )

    @classmethod
    def of_team(cls, team: Team) -> Budgeted:
        return cls(
            "team",
            team.name,
            team.name,
            team.budget_usd,
            team.budget_period,
            team.hard_budget_usd,
            team.budget_fallback,
        )

    @property
    def enforced(self) -> bool:
        return self.budget_usd is not None or self.hard_budget_usd is not None

    @property
    def refuse_at(self) -> float | None:
        """Spend at which requests are refused: the hard limit; else the budget, unless a fallback
        serves past it (then nothing refuses)."""
        if self.hard_budget_usd is not None:
            return self.hard_budget_usd
        return self.budget_usd if self.budget_fallback is None else None

    @property
    def degrade_at(self) -> float | None:
        """Spend past which the fallback alias serves (``None``: no fallback)."""
        return self.budget_usd if self.budget_fallback is not None else None

    @property
    def alert_budget(self) -> float | None:
        return self.budget_usd if self.budget_usd is not None else self.hard_budget_usd

    @property
    def what(self) -> str:
        return "This API key" if self.scope == "key" else f"This API key's team '{self.name}'"


@dataclass(slots=True)
class _Reservation:
    name: str
    ttl: int | None
    subject: Budgeted | None = None
    start: float = 0.0


@dataclass(slots=True)
class Admission:
    """What admission decided beyond "yes": the alias that serves instead, when over a soft budget."""

    fallback: str | None = None
    over: str | None = None
    """Whose budget sent the request to the fallback (``key`` or ``team``)."""


class Gate:
    """Admission and booking for virtual keys.

    A budget holds under concurrency because admission *reserves* the request's maximum
    cost (its prompt estimate at the input price plus its ``max_tokens``, or
    ``budgets.reserve_output_tokens``, at the output price, the dearest deployment it may
    reach) in the same atomic step that checks spend plus every live reservation against
    the budget; the end of the request settles the reservation to the real cost, or
    releases it. So however many requests a key sends at once, on however many replicas,
    the spend past a budget is at most one request's maximum cost (the last one admitted
    while budget remained) plus what the estimates missed.
    """

    def __init__(
        self,
        counters: Counters,
        ledger: Ledger | None,
        config: BudgetConfig | None = None,
        clock: Callable[[], float] = time.time,
        alerts: Alerts | None = None,
    ) -> None:
        self.counters = counters
        self.ledger = ledger
        self.config = config or BudgetConfig()
        self._clock = clock
        self.alerts = alerts
        self._pending: set[asyncio.Task[None]] = set()
        self._reservations: dict[str, list[_Reservation]] = {}
        """Request id -> its live reservations (key, team), until the request's record settles them."""
        self._active: dict[str, tuple[Budgeted, float]] = {}
        """Keys and teams with a budget booked recently (:func:`_spend_id` -> it, last booking)."""
        self._booking: dict[str, int] = {}
        """Key id -> bookings of this replica still in progress (reconciliation waits for them)."""
        self._task: asyncio.Task[None] | None = None
        self._initialising: Coalescer[float] = Coalescer()

    def _spend_name(self, subject: Budgeted, now: float) -> tuple[str, float, int | None]:
        start, ttl = period_bounds(subject.budget_period, now)
        owner = subject.id if subject.scope == "key" else f"team:{subject.id}"
        return f"spend:{owner}:{subject.budget_period or 'total'}:{int(start)}", start, ttl

    async def spent(self, key: VirtualKey | Budgeted, now: float | None = None) -> float:
        """What the key (or team) has spent in its current budget period, settled bookings only."""
        subject = key if isinstance(key, Budgeted) else Budgeted.of_key(key)
        now = self._clock() if now is None else now
        name, start, ttl = self._spend_name(subject, now)
        value = await self.counters.spend_get(name)
        if value is None:
            # A burst of a new key's requests all find the counter missing: one ledger query serves them.
            value = await self._initialising.run(name, lambda: self._init_spend(subject, name, start, ttl))
        return value

    async def _ledger_spend(self, subject: Budgeted, start: float) -> float:
        if self.ledger is None:
            return 0.0
        if subject.scope == "team":
            return await self.ledger.team_spend(subject.id, start)
        return await self.ledger.key_spend(subject.id, start)

    async def _init_spend(self, subject: Budgeted, name: str, start: float, ttl: int | None) -> float:
        initial = await self._ledger_spend(subject, start)
        return await self.counters.spend_init(name, initial, ttl)

    async def admit(
        self,
        key: VirtualKey,
        alias: str,
        request_id: str = "",
        estimate: Callable[[int], float] | None = None,
        team: Team | None = None,
    ) -> Admission:
        """Raise the client-facing error if ``key`` may not make this request now.

        ``estimate(reserve_output_tokens)`` is the request's maximum cost in USD; with a
        budget (the key's, or its ``team``'s) it is reserved under ``request_id`` until
        :meth:`book` sees the request's record. Over a soft budget with a fallback, the
        admission names the fallback alias that is to serve the request.
        """
        now = self._clock()
        refuse_unusable(key, now)
        refuse_model(key, alias)
        admission = Admission()
        subjects = [Budgeted.of_key(key)]
        if team is not None:
            subjects.append(Budgeted.of_team(team))
        subjects = [s for s in subjects if s.enforced]
        if subjects:
            amount = max(0.0, estimate(self.config.reserve_output_tokens)) if estimate is not None else 0.0
            holder = request_id or f"anon-{id(key)}-{now}"
            held: list[_Reservation] = []
            try:
                for subject in subjects:
                    reservation, committed = await self._reserve(subject, holder, amount, now)
                    held.append(reservation)
                    degrade = subject.degrade_at
                    if degrade is not None and committed >= degrade and admission.fallback is None:
                        admission = Admission(subject.budget_fallback, subject.scope)
            except BaseException:
                for reservation in held:  # all or nothing: a team that refuses frees the key's hold
                    await self.counters.settle(reservation.name, holder, 0.0, reservation.ttl)
                raise
            if request_id:
                self._reservations[request_id] = held
        if key.rpm is not None:
            count = await self.counters.add(f"rpm:{key.id}", 1, MINUTE)
            if count > key.rpm:
                raise _limited(f"{key.rpm} requests per minute", now)
        if key.tpm is not None:
            used = await self.counters.get(f"tpm:{key.id}", MINUTE)
            if used >= key.tpm:
                raise _limited(f"{key.tpm} tokens per minute", now)
        return admission

    async def _reserve(
        self, subject: Budgeted, holder: str, amount: float, now: float
    ) -> tuple[_Reservation, float]:
        """Reserve ``amount`` on ``subject``'s counter (refusing past its limit); returns the
        reservation and what was spent or reserved before it."""
        name, start, ttl = self._spend_name(subject, now)
        limit = subject.refuse_at
        cap = NO_LIMIT if limit is None else limit
        hold = self.config.reservation_ttl_s
        ok, committed = await self.counters.reserve(name, holder, amount, cap, hold, ttl)
        if ok is None:  # first request of the period: initialise the counter from the ledger, once
            await self.spent(subject, now)
            ok, committed = await self.counters.reserve(name, holder, amount, cap, hold, ttl)
        if not ok:
            period = subject.budget_period or "total"
            kind = "hard budget" if subject.hard_budget_usd is not None else "budget"
            raise BudgetExceeded(
                f"{subject.what} has used its {period} {kind} of {cap:g} USD "
                f"(spent or reserved by requests in flight: {committed:.6f} USD)."
            )
        return _Reservation(name, ttl, subject, start), committed

    def book(self, record: RequestRecord, key: VirtualKey) -> None:
        """Record sink side: settle the request's reservation to its cost and count its tokens, off the
        request path. A booking that fails is retried; reconciliation catches one that never lands."""
        reservations = self._reservations.pop(record.request_id, None)
        tokens = record.prompt_tokens + record.completion_tokens
        if reservations is None and not record.cost_usd and not tokens:
            return
        now = self._clock()
        if key.budget_usd is not None or key.hard_budget_usd is not None:
            self._active[key.id] = (Budgeted.of_key(key), now)
        busy = [key.id]
        for reservation in reservations or ():
            subject = reservation.subject
            if subject is not None and subject.scope == "team":
                self._active[_spend_id(subject)] = (subject, now)
                busy.append(_spend_id(subject))
        for spend_id in busy:
            self._booking[spend_id] = self._booking.get(spend_id, 0) + 1
        task = asyncio.ensure_future(
            self._book(record.cost_usd, tokens, record.started_at, key, reservations, record.request_id)
        )
        self._pending.add(task)
        task.add_done_callback(self._done)
        task.add_done_callback(lambda _t: self._booked(busy))

    def _booked(self, spend_ids: list[str]) -> None:
        for spend_id in spend_ids:
            left = self._booking.get(spend_id, 1) - 1
            if left > 0:
                self._booking[spend_id] = left
            else:
                self._booking.pop(spend_id, None)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "could not book spend for a key after %d tries (reconciliation will correct it): %r",
                BOOKING_TRIES,
                task.exception(),
            )

    async def _book(
        self,
        cost: float,
        tokens: int,
        when: float,
        key: VirtualKey,
        reservations: list[_Reservation] | None,
        holder: str,
    ) -> None:
        """Each step is retried on its own, so a step that landed is never repeated."""
        if reservations is not None:
            for r in reservations:
                await _retry(functools.partial(self.counters.settle, r.name, holder, cost, r.ttl))
                if cost and r.subject is not None:
                    await self._alert(r.subject, r)
        elif cost and (key.budget_usd is not None or key.hard_budget_usd is not None):
            await _retry(lambda: self._add_spend(key, cost, when))
        if tokens and key.tpm is not None:
            await _retry(lambda: self.counters.add(f"tpm:{key.id}", tokens, MINUTE))

    async def _alert(self, subject: Budgeted, reservation: _Reservation) -> None:
        """Soft-limit alerts for the spend this booking brought the key or team to."""
        budget = subject.alert_budget
        if self.alerts is None or budget is None:
            return
        try:
            spent = await self.counters.spend_get(reservation.name)
            if spent is None:
                return
            period = subject.budget_period or "total"
            ttl = float(reservation.ttl or 10 * 365 * 86400)
            await self.alerts.check(
                subject.scope,
                subject.id,
                subject.name,
                spent,
                budget,
                period,
                f"{int(reservation.start)}",
                ttl,
            )
        except Exception:
            log.warning(
                "could not check the budget alerts of %s %s", subject.scope, subject.name, exc_info=True
            )

    async def _add_spend(self, key: VirtualKey, cost: float, when: float) -> None:
        await self.spent(key, when)  # make sure the counter exists (initialised from the ledger)
        name, _, ttl = self._spend_name(Budgeted.of_key(key), when)
        await self.counters.spend_add(name, cost, ttl)

    def start(self) -> None:
        """Reconcile the shared spend counters with the ledger, every ``reconcile_interval_s``."""
        if self._task is None and self.ledger is not None:
            self._task = asyncio.ensure_future(self._reconcile_loop())

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.reconcile_interval_s)
            try:
                await self.reconcile()
            except Exception:
                log.warning("could not reconcile spend counters with the ledger", exc_info=True)

    async def reconcile(self) -> int:
        """Raise each recently active key's spend counter to the ledger's sum for its period.

        Only raises: the counter runs ahead of the ledger (bookings land before the ledger's
        next flush), so a counter *below* the ledger means a booking was lost. Keys with a
        booking of this replica still in progress are skipped, so it is not counted twice.
        Returns how many counters were raised.
        """
        if self.ledger is None:
            return 0
        now = self._clock()
        raised = 0
        horizon = now - 2 * self.config.reconcile_interval_s - 3600
        for spend_id, (subject, last) in list(self._active.items()):
            if last < horizon:
                del self._active[spend_id]
                continue
            if self._booking.get(spend_id):
                continue
            name, start, ttl = self._spend_name(subject, now)
            total = await self._ledger_spend(subject, start)
            if await self.counters.spend_raise(name, total, ttl):
                raised += 1
                log.warning(
                    "spend counter of %s %s was below the ledger; raised to %.6f USD",
                    subject.scope,
                    subject.id,
                    total,
                )
        return raised

    async def drain(self) -> None:
        await stop(self._task)
        self._task = None
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


def _spend_id(subject: Budgeted) -> str:
    """How reconciliation names a key (its id, as before teams) or a team (``team:NAME``)."""
    return subject.id if subject.scope == "key" else f"team:{subject.id}"


async def _retry(step: Callable[[], Awaitable[object]]) -> None:
    for attempt in range(BOOKING_TRIES):
        try:
            await step()
            return
        except Exception:
            if attempt == BOOKING_TRIES - 1:
                raise
            await asyncio.sleep(BOOKING_BACKOFF_S * 2**attempt)


def _limited(what: str, now: float) -> RateLimited:
    retry = max(1, int(window_start(now, MINUTE) + MINUTE - now + 0.999))
    return RateLimited(
        f"Rate limit reached for this API key: {what}. Retry after {retry} s.",
        headers={"retry-after": str(retry)},
    )
