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
