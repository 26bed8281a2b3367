"""Pricing: a request's cost from its usage and the deployment's price, cached input included."""

from __future__ import annotations

import pytest

from hedge.config import Price
from hedge.cost.pricing import cost_usd
from hedge.providers.base import Usage


@pytest.mark.parametrize(
    ("usage", "price", "expected"),
    [
        (Usage(1_000_000, 0), Price(input=2.5, output=10), 2.5),
        (Usage(0, 1_000_000), Price(input=2.5, output=10), 10.0),
        (Usage(1000, 500), Price(input=0.35, output=0.40), (1000 * 0.35 + 500 * 0.40) / 1e6),
        (Usage(1000, 0, cached_tokens=400), Price(input=1, output=0, cached_input=0.1), (600 + 40) / 1e6),
        (Usage(1000, 0, cached_tokens=400), Price(input=1, output=0), 1000 / 1e6),
        (None, Price(input=1, output=1), 0.0),
    ],
)
def test_cost(usage: Usage | None, price: Price, expected: float) -> None:
    assert cost_usd(usage, price) == pytest.approx(expected)
