"""One record per request: the unit the ledger, metrics and the demo all consume."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hedge.access.keys import VirtualKey


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
    cost_usd: float = 0.0
    baseline_cost_usd: float | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    attempts: int = 0
    route: list[str] = field(default_factory=list)
    """Each deployment considered, with why it was left (or ``ok``)."""
    error: str | None = None
    dropped_params: list[str] = field(default_factory=list)
    key_id: str | None = None
    """The virtual key that made the request (None for the master key); never the secret."""
    team: str | None = None
    tags: frozenset[str] = frozenset()
    cache_hit: bool = False
    key: VirtualKey | None = field(default=None, repr=False)
    """The caller's key, for booking its spend; not persisted (the ledger keeps ``key_id``)."""
    started_at: float = field(default_factory=time.time)
    request_body: bytes | None = field(default=None, repr=False)
    """The client's request body, set only with ``server.log_bodies`` (for the body log; never headers)."""
    response_body: bytes | None = field(default=None, repr=False)
    """The response body sent to the client (a stream's events), set only with ``server.log_bodies``."""


Sink = Callable[[RequestRecord], None]

# Route entries that record a deployment skipped without sending anything.
_NOT_ATTEMPTS = {
    "ok",
    "circuit_open",
    "circuit_half_open",
    "cooling_down",
    "retry_budget_exhausted",
    "cancelled",
}


@dataclass(slots=True)
class Totals:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    failed_attempts: int = 0
    """Attempts on this provider that failed and were failed over (or retried)."""
    failovers: int = 0
    """Requests served only after at least one failed attempt."""


class Aggregator:
    """In-memory totals per provider; cheap enough to sit on the request path."""

    def __init__(self) -> None:
        self.by_provider: dict[str, Totals] = {}
        self.total = Totals()

    def __call__(self, rec: RequestRecord) -> None:
        failed = [
            dep.partition("/")[0]
            for dep, _, reason in (entry.partition("=") for entry in rec.route)
            if reason and reason not in _NOT_ATTEMPTS and not dep.startswith("escalate:")
        ]
        for provider in failed:
            self.by_provider.setdefault(provider, Totals()).failed_attempts += 1
        self.total.failed_attempts += len(failed)
        if failed and rec.status < 400:
            self.total.failovers += 1
        for t in (self.by_provider.setdefault(rec.provider or "-", Totals()), self.total):
            t.requests += 1
            t.errors += rec.status >= 400
            t.prompt_tokens += rec.prompt_tokens
            t.completion_tokens += rec.completion_tokens
            t.cost_usd += rec.cost_usd
            t.baseline_cost_usd += (
                rec.baseline_cost_usd if rec.baseline_cost_usd is not None else rec.cost_usd
            )
