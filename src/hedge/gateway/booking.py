"""What one answer costs: the usage translation reported, at the price in force, and against the
alias's baseline. The one place the pipeline turns tokens into money (whole answers, streams and
cache hits alike), so a request is never priced two ways."""

from __future__ import annotations

from hedge.config import Price
from hedge.cost.pricing import cost_usd
from hedge.providers.base import Usage
from hedge.record import RequestRecord


def book(record: RequestRecord, usage: Usage | None, price: Price, baseline: Price | None) -> None:
    """Set the record's tokens, cost and baseline cost from ``usage`` (``None``: the provider sent
    none, so the cost is 0). Impossible counts are clamped first (:meth:`Usage.sane`)."""
    if usage is not None:
        usage = usage.sane(f"{record.provider}/{record.model}")
        record.prompt_tokens = usage.prompt_tokens + record.lost_prompt_tokens
        record.completion_tokens = usage.completion_tokens + record.lost_completion_tokens
        record.cached_tokens = usage.cached_tokens
    record.cost_usd = cost_usd(usage, price) + record.lost_cost_usd
    if baseline is not None:
        record.baseline_cost_usd = cost_usd(usage, baseline)


def book_lost(record: RequestRecord, usage: Usage, price: Price) -> None:
    """An attempt that lost a hedged request's race: its provider bills it all the same, so its
    cost and tokens are added to the request's, before or after the winner's :func:`book`."""
    usage = usage.sane(f"{record.provider}/{record.model}")
    cost = cost_usd(usage, price)
    record.lost_cost_usd += cost
    record.lost_prompt_tokens += usage.prompt_tokens
    record.lost_completion_tokens += usage.completion_tokens
    record.cost_usd += cost
    record.prompt_tokens += usage.prompt_tokens
    record.completion_tokens += usage.completion_tokens


def book_cache_hit(record: RequestRecord, usage: Usage, baseline: Price | None) -> None:
    """A cached answer costs nothing; the baseline still shows what it would have cost."""
    record.prompt_tokens = record.completion_tokens = record.cached_tokens = 0
    record.cost_usd = 0.0
    if baseline is not None:
        record.baseline_cost_usd = cost_usd(usage, baseline)
