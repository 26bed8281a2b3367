"""Thinking content through the gateway with the official SDKs (issue 14, point 4): shown to a client
that asked for reasoning, and Claude's thinking blocks carried back into a tool conversation.

The Anthropic mock refuses, word for word as the real API does, a tool result after a thinking +
tool_use turn whose thinking block is missing; so a conversation that loses them fails here."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from conftest import MASTER_KEY, REDIS_URL, Gateway, Mock, start_gateway, start_mock
from hedge.mock.anthropic_style import THINKING
from hedge.mock.gemini_style import THOUGHT

Setup = tuple[Gateway, Mock, Mock, Mock]

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ASK: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
HI: list[Any] = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def setup(logs: Path) -> Iterator[Setup]:
    an = start_mock("anthropic", logs)
    oa = start_mock("openai", logs)
    ge = start_mock("gemini", logs)
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "claude": {"style": "anthropic", "base_url": an.url, "api_key": "sk-ant"},
            "oa": {"style": "openai", "base_url": f"{oa.url}/v1", "api_key": "sk-oa"},
            "ge": {"style": "gemini", "base_url": ge.url, "api_key": "g"},
        },
        "models": {
            "sonnet": {"deployments": [{"provider": "claude", "model": "claude-sonnet-4-5"}]},
            "opus": {"deployments": [{"provider": "claude", "model": "claude-opus-4-6"}]},
            "gpt": {"deployments": [{"provider": "oa", "model": "gpt-4o"}]},
            "flash": {"deployments": [{"provider": "ge", "model": "gemini-2.5-flash"}]},
        },
    }
    gw = start_gateway(config, logs)
    yield gw, an, oa, ge
    gw.stop()
    for mock in (an, oa, ge):
        mock.stop()


def _oa(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0)


def _extra(obj: Any) -> dict[str, Any]:
    return dict(obj.model_extra or {})


@pytest.mark.parametrize(("alias", "thought"), [("sonnet", THINKING), ("opus", THINKING), ("flash", THOUGHT)])
def test_reasoning_content_when_asked_and_only_then(setup: Setup, alias: str, thought: str) -> None:
    gw = setup[0]
    asked = _oa(gw).chat.completions.create(model=alias, messages=HI, reasoning_effort="low")
    assert _extra(asked.choices[0].message)["reasoning_content"] == thought
    assert thought not in (asked.choices[0].message.content or "")
    plain = _oa(gw).chat.completions.create(model=alias, messages=HI)
    assert "reasoning_content" not in _extra(plain.choices[0].message)
    assert "reasoning_details" not in _extra(plain.choices[0].message)

    streamed = ""
    stream = _oa(gw).chat.completions.create(model=alias, messages=HI, reasoning_effort="low", stream=True)
    for chunk in stream:
        for choice in chunk.choices:
            streamed += _extra(choice.delta).get("reasoning_content") or ""
    assert streamed == thought
    for chunk in _oa(gw).chat.completions.create(model=alias, messages=HI, stream=True):
        for choice in chunk.choices:
            assert "reasoning_content" not in _extra(choice.delta)


def test_thinking_in_the_extra_body_is_asking_too(setup: Setup) -> None:
    gw = setup[0]
    done = _oa(gw).chat.completions.create(
        model="sonnet",
        messages=HI,
        max_completion_tokens=4096,
        extra_body={"thinking": {"type": "enabled", "budget_tokens": 2048}},
    )
    details = _extra(done.choices[0].message)["reasoning_details"]
    assert details[0]["type"] == "reasoning.text" and details[0]["text"] == THINKING
    assert details[0]["signature"] and details[0]["format"] == "anthropic-claude-v1"


def test_the_anthropic_mock_refuses_a_tool_result_without_the_thinking_block(setup: Setup) -> None:
    an = setup[1]
    claude = anthropic.Anthropic(base_url=an.url, api_key="sk-ant", max_retries=0)
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    tool: Any = {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}
    first = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=2048, messages=ASK, tools=[tool], thinking=thinking
    )
    assert first.content[0].type == "thinking"
    use = next(b for b in first.content if b.type == "tool_use")
    result: Any = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C"}],
    }
    without: Any = [b.model_dump() for b in first.content if b.type != "thinking"]
    with pytest.raises(anthropic.BadRequestError, match="Expected `thinking` or `redacted_thinking`"):
        claude.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=2048,
            messages=[*ASK, {"role": "assistant", "content": without}, result],
            tools=[tool],
            thinking=thinking,
        )
    whole: Any = [b.model_dump() for b in first.content]
    claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=2048,
        messages=[*ASK, {"role": "assistant", "content": whole}, result],
        tools=[tool],
        thinking=thinking,
    )


def _first_turn(gw: Gateway, stream: bool) -> dict[str, Any]:
    """Claude's tool-calling turn with reasoning, as the assistant message an openai SDK user sends back."""
    client = _oa(gw)
    if not stream:
        done = client.chat.completions.create(
            model="sonnet", messages=ASK, tools=[WEATHER], reasoning_effort="low"
        )
        return done.choices[0].message.model_dump(exclude_none=True)
    calls: dict[int, dict[str, Any]] = {}
    details: list[Any] = []
    text = ""
    for chunk in client.chat.completions.create(
        model="sonnet", messages=ASK, tools=[WEATHER], reasoning_effort="low", stream=True
    ):
        for choice in chunk.choices:
            text += _extra(choice.delta).get("reasoning_content") or ""
            details.extend(_extra(choice.delta).get("reasoning_details") or [])
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"type": "function", "function": {"arguments": ""}})
                if call.id:
                    entry["id"] = call.id
                if call.function and call.function.name:
                    entry["function"]["name"] = call.function.name
                if call.function and call.function.arguments:
                    entry["function"]["arguments"] += call.function.arguments
    assert text == THINKING
    return {"role": "assistant", "tool_calls": list(calls.values()), "reasoning_details": details}


@pytest.mark.parametrize("stream", [False, True])
def test_claude_tool_conversation_with_reasoning_continues(setup: Setup, stream: bool) -> None:
    gw = setup[0]
    message = _first_turn(gw, stream)
    assert any(d.get("signature") for d in message["reasoning_details"])
    call_id = message["tool_calls"][0]["id"]
    answer = {"role": "tool", "tool_call_id": call_id, "content": '{"temp_c": 18}'}
    client = _oa(gw)
    # As the openai SDK user sends it back: reasoning_details round-trip on the message.
    done = client.chat.completions.create(
        model="sonnet", messages=[*ASK, message, answer], tools=[WEATHER], reasoning_effort="low"
    )
    assert done.choices[0].finish_reason == "stop" and done.choices[0].message.content
    # A client that rebuilds the message from id, name and arguments only: the gateway kept the blocks.
    rebuilt = {"role": "assistant", "content": None, "tool_calls": message["tool_calls"]}
    done = client.chat.completions.create(
        model="sonnet", messages=[*ASK, rebuilt, answer], tools=[WEATHER], reasoning_effort="low"
    )
    assert done.choices[0].message.content
    # The same conversation on another provider: Claude's thinking is dropped cleanly.
    for alias in ("gpt", "flash"):
        done = client.chat.completions.create(model=alias, messages=[*ASK, message, answer], tools=[WEATHER])
        assert done.choices[0].message.content, alias


# -- /v1/messages: Anthropic-SDK clients --------------------------------------------------------------


def _an(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)


TOOL: Any = {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}
BUDGET: Any = {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize("stream", [False, True])
def test_messages_thinking_blocks_whole_and_streamed_and_the_tool_loop_continues(
    setup: Setup, stream: bool
) -> None:
    client = _an(gw=setup[0])
    if stream:
        with client.messages.stream(
            model="sonnet", max_tokens=2048, messages=ASK, tools=[TOOL], thinking=BUDGET
        ) as events:
            kinds = {e.delta.type for e in events if e.type == "content_block_delta"}
            first = events.get_final_message()
        assert {"thinking_delta", "signature_delta"} <= kinds
    else:
        first = client.messages.create(
            model="sonnet", max_tokens=2048, messages=ASK, tools=[TOOL], thinking=BUDGET
        )
    assert first.content[0].type == "thinking"
    assert first.content[0].thinking == THINKING and first.content[0].signature
    use = next(b for b in first.content if b.type == "tool_use")
    result: Any = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C"}],
    }
    # The Anthropic mock refuses this turn if the thinking block did not come back to it.
    done = client.messages.create(
        model="sonnet",
        max_tokens=2048,
        messages=[*ASK, {"role": "assistant", "content": first.content}, result],
        tools=[TOOL],
        thinking=BUDGET,
    )
    assert done.content[0].type == "thinking" and any(b.type == "text" for b in done.content)
    plain = client.messages.create(model="sonnet", max_tokens=64, messages=HI)
    assert all(b.type == "text" for b in plain.content)


def test_messages_thinking_from_gemini_is_left_out(setup: Setup) -> None:
    """Gemini's thought summaries have no signature a thinking block could carry."""
    client = _an(gw=setup[0])
    done = client.messages.create(model="flash", max_tokens=2048, messages=HI, thinking=BUDGET)
    assert [b.type for b in done.content] == ["text"]
    with client.messages.stream(model="flash", max_tokens=2048, messages=HI, thinking=BUDGET) as events:
        assert [b.type for b in events.get_final_message().content] == ["text"]


def test_thinking_on_claude_after_a_tool_turn_without_thinking_is_handled_by_policy(setup: Setup) -> None:
    """A tool loop begun on Gemini (or on Claude without reasoning) has no thinking block Claude could
    be given back, and Claude refuses to think then: refused by policy, or dropped and named."""
    client = _oa(setup[0])
    first = client.chat.completions.create(model="flash", messages=ASK, tools=[WEATHER])
    call = (first.choices[0].message.tool_calls or [])[0]
    messages: list[Any] = [
        *ASK,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 18}'},
    ]
    with pytest.raises(openai.BadRequestError, match="'reasoning_effort'") as err:
        client.chat.completions.create(
            model="sonnet", messages=messages, tools=[WEATHER], reasoning_effort="low"
        )
    assert "no thinking block" in err.value.message
    raw = client.chat.completions.with_raw_response.create(
        model="sonnet",
        messages=messages,
        tools=[WEATHER],
        reasoning_effort="low",
        extra_body={"hedge": {"on_unsupported": "drop"}},
    )
    assert raw.headers["x-hedge-dropped-params"] == "reasoning_effort"
    assert raw.parse().choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
def test_replicas_share_thinking_blocks_through_redis(setup: Setup, logs: Path, stream: bool) -> None:
    """Two replicas behind a load balancer: the tool result reaches the other one, from a client
    that rebuilt the assistant message without reasoning_details; it finds Claude's thinking blocks
    in Redis (the mock refuses the turn, as the real API does, if they are missing)."""
    an = setup[1]
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {"claude": {"style": "anthropic", "base_url": an.url, "api_key": "sk-ant"}},
        "models": {"sonnet": {"deployments": [{"provider": "claude", "model": "claude-sonnet-4-5"}]}},
        "state": {"redis_url": REDIS_URL, "redis_prefix": f"hedge-test-{secrets.token_hex(4)}:"},
    }
    first, second = start_gateway(config, logs), start_gateway(config, logs)
    try:
        message = _first_turn(first, stream)
        rebuilt = {"role": "assistant", "content": None, "tool_calls": message["tool_calls"]}
        answer = {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": '{"temp_c": 18}'}
        done = _oa(second).chat.completions.create(
            model="sonnet", messages=[*ASK, rebuilt, answer], tools=[WEATHER], reasoning_effort="low"
        )
        assert done.choices[0].finish_reason == "stop" and done.choices[0].message.content
    finally:
        first.stop()
        second.stop()
