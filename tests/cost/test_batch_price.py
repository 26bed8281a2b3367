"""What a line sent through a provider's native batch API costs: ``batch_*`` prices, else the
interactive price less ``batch_discount``, else the interactive price."""

from __future__ import annotations

import pytest

from hedge.config import Price, PriceOverride, PriceTier
from hedge.cost.pricing import batch_price, cost_usd
from hedge.providers.base import Usage


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (Price(input=2.0, output=8.0), Price(input=2.0, output=8.0)),
        (Price(input=2.0, output=8.0, batch_discount=0.5), Price(input=1.0, output=4.0)),
        (Price(input=2.0, output=8.0, batch_input=0.7, batch_output=3.0), Price(input=0.7, output=3.0)),
        (Price(input=2.0, output=8.0, batch_input=0.7, batch_discount=0.5), Price(input=0.7, output=4.0)),
        (
            Price(input=2.0, output=8.0, cached_input=1.0, batch_discount=0.5),
            Price(input=1.0, output=4.0, cached_input=0.5),
        ),
        (  # every dimension is discounted: cache writes, reasoning, long-context tiers; no service tier
            Price(
                input=2.0,
                output=8.0,
                cache_write_input=2.5,
                reasoning=10.0,
                per_request=0.01,
                tiers=[PriceTier(above_prompt_tokens=200_000, input=4.0, output=16.0)],
                service_tiers={"priority": PriceOverride(input=3.0)},
                batch_discount=0.5,
            ),
            Price(
                input=1.0,
                output=4.0,
                cache_write_input=1.25,
                reasoning=5.0,
                per_request=0.01,
                tiers=[PriceTier(above_prompt_tokens=200_000, input=2.0, output=8.0)],
            ),
        ),
    ],
)
def test_batch_price(price: Price, expected: Price) -> None:
    assert batch_price(price) == expected


def test_a_line_at_half_price_costs_half() -> None:
    usage = Usage(1000, 500, 0)
    price = Price(input=2.0, output=8.0, batch_discount=0.5)
    assert cost_usd(usage, batch_price(price)) == pytest.approx(cost_usd(usage, price) / 2)


def test_a_discount_of_one_or_more_is_refused() -> None:
    with pytest.raises(ValueError):
        Price(input=1.0, batch_discount=1.0)
