"""Parameters a provider cannot honour: refused by default, dropped (and said so) on request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from conftest import MASTER_KEY, Gateway, Mock, start_gateway, start_mock
from hedge.providers.base import Capabilities
from hedge.providers.capabilities import drop, unsupported

NONE = Capabilities(
    tools=False,
    parallel_tool_calls=False,
    vision=False,
    json_mode=False,
    json_schema=False,
    max_stop_sequences=1,
    n=False,
    logprobs=False,
    seed=False,
    penalties=False,
    logit_bias=False,
)
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, []),
        ({"tools": [TOOL]}, ["tools"]),
        ({"tools": [TOOL], "tool_choice": "auto"}, ["tools", "tool_choice"]),
        ({"tool_choice": "none"}, []),
        ({"parallel_tool_calls": False}, ["parallel_tool_calls"]),
        ({"parallel_tool_calls": True}, []),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, IMAGE]}]}, ["image_url"]),
        ({"response_format": {"type": "json_object"}}, ["response_format"]),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, ["response_format"]),
        ({"response_format": {"type": "text"}}, []),
        ({"stop": ["a", "b"]}, ["stop"]),
        ({"stop": "a"}, []),
        ({"n": 2}, ["n"]),
        ({"n": 1}, []),
        ({"logprobs": True, "top_logprobs": 2}, ["logprobs", "top_logprobs"]),
        ({"seed": 0}, ["seed"]),
        ({"presence_penalty": 0.5, "frequency_penalty": 0}, ["presence_penalty"]),
        ({"logit_bias": {"1": 2}}, ["logit_bias"]),
    ],
)
def test_unsupported_table(extra: dict[str, Any], expected: list[str]) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    assert unsupported(body, NONE) == expected
    assert unsupported(body, Capabilities()) == []


def test_drop_removes_only_what_cannot_be_honoured_and_copies() -> None:
    body = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, IMAGE]}],
        "stop": ["a", "b", "c"],
        "n": 3,
        "temperature": 0.2,
    }
    out = drop(body, ["image_url", "stop", "n"], NONE)
    assert out == {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
        "stop": ["a"],
        "temperature": 0.2,
    }
    assert body["n"] == 3 and len(body["messages"][0]["content"]) == 2, "the client's body is untouched"


@pytest.fixture(scope="module")
def setup(logs: Path) -> Iterator[tuple[Gateway, Mock, Mock]]:
    anthropic = start_mock("anthropic", logs)
    oa = start_mock("openai", logs)
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "claude": {"style": "anthropic", "base_url": anthropic.url, "api_key": "sk-ant"},
            "claude-lenient": {
                "style": "anthropic",
                "base_url": anthropic.url,
                "api_key": "sk-ant",
                "on_unsupported": "drop",
            },
            "oa": {"style": "openai", "base_url": f"{oa.url}/v1", "api_key": "sk-oa"},
        },
        "models": {
            "an": {"deployments": [{"provider": "claude", "model": "claude-sonnet-4"}]},
            "lenient": {"deployments": [{"provider": "claude-lenient", "model": "claude-sonnet-4"}]},
            "mixed": {
                "strategy": "ordered",
                "deployments": [
                    {"provider": "claude", "model": "claude-sonnet-4"},
                    {"provider": "oa", "model": "gpt-4o"},
                ],
            },
        },
    }
    gw = start_gateway(config, logs)
    yield gw, anthropic, oa
    gw.stop()
    anthropic.stop()
    oa.stop()


def _client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0)


MSG: list[Any] = [{"role": "user", "content": "hello"}]


def test_reject_is_the_default_and_names_parameter_and_provider(setup: tuple[Gateway, Mock, Mock]) -> None:
    gw, anthropic, _ = setup
    before = anthropic.stats()["requests"]
    with pytest.raises(openai.BadRequestError) as exc:
        _client(gw).chat.completions.create(model="an", messages=MSG, n=2)
    assert exc.value.param == "n" and exc.value.code == "unsupported_parameter"
    assert "claude" in exc.value.message
    assert anthropic.stats()["requests"] == before, "nothing was sent upstream"


def test_per_request_drop_is_reported_in_a_header(setup: tuple[Gateway, Mock, Mock]) -> None:
    gw, anthropic, _ = setup
    raw = _client(gw).chat.completions.with_raw_response.create(
        model="an", messages=MSG, n=2, seed=4, extra_body={"hedge": {"on_unsupported": "drop"}}
    )
    assert raw.headers["x-hedge-dropped-params"] == "seed, n", "seed is dropped by nature, n by policy"
    assert len(raw.parse().choices) == 1
    sent = anthropic.stats()["last_body"]
    assert "n" not in sent and "seed" not in sent


def test_provider_policy_drop(setup: tuple[Gateway, Mock, Mock]) -> None:
    gw, _, _ = setup
    raw = _client(gw).chat.completions.with_raw_response.create(
        model="lenient", messages=MSG, logit_bias={"1": 1}
    )
    assert raw.headers["x-hedge-dropped-params"] == "logit_bias"


def test_unsupported_fails_over_to_a_capable_deployment(setup: tuple[Gateway, Mock, Mock]) -> None:
    gw, _, oa = setup
    before = oa.stats()["requests"]
    raw = _client(gw).chat.completions.with_raw_response.create(model="mixed", messages=MSG, n=2)
    assert oa.stats()["requests"] == before + 1
    assert raw.headers["x-hedge-provider"] == "oa"
    assert len(raw.parse().choices) == 2
    assert raw.headers["x-hedge-route"] == "claude/claude-sonnet-4=unsupported_parameter, oa/gpt-4o=ok"
    assert "x-hedge-dropped-params" not in raw.headers


def test_embeddings_on_a_provider_without_them(setup: tuple[Gateway, Mock, Mock]) -> None:
    gw, _, _ = setup
    with pytest.raises(openai.BadRequestError) as exc:
        _client(gw).embeddings.create(model="an", input="x")
    assert "does not support embeddings" in exc.value.message


def test_bad_policy_value_is_400(setup: tuple[Gateway, Mock, Mock]) -> None:
    gw, _, _ = setup
    with pytest.raises(openai.BadRequestError) as exc:
        _client(gw).chat.completions.create(
            model="an", messages=MSG, extra_body={"hedge": {"on_unsupported": "x"}}
        )
    assert exc.value.param == "hedge.on_unsupported"
