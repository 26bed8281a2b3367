"""Reading LiteLLM's and OpenRouter's public price lists (small files in their real formats, see
fixtures/README.md) into catalogue prices: USD per million tokens, every dimension they give."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from hedge.cost.formats import litellm, openrouter, read_format

FIXTURES = Path(__file__).parent / "fixtures"


def _load(name: str) -> object:
    return orjson.loads((FIXTURES / name).read_bytes())


def test_litellm_prices_every_dimension() -> None:
    entries = litellm(_load("litellm_prices.json"), "litellm:test", "2026-12-01")
    assert set(entries) == {"claude-sonnet-4-5", "gpt-5", "mock-small"}  # no sample_spec, no image model
    claude, window = entries["claude-sonnet-4-5"]
    assert (claude.input, claude.output) == pytest.approx((3.0, 15.0))
    assert claude.cached_input == pytest.approx(0.3)
    assert claude.cache_write_input == pytest.approx(3.75)
    assert window == 200_000
    [tier] = claude.tiers
    assert tier.above_prompt_tokens == 200_000
    assert (tier.input, tier.output, tier.cached_input, tier.cache_write_input) == pytest.approx(
        (6.0, 22.5, 0.6, 7.5)
    )
    assert claude.source == "litellm:test" and claude.as_of == "2026-12-01"
    gpt, window = entries["gpt-5"]
    assert window == 272_000
    assert gpt.cache_write_input is None and gpt.reasoning is None  # unset: input's and output's price
    flex, priority = gpt.service_tiers["flex"], gpt.service_tiers["priority"]
    assert (flex.input, flex.output, flex.cached_input) == pytest.approx((0.625, 5.0, 0.0625))
    assert (priority.input, priority.output, priority.cached_input) == pytest.approx((2.5, 20.0, 0.25))


def test_openrouter_prices_fees_and_skips_variable_prices() -> None:
    entries = openrouter(_load("openrouter_models.json"), "openrouter:test", "2026-12-01")
    assert set(entries) == {"openai/gpt-4o", "perplexity/sonar"}  # openrouter/auto's "-1": varies
    gpt, window = entries["openai/gpt-4o"]
    assert (gpt.input, gpt.output, gpt.cached_input) == pytest.approx((2.5, 10.0, 1.25))
    assert gpt.cache_write_input is None and gpt.reasoning is None and gpt.per_request == 0
    assert window == 128_000
    sonar, _ = entries["perplexity/sonar"]
    assert sonar.per_request == pytest.approx(0.005)


@pytest.mark.parametrize(
    ("fmt", "data"),
    [("litellm", []), ("openrouter", {"models": []}), ("openrouter", []), ("yaml", {})],
)
def test_wrong_shapes_are_a_clear_error(fmt: str, data: object) -> None:
    with pytest.raises(ValueError):
        read_format(fmt, data, "x", "2026-12-01")
