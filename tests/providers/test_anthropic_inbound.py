"""Inbound Anthropic Messages: the official ``anthropic`` SDK through Hedge, to any provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from conftest import MASTER_KEY, Gateway, Mock, start_gateway
from hedge.errors import InvalidRequest
from hedge.providers.anthropic_inbound import AnthropicEvents, to_anthropic, to_openai

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def test_request_translation() -> None:
    body = {
        "model": "m",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "Be brief."}],
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "tools": [WEATHER],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        "stream": True,
        "messages": [
            {"role": "user", "content": "weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "sunny"}],
                    },
                    {"type": "text", "text": "thanks"},
                ],
            },
        ],
    }
    out = to_openai(body)
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "user", "content": "thanks"},
    ]
    assert out["stop"] == ["END"] and out["max_tokens"] == 50 and out["temperature"] == 0.2
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert out["parallel_tool_calls"] is False
    assert out["stream_options"] == {"include_usage": True}
    assert out["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "developer", "content": "x"}]},
            "messages.0.role",
        ),
    ],
)
def test_request_errors(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        to_openai(body)
    assert exc.value.param == param


@pytest.mark.parametrize(
    ("finish", "stop_reason"), [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use")]
)
def test_response_translation(finish: str, stop_reason: str) -> None:
    completion = {
        "id": "chatcmpl-abc",
        "model": "gpt-4o",
        "choices": [
            {
                "message": {
                    "content": "hi",
                    "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"a": 1}'}}],
                },
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}},
    }
    out = to_anthropic(completion)
    assert out["id"] == "msg_abc" and out["stop_reason"] == stop_reason
    assert out["content"] == [
        {"type": "text", "text": "hi"},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}},
    ]
    assert out["usage"]["input_tokens"] == 6 and out["usage"]["cache_read_input_tokens"] == 4


def test_stream_event_order() -> None:
    events = AnthropicEvents("m")
    chunks = [
        {"id": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"id": "x", "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"id": "x", "choices": [{"index": 0, "delta": {"content": "lo"}}]},
        {
            "id": "x",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": ""}}]
                    },
                }
            ],
        },
        {
            "id": "x",
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}
            ],
        },
        {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"id": "x", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
    ]
    names = [
        line.split(b"\n")[0].removeprefix(b"event: ").decode() for c in chunks for line in events.chunk(c)
    ]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


@pytest.fixture(scope="module")
def gw(style_mocks: dict[str, Mock], logs: Path) -> Iterator[Gateway]:
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "oa": {"style": "openai", "base_url": f"{style_mocks['openai'].url}/v1", "api_key": "k"},
            "an": {"style": "anthropic", "base_url": style_mocks["anthropic"].url, "api_key": "k"},
            "ge": {"style": "gemini", "base_url": style_mocks["gemini"].url, "api_key": "k"},
        },
        "models": {
            "oa": {"deployments": [{"provider": "oa", "model": "gpt-4o"}]},
            "an": {"deployments": [{"provider": "an", "model": "claude-sonnet-4"}]},
            "ge": {"deployments": [{"provider": "ge", "model": "gemini-2.5-flash"}]},
        },
    }
    gateway = start_gateway(config, logs)
    yield gateway
    gateway.stop()


def _client(gw: Gateway, key: str = MASTER_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)


@pytest.mark.parametrize("alias", ["oa", "an", "ge"])
def test_anthropic_sdk_through_hedge(gw: Gateway, alias: str) -> None:
    client = _client(gw)
    model_name = {"oa": "gpt-4o", "an": "claude-sonnet-4", "ge": "gemini-2.5-flash"}[alias]
    msg = client.messages.create(
        model=alias, max_tokens=64, system="Be brief.", messages=[{"role": "user", "content": "hello there"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == f"{model_name} says: hello there"
    assert msg.stop_reason == "end_turn" and msg.usage.output_tokens > 0
    short = client.messages.create(
        model=alias, max_tokens=2, messages=[{"role": "user", "content": "a b c d"}]
    )
    assert short.stop_reason == "max_tokens"
    with client.messages.stream(
        model=alias, max_tokens=64, messages=[{"role": "user", "content": "stream me"}]
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == f"{model_name} says: stream me" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    asked = client.messages.create(
        model=alias,
        max_tokens=64,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "Paris"}],  # type: ignore[list-item]
    )
    call = next(b for b in asked.content if b.type == "tool_use")
    assert asked.stop_reason == "tool_use" and call.name == "get_weather" and call.input == {"city": "Paris"}
    answer = client.messages.create(
        model=alias,
        max_tokens=64,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "Paris"},
            {"role": "assistant", "content": asked.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
            },
        ],
    )
    assert answer.content[0].type == "text" and "sunny" in answer.content[0].text


def test_errors_in_anthropic_shape(gw: Gateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        _client(gw).messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError):
        _client(gw, "wrong").messages.create(
            model="oa", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.BadRequestError):
        _client(gw).messages.create(model="oa", max_tokens=0, messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"metadata": "x"}, "metadata"),
        ({"tools": 5}, "tools"),
        ({"system": 3}, "system"),
        ({"messages": [{"role": "user", "content": 7}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": ["text"]}]}, "messages.0.content.0"),
    ],
)
def test_malformed_anthropic_bodies_are_400(extra: dict[str, Any], param: str) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], **extra}
    with pytest.raises(InvalidRequest) as exc:
        to_openai(body)
    assert exc.value.param == param
