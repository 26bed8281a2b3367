"""An OpenAI Agents SDK agent with a function tool, end to end through Hedge, on Anthropic- and
Gemini-style upstreams. The SDK's default model class speaks the Responses API, so this drives
``/v1/responses`` (tool call, ``function_call_output`` round trip) as a real agent framework does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import agents  # openai-agents, a dev extra
import pytest

from conftest import MASTER_KEY, Gateway, Mock, start_gateway

UPSTREAMS = {"claude": ("anthropic", "claude-sonnet-4-5"), "gemini": ("gemini", "gemini-2.0-flash")}
PRICE = {"input": 1.0, "output": 2.0}


@pytest.fixture(scope="module")
def gateway(style_mocks: dict[str, Mock], logs: Path) -> Iterator[Gateway]:
    config: dict[str, Any] = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            style: {"style": style, "base_url": style_mocks[style].url, "api_key": f"key-{style}"}
            for style, _ in UPSTREAMS.values()
        },
        "models": {
            alias: {"deployments": [{"provider": style, "model": model, "price": PRICE}]}
            for alias, (style, model) in UPSTREAMS.items()
        },
        "resilience": {"max_attempts": 1},
    }
    gw = start_gateway(config, logs)
    yield gw
    gw.stop()


@pytest.mark.parametrize("alias", sorted(UPSTREAMS))
async def test_an_agent_calls_its_tool_and_answers(gateway: Gateway, alias: str) -> None:
    from openai import AsyncOpenAI

    calls: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        calls.append(city)
        return f"sunny and 21 C in {city}"

    client = AsyncOpenAI(base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=30)
    agent = agents.Agent(
        name="weather",
        instructions="Answer weather questions with the get_weather tool.",
        tools=[get_weather],
        model=agents.OpenAIResponsesModel(model=alias, openai_client=client),
    )
    agents.set_tracing_disabled(True)
    result = await agents.Runner.run(agent, "What is the weather in Paris?")
    assert calls, "the agent called its tool through the gateway"
    assert "the tool returned" in result.final_output and "sunny and 21 C" in result.final_output
    kinds = [item.type for item in result.new_items]
    assert kinds[:3] == ["tool_call_item", "tool_call_output_item", "message_output_item"]
