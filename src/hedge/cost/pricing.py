"""Pricing a request from its token usage. Prices are USD per million tokens."""

from __future__ import annotations

from hedge.config import Price
from hedge.providers.base import Usage

_PER = 1_000_000.0


def cost_usd(usage: Usage | None, price: Price) -> float:
    """Cost of one request; cached prompt tokens use ``cached_input`` when the price has one."""
    if usage is None:
        return 0.0
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    cached_price = price.cached_input if price.cached_input is not None else price.input
    total = (
        (usage.prompt_tokens - cached) * price.input
        + cached * cached_price
        + usage.completion_tokens * price.output
    )
    return total / _PER


def format_usd(value: float) -> str:
    """Header-friendly fixed-point USD, precise to a millionth of a cent."""
    return f"{value:.8f}"


def batch_price(price: Price) -> Price:
    """The price of a line sent through a provider's native batch API: ``batch_input`` and
    ``batch_output`` where given, else the interactive price less ``batch_discount`` (else in full)."""
    keep = 1.0 - (price.batch_discount or 0.0)
    return Price(
        input=price.batch_input if price.batch_input is not None else price.input * keep,
        output=price.batch_output if price.batch_output is not None else price.output * keep,
        cached_input=price.cached_input * keep if price.cached_input is not None else None,
    )
