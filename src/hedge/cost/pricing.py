"""Pricing a request from its token usage. Prices are USD per million tokens (fees USD per request).

Token classes are priced apart: prompt tokens read from the provider's cache (``cached_input``),
written to it (``cache_write_input``) and the rest (``input``); reasoning tokens (``reasoning``,
output's price unless a price says otherwise) and the other completion tokens (``output``). A long
prompt may switch to a long-context tier and the service tier the upstream served in (``flex``,
``priority``) to its own prices (:meth:`hedge.config.Price.priced_as`).
"""

from __future__ import annotations

from hedge.config import Price, PriceTier
from hedge.providers.base import Usage
from hedge.record import Charges

_PER = 1_000_000.0


def charges(usage: Usage | None, price: Price, service_tier: str | None = None) -> Charges:
    """What one request costs by token class. Without usage only the per-request fee is known."""
    if usage is None:
        return Charges(request=price.priced_as(0, service_tier).per_request)
    tier = usage.service_tier or service_tier
    p = price.priced_as(usage.prompt_tokens, tier)
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
    reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
    return Charges(
        input=(usage.prompt_tokens - cached - written) * p.input / _PER,
        cache_read=cached * p.cached_input / _PER,
        cache_write=written * p.cache_write_input / _PER,
        output=(usage.completion_tokens - reasoning) * p.output / _PER,
        reasoning=reasoning * p.reasoning / _PER,
        request=p.per_request,
    )


def cost_usd(usage: Usage | None, price: Price, service_tier: str | None = None) -> float:
    """Cost of one request in USD (see :func:`charges`)."""
    return charges(usage, price, service_tier).total


def format_usd(value: float) -> str:
    """Header-friendly fixed-point USD, precise to a millionth of a cent."""
    return f"{value:.8f}"


def batch_price(price: Price) -> Price:
    """The price of a line sent through a provider's native batch API: ``batch_input`` and
    ``batch_output`` where given, else the interactive price less ``batch_discount`` (else in full).
    The discount applies to every other dimension too (cache reads and writes, reasoning, long-context
    tiers); service tiers do not exist in a batch."""
    keep = 1.0 - (price.batch_discount or 0.0)

    def cut(value: float | None) -> float | None:
        return value * keep if value is not None else None

    def cut_tier(tier: PriceTier) -> PriceTier:
        fields = ("input", "output", "cached_input", "cache_write_input", "reasoning")
        return tier.model_copy(update={f: cut(getattr(tier, f)) for f in fields})

    return price.model_copy(
        update={
            "input": price.batch_input if price.batch_input is not None else price.input * keep,
            "output": price.batch_output if price.batch_output is not None else price.output * keep,
            "cached_input": cut(price.cached_input),
            "cache_write_input": cut(price.cache_write_input),
            "reasoning": cut(price.reasoning),
            "tiers": [cut_tier(t) for t in price.tiers],
            "service_tiers": {},
            "batch_input": None,
            "batch_output": None,
            "batch_discount": None,
        }
    )
