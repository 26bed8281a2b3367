"""Pricing: a request's cost from its usage and the deployment's price, cached input included."""

from __future__ import annotations

import pytest

from hedge.config import Price
from hedge.cost.pricing import charges, cost_usd
from hedge.providers.base import Usage
from hedge.record import Charges


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


CLAUDE = Price(
    input=3,
    output=15,
    cached_input=0.3,
    cache_write_input=3.75,
    tiers=[
        {
            "above_prompt_tokens": 200_000,
            "input": 6,
            "output": 22.5,
            "cached_input": 0.6,
            "cache_write_input": 7.5,
        }
    ],
)
GPT5 = Price(
    input=1.25,
    output=10,
    cached_input=0.125,
    service_tiers={
        "flex": {"input": 0.625, "output": 5, "cached_input": 0.0625},
        "priority": {"input": 2.5, "output": 20},
    },
)


@pytest.mark.parametrize(
    ("usage", "price", "tier", "expected"),
    [
        # cache writes at their own price, reads at theirs, the rest of the prompt at input's
        (
            Usage(1000, 0, cached_tokens=400, cache_write_tokens=200),
            CLAUDE,
            None,
            Charges(400 * 3e-6, 400 * 0.3e-6, 200 * 3.75e-6),
        ),
        # a cache write without its own price is billed as input
        (
            Usage(1000, 0, cache_write_tokens=200),
            Price(input=1),
            None,
            Charges(input=800e-6, cache_write=200e-6),
        ),
        # reasoning tokens are part of the completion, priced as output unless a price says otherwise
        (
            Usage(0, 100, reasoning_tokens=40),
            Price(output=10),
            None,
            Charges(output=60 * 10e-6, reasoning=40 * 10e-6),
        ),
        (
            Usage(0, 100, reasoning_tokens=40),
            Price(output=10, reasoning=2),
            None,
            Charges(output=600e-6, reasoning=80e-6),
        ),
        # above 200k prompt tokens every token is priced at the long-context tier
        (Usage(200_001, 1000), CLAUDE, None, Charges(input=200_001 * 6e-6, output=1000 * 22.5e-6)),
        (Usage(200_000, 1000), CLAUDE, None, Charges(input=200_000 * 3e-6, output=1000 * 15e-6)),
        # the service tier the upstream reports wins over the one asked for
        (
            Usage(1000, 100, cached_tokens=200, service_tier="flex"),
            GPT5,
            "priority",
            Charges(800 * 0.625e-6, 200 * 0.0625e-6, 0, 100 * 5e-6),
        ),
        (Usage(1000, 100), GPT5, "priority", Charges(input=1000 * 2.5e-6, output=100 * 20e-6)),
        # a tier without prices of its own is billed at the base price; unknown fields stay
        (
            Usage(1000, 100, cached_tokens=500),
            GPT5,
            "scale",
            Charges(500 * 1.25e-6, 500 * 0.125e-6, 0, 100 * 10e-6),
        ),
        # a per-request fee is charged even when the upstream reported no usage
        (Usage(1000, 0), Price(input=1, per_request=0.005), None, Charges(input=1000e-6, request=0.005)),
        (None, Price(input=1, per_request=0.005), None, Charges(request=0.005)),
        # counts beyond the prompt cannot make a class negative
        (
            Usage(100, 0, cached_tokens=80, cache_write_tokens=80),
            CLAUDE,
            None,
            Charges(0, 80 * 0.3e-6, 20 * 3.75e-6),
        ),
    ],
)
def test_charges_by_token_class(
    usage: Usage | None, price: Price, tier: str | None, expected: Charges
) -> None:
    got = charges(usage, price, tier)
    for name in ("input", "cache_read", "cache_write", "output", "reasoning", "request"):
        assert getattr(got, name) == pytest.approx(getattr(expected, name)), name
    assert cost_usd(usage, price, tier) == pytest.approx(expected.total)


def test_one_price_resolves_each_case_on_its_own_and_stays_equal_to_its_twin() -> None:
    """Resolved prices are kept per price object: the cases must not bleed into each other."""

    def make() -> Price:
        return Price(
            input=1,
            output=2,
            tiers=[{"above_prompt_tokens": 1000, "input": 9}, {"above_prompt_tokens": 100, "input": 5}],
            service_tiers={"flex": {"input": 0.5}, "priority": {"output": 4}},
        )

    price = make()
    cases = [
        (10, None, 1, 2),
        (500, None, 5, 2),
        (5000, None, 9, 2),
        (10, "flex", 0.5, 2),
        (5000, "flex", 9, 2),  # the long-context tier is applied over the service tier
        (10, "priority", 1, 4),
        (10, "unknown", 1, 2),
    ]
    for _ in range(2):  # the second round is answered from what the first resolved
        for prompt, tier, inp, out in cases:
            flat = price.priced_as(prompt, tier)
            assert (flat.input, flat.output) == (inp, out), (prompt, tier)
            assert (flat.cached_input, flat.reasoning) == (inp, out), "unpriced: input's and output's"
    assert price == make()
