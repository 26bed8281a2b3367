"""In-memory totals per provider, from the request records: what the demo prints at its end."""

from __future__ import annotations

from dataclasses import dataclass

from hedge.record import Outcome, RequestRecord


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
        failed = [step.provider for step in rec.route if step.outcome is Outcome.FAILED]
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
