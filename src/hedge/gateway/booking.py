"""What one answer costs: the usage translation reported, at the price in force, and against the
alias's baseline. The one place the pipeline turns tokens into money (whole answers, streams and
cache hits alike), so a request is never priced two ways.

The record keeps the token classes apart (cache reads, cache writes, reasoning) and the cost by
class (:class:`hedge.record.Charges`), and says when the money is not what the request cost: the
deployment had no price (``price_missing``) or the upstream reported no usage (``usage_missing``).
"""

from __future__ import annotations

from hedge.config import Price
from hedge.cost.pricing import charges, cost_usd
from hedge.providers.base import Usage
from hedge.record import NO_CHARGES, RequestRecord


def book(
    record: RequestRecord,
    usage: Usage | None,
    price: Price,
    baseline: Price | None,
    *,
    unpriced: bool = False,
    estimated: bool = False,
) -> None:
    """Set the record's tokens, cost and baseline cost from ``usage`` (``None``: the provider sent
    none, so only a per-request fee is booked). Impossible counts are clamped first
    (:meth:`Usage.sane`). ``unpriced``: the deployment has no price, so the cost is not known;
    ``estimated``: ``usage`` is the gateway's estimate, not the upstream's report."""
    if usage is not None:
        usage = usage.sane(f"{record.provider}/{record.model}")
        record.prompt_tokens = usage.prompt_tokens + record.lost_prompt_tokens
        record.completion_tokens = usage.completion_tokens + record.lost_completion_tokens
        record.cached_tokens = usage.cached_tokens
        record.cache_write_tokens = usage.cache_write_tokens
        record.reasoning_tokens = usage.reasoning_tokens
        if usage.service_tier is not None:
            record.service_tier = usage.service_tier
    billed = charges(usage, price, record.service_tier)
    record.charges = billed if record.lost_charges is NO_CHARGES else billed + record.lost_charges
    record.cost_usd = record.charges.total
    record.price_missing = unpriced
    record.usage_missing = usage is None or estimated
    if baseline is not None:
        record.baseline_cost_usd = cost_usd(usage, baseline, record.service_tier)


def book_lost(record: RequestRecord, usage: Usage, price: Price) -> None:
    """An attempt that lost a hedged request's race: its provider bills it all the same, so its
    cost and tokens are added to the request's, before or after the winner's :func:`book`."""
    usage = usage.sane(f"{record.provider}/{record.model}")
    lost = charges(usage, price)
    record.lost_charges += lost
    record.lost_cost_usd += lost.total
    record.lost_prompt_tokens += usage.prompt_tokens
    record.lost_completion_tokens += usage.completion_tokens
    record.charges += lost
    record.cost_usd = record.charges.total
    record.prompt_tokens += usage.prompt_tokens
    record.completion_tokens += usage.completion_tokens


def book_cache_hit(record: RequestRecord, usage: Usage, baseline: Price | None) -> None:
    """A cached answer costs nothing; the baseline still shows what it would have cost."""
    record.prompt_tokens = record.completion_tokens = record.cached_tokens = 0
    record.cost_usd = 0.0
    if baseline is not None:
        record.baseline_cost_usd = cost_usd(usage, baseline)
