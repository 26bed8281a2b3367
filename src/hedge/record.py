"""The request record and its route trace: the one value every consumer of a finished request reads.

The gateway pipeline (:mod:`hedge.gateway`) fills one :class:`RequestRecord` per request and
hands it to the sinks (ledger, metrics, access log, tracing, the key's spend) once it is final.
It is a leaf value: ids and numbers, never live objects, so any layer may read it and it can be
stored or sent as it is.

The route trace is typed: each :class:`RouteStep` names a deployment (or the cache, or an
escalation target) and an :class:`Outcome`, so nothing parses ``"id=reason"`` strings back.
:func:`render_route` is the one place that spells a trace the way ``x-hedge-route``, the access
log and the spans show it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class _RequestIds:
    """Request ids that sort by time: 12 hex digits of the millisecond, then 12 random ones.

    The ledger's primary key indexes them, and a B-tree takes keys that arrive in order at its right
    edge: with random ids every insert landed on a page of its own, and inserting the ledger's rows
    took twice the CPU (30 µs a row against 15 at 200,000 rows, a gap that grows with the table,
    since its index then outgrows the page cache). 48 random bits per millisecond keep ids unique
    across replicas (a clash needs millions in one millisecond) and unguessable. The random part is
    read from the OS a few kilobytes at a time, one ``urandom`` call per 512 ids; a forked child
    starts with an empty pool, so workers never hand out the same ids."""

    SIZE = 6
    BATCH = 512

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._pool, self._at = b"", 0

    def next(self) -> str:
        if self._at >= len(self._pool):
            self._pool, self._at = os.urandom(self.SIZE * self.BATCH), 0
        at = self._at
        self._at = at + self.SIZE
        return f"req_{int(time.time() * 1000):012x}{self._pool[at : at + self.SIZE].hex()}"


_ids = _RequestIds()


def new_request_id() -> str:
    """A new request's id: ``req_`` and 24 hex digits, in time order (see :class:`_RequestIds`)."""
    return _ids.next()


class Outcome(StrEnum):
    """What became of one deployment (or the cache, or an escalation) on a request's route."""

    OK = "ok"
    """It answered (for a stream: it sent its first token)."""
    FAILED = "failed"
    """It was tried and failed; the step's ``detail`` is the error code (or status)."""
    CANCELLED = "cancelled"
    """It was being tried when the client left or the request's deadline passed."""
    NOT_CONFORMANT = "not_conformant"
    """Held back by the conformance gate: it has not passed its required cases."""
    CIRCUIT_OPEN = "circuit_open"
    CIRCUIT_HALF_OPEN = "circuit_half_open"
    """Its half-open breaker already has its trial request in flight."""
    COOLING_DOWN = "cooling_down"
    """Paused for an upstream's Retry-After."""
    RETRY_BUDGET_EXHAUSTED = "retry_budget_exhausted"
    CACHE_HIT = "cache_hit"
    """Served from the response cache (the step's deployment is ``cache``)."""
    ESCALATED = "escalated"
    """The answer was escalated; the step's deployment is the target alias, ``detail`` the reason."""
    HEDGE_LOST = "hedge_lost"
    """A hedged request was sent here too, and the other deployment answered first: this attempt
    was cancelled (and booked as the provider bills it)."""

    @property
    def skipped(self) -> bool:
        """Left without a request sent to it (a blocked breaker, a paused or exhausted budget)."""
        return self in _SKIPS

    @property
    def attempted(self) -> bool:
        """A request was sent to the deployment (whatever came of it)."""
        return self in _ATTEMPTS


# Module names for members read on every request: on Python 3.11 ``Outcome.OK`` goes through
# EnumType's ``__getattr__`` hook, a slow attribute path (about 0.2 µs; 3.12 dropped the hook).
OK, FAILED, CANCELLED = Outcome.OK, Outcome.FAILED, Outcome.CANCELLED
ESCALATED, CACHE_HIT, HEDGE_LOST = Outcome.ESCALATED, Outcome.CACHE_HIT, Outcome.HEDGE_LOST

_SKIPS = frozenset(
    {
        Outcome.CIRCUIT_OPEN,
        Outcome.CIRCUIT_HALF_OPEN,
        Outcome.COOLING_DOWN,
        Outcome.RETRY_BUDGET_EXHAUSTED,
    }
)
_ATTEMPTS = frozenset({Outcome.OK, Outcome.FAILED, Outcome.CANCELLED, Outcome.HEDGE_LOST})


@dataclass(frozen=True, slots=True)
class RouteStep:
    """One entry of a route trace: ``target`` is a deployment id (``provider/model``), ``cache``, or
    for :attr:`Outcome.ESCALATED` the alias escalated to."""

    target: str
    outcome: Outcome
    detail: str = ""
    """For :attr:`Outcome.FAILED` the error code (or status); for an escalation its reason."""

    @property
    def reason(self) -> str:
        """The short word the trace shows after ``=``: the error code for a failure, else the outcome."""
        return self.detail if self.outcome is FAILED else str(self.outcome)

    @property
    def failed(self) -> bool:
        """An attempt that did not answer: failed, or cut off by the client or the deadline."""
        return self.outcome is FAILED or self.outcome is CANCELLED

    @property
    def provider(self) -> str:
        return self.target.partition("/")[0]

    def __str__(self) -> str:
        if self.outcome is ESCALATED:
            return f"escalate:{self.detail}->{self.target}"
        if self.outcome is CACHE_HIT:
            return "cache=hit"
        return f"{self.target}={self.reason}"


def render_route(route: Iterable[RouteStep]) -> str:
    """The trace as ``x-hedge-route`` (and the spans) show it: ``"a/m=upstream_timeout, b/m=ok"``."""
    return ", ".join(str(step) for step in route)


@dataclass(frozen=True, slots=True)
class Charges:
    """What a request cost (USD), by what was charged, so a report can show where money went; the
    parts add up to the record's ``cost_usd``."""

    input: float = 0.0
    """Prompt tokens neither read from nor written to the provider's cache."""
    cache_read: float = 0.0
    cache_write: float = 0.0
    output: float = 0.0
    """Completion tokens other than reasoning tokens."""
    reasoning: float = 0.0
    request: float = 0.0
    """The provider's per-request fee."""

    @property
    def total(self) -> float:
        return self.input + self.cache_read + self.cache_write + self.output + self.reasoning + self.request

    def __add__(self, other: Charges) -> Charges:
        return Charges(
            self.input + other.input,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.output + other.output,
            self.reasoning + other.reasoning,
            self.request + other.request,
        )


NO_CHARGES = Charges()
"""Nothing charged: shared (a ``Charges`` is never changed in place), so a record costs no new one."""


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    endpoint: str
    alias: str
    provider: str | None = None
    model: str | None = None
    status: int = 200
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens read from the provider's prompt cache (part of ``prompt_tokens``)."""
    cache_write_tokens: int = 0
    """Prompt tokens written to the provider's prompt cache (part of ``prompt_tokens``)."""
    reasoning_tokens: int = 0
    """Reasoning (thinking) tokens (part of ``completion_tokens``)."""
    service_tier: str | None = None
    """The service tier asked for, then the one the upstream says it served in (``flex``, ``priority``)."""
    cost_usd: float = 0.0
    charges: Charges = NO_CHARGES
    """``cost_usd`` by token class (and the per-request fee)."""
    price_missing: bool = False
    """The deployment had no price (in the config or the catalogue): ``cost_usd`` is 0, not its cost."""
    usage_missing: bool = False
    """The upstream reported no usage: the tokens are 0 (or, for a stream cut short, an estimate)."""
    baseline_cost_usd: float | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    attempts: int = 0
    route: list[RouteStep] = field(default_factory=list)
    """Each deployment considered, with what became of it."""
    error: str | None = None
    dropped_params: list[str] = field(default_factory=list)
    emulated_params: list[str] = field(default_factory=list)
    """Parameters the gateway honoured itself for the answering provider (``x-hedge-emulated``)."""
    key_id: str | None = None
    """The virtual key that made the request (None for the master key); never the secret."""
    team: str | None = None
    tags: frozenset[str] = frozenset()
    cache_hit: bool = False
    experiment: str | None = None
    """The experiment that assigned this request an arm (``experiments:`` in the config)."""
    arm: str | None = None
    shadow: bool = False
    """A shadow copy of another request, sent to a candidate off that request's path: booked apart,
    never on a key's budget."""
    lost_cost_usd: float = 0.0
    """What the attempts that lost a hedged request's race were billed (already in ``cost_usd``)."""
    lost_charges: Charges = NO_CHARGES
    """The same by class (already in ``charges``)."""
    lost_prompt_tokens: int = 0
    lost_completion_tokens: int = 0
    budget: str | None = None
    """``fallback`` when the key or team was over its budget and the request went to its fallback alias."""
    batch_id: str | None = None
    """The batch (``/v1/batches``) this request is a line of; None for interactive traffic."""
    started_at: float = field(default_factory=time.time)
    request_body: bytes | None = field(default=None, repr=False)
    """The client's request body, set only with ``server.log_bodies`` (for the body log; never headers)."""
    response_body: bytes | None = field(default=None, repr=False)
    """The response body sent to the client (a stream's events), set only with ``server.log_bodies``."""

    @property
    def deployment(self) -> str | None:
        """The id of the deployment that served (or last tried) the request."""
        return f"{self.provider}/{self.model}" if self.provider is not None else None


Sink = Callable[[RequestRecord], None]
"""Something that consumes finished records (the ledger, metrics, the access log ...)."""
