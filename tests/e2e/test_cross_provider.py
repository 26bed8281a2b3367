"""A tool conversation that moves between providers mid-way, through Hedge, with the official SDK.

The point of a hedge: a conversation begun on Gemini continues on Anthropic or OpenAI (by choice
or by failover). The mocks enforce what the real APIs enforce: the Gemini mock (``thought_signatures``
knob) signs its calls as Gemini 3 does and refuses a replay without the signature it issued; the
Anthropic mock refuses tool ids outside ``^[a-zA-Z0-9_-]+$``; the OpenAI mock refuses ids over 40
characters. So the signature must come back to Gemini, and only to Gemini.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from conftest import MASTER_KEY, REDIS_URL, Gateway, Mock, start_gateway

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
VALID_EVERYWHERE = re.compile(r"[a-zA-Z0-9_-]{1,40}")


@pytest.fixture(scope="module")
def gateway(style_mocks: dict[str, Mock], logs: Path) -> Iterator[Gateway]:
    providers = {
        name: {
            "style": name,
            "base_url": f"{mock.url}/v1" if name == "openai" else mock.url,
            "api_key": f"key-{name}",
        }
        for name, mock in style_mocks.items()
    }
    models = {
        "ge": {"deployments": [{"provider": "gemini", "model": "gemini-3-flash-preview"}]},
        "an": {"deployments": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]},
        "oa": {"deployments": [{"provider": "openai", "model": "gpt-4o"}]},
        "ge-an": {
            "strategy": "ordered",
            "deployments": [
                {"provider": "gemini", "model": "gemini-3-flash-preview"},
                {"provider": "anthropic", "model": "claude-sonnet-4-5"},
            ],
        },
    }
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": providers,
        "models": models,
        "resilience": {"max_attempts": 2, "breaker": {"failures": 1_000_000}},
    }
    gw = start_gateway(config, logs)
    yield gw
    gw.stop()


@pytest.fixture
def gemini(style_mocks: dict[str, Mock]) -> Iterator[Mock]:
    mock = style_mocks["gemini"]
    mock.configure(thought_signatures=True)
    yield mock
    mock.reset()


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)


def begin_on_gemini(client: openai.OpenAI, stream: bool = False) -> list[Any]:
    """The first turn on Gemini: a signed tool call, and the conversation to send next."""
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    if stream:
        calls: dict[int, dict[str, Any]] = {}
        for chunk in client.chat.completions.create(
            model="ge", messages=messages, tools=[WEATHER], stream=True
        ):
            for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                call = calls.setdefault(delta.index, {"type": "function", "function": {"arguments": ""}})
                extra = (delta.model_extra or {}).get("extra_content")
                if delta.id:
                    call["id"] = delta.id
                if extra:
                    call["extra_content"] = extra
                if delta.function and delta.function.name:
                    call["function"]["name"] = delta.function.name
                if delta.function and delta.function.arguments:
                    call["function"]["arguments"] += delta.function.arguments
        message: Any = {"role": "assistant", "content": None, "tool_calls": list(calls.values())}
        tool_calls = message["tool_calls"]
        ids = [c["id"] for c in tool_calls]
        extras = [c.get("extra_content") for c in tool_calls]
    else:
        completion = client.chat.completions.create(model="ge", messages=messages, tools=[WEATHER])
        message = completion.choices[0].message  # appended as the SDK gave it, as most clients do
        tool_calls = message.tool_calls or []
        ids = [c.id for c in tool_calls]
        extras = [(c.model_extra or {}).get("extra_content") for c in tool_calls]
    assert ids and all(VALID_EVERYWHERE.fullmatch(i) for i in ids), ids
    signature = extras[0]["google"]["thought_signature"]
    assert len(signature) > 100 and re.search(r"[+/=]", signature), "a real-looking signature, not in the id"
    messages.append(message)
    messages.append({"role": "tool", "tool_call_id": ids[0], "content": '{"temp_c":18}'})
    return messages


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_conversation_continues_on_every_provider(
    client: openai.OpenAI, gemini: Mock, style_mocks: dict[str, Mock], stream: bool
) -> None:
    messages = begin_on_gemini(client, stream)
    for alias, provider in (("ge", "gemini"), ("an", "anthropic"), ("oa", "openai")):
        raw = client.chat.completions.with_raw_response.create(
            model=alias, messages=messages, tools=[WEATHER]
        )
        assert raw.headers["x-hedge-provider"] == provider
        answer = raw.parse().choices[0]
        assert answer.finish_reason == "stop" and "18" in (answer.message.content or "")
        sent = str(style_mocks[provider].stats()["last_body"])
        signature = "hedge-mock-thought" if provider == "gemini" else "thought_signature"
        assert (signature in sent or "thoughtSignature" in sent) is (provider == "gemini")


def test_signature_survives_a_client_that_drops_unknown_fields(client: openai.OpenAI, gemini: Mock) -> None:
    """LangChain and the Anthropic SDK rebuild the tool call from id, name and arguments only."""
    messages = begin_on_gemini(client)
    call = messages[1].tool_calls[0]
    rebuilt = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call.id, "type": "function", "function": call.function.model_dump()}],
    }
    answer = client.chat.completions.create(
        model="ge", messages=[messages[0], rebuilt, messages[2]], tools=[WEATHER]
    )
    assert "18" in (answer.choices[0].message.content or "")
    last = gemini.stats()["last_body"]["contents"][1]["parts"][0]
    assert last["thoughtSignature"] != "skip_thought_signature_validator", "the gateway remembered it"


def test_gemini_503_mid_conversation_fails_over_to_anthropic(client: openai.OpenAI, gemini: Mock) -> None:
    messages = begin_on_gemini(client)
    gemini.configure(fail_first=1, fail_status=503)
    raw = client.chat.completions.with_raw_response.create(model="ge-an", messages=messages, tools=[WEATHER])
    assert raw.headers["x-hedge-provider"] == "anthropic"
    assert "18" in (raw.parse().choices[0].message.content or "")


@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "OTHER"])
@pytest.mark.parametrize("stream", [False, True])
def test_failed_generation_fails_over_or_errors(
    client: openai.OpenAI, gemini: Mock, reason: str, stream: bool
) -> None:
    """Never a 200 ``stop`` with nothing in it: another deployment answers, or the client gets a 502."""
    gemini.configure(finish_reason=reason)
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    raw = client.chat.completions.with_raw_response.create(
        model="ge-an", messages=messages, tools=[WEATHER], stream=stream
    )
    assert raw.headers["x-hedge-provider"] == "anthropic"
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="ge", messages=messages, tools=[WEATHER], stream=stream)
    assert info.value.status_code == 502
    assert info.value.code == "upstream_failed_generation"


def test_replicas_share_signatures_through_redis(
    style_mocks: dict[str, Mock], gemini: Mock, logs: Path
) -> None:
    """Two replicas behind a load balancer: the next turn reaches the other one, from a client that
    dropped extra_content; it finds the signature in Redis instead of sending Gemini the sentinel."""
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {"gemini": {"style": "gemini", "base_url": gemini.url, "api_key": "k"}},
        "models": {"ge": {"deployments": [{"provider": "gemini", "model": "gemini-3-flash-preview"}]}},
        "state": {"redis_url": REDIS_URL, "redis_prefix": f"hedge-test-{secrets.token_hex(4)}:"},
    }
    first, second = start_gateway(config, logs), start_gateway(config, logs)
    try:
        one = openai.OpenAI(base_url=first.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
        two = openai.OpenAI(base_url=second.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
        messages = begin_on_gemini(one)
        call = messages[1].tool_calls[0]
        rebuilt = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call.id, "type": "function", "function": call.function.model_dump()}],
        }
        answer = two.chat.completions.create(
            model="ge", messages=[messages[0], rebuilt, messages[2]], tools=[WEATHER]
        )
        assert "18" in (answer.choices[0].message.content or "")
        sent = gemini.stats()["last_body"]["contents"][1]["parts"][0]["thoughtSignature"]
        assert sent == call.model_extra["extra_content"]["google"]["thought_signature"]
    finally:
        first.stop()
        second.stop()
