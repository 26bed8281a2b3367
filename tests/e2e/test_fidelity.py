"""Protocol fidelity through the gateway with the official SDKs, against mocks that refuse what the
real APIs refuse (issue 14, part B)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pydantic
import pytest

from conftest import MASTER_KEY, Gateway, Mock, start_gateway, start_mock

Setup = tuple[Gateway, Mock, Mock, Mock]


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
            "gpt5": {"deployments": [{"provider": "oa", "model": "gpt-5"}]},
            "flash": {"deployments": [{"provider": "ge", "model": "gemini-2.5-flash"}]},
            "pro": {"deployments": [{"provider": "ge", "model": "gemini-2.5-pro"}]},
        },
    }
    gw = start_gateway(config, logs)
    yield gw, an, oa, ge
    gw.stop()
    for mock in (an, oa, ge):
        mock.stop()


def _oa(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0)


def _an(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)


HI: list[Any] = [{"role": "user", "content": "hello"}]


def test_the_mocks_refuse_what_the_real_apis_refuse(setup: Setup) -> None:
    _, an, oa, ge = setup
    claude = anthropic.Anthropic(base_url=an.url, api_key="sk-ant", max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="cannot both be specified"):
        claude.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=32,
            messages=HI,
            extra_body={"temperature": 0.5, "top_p": 0.9},
        )
    claude.messages.create(
        model="claude-sonnet-4-20250514",
        max_tokens=32,
        messages=HI,
        extra_body={"temperature": 0.5, "top_p": 0.9},
    )
    gpt = openai.OpenAI(base_url=f"{oa.url}/v1", api_key="sk-oa", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="Use 'max_completion_tokens' instead"):
        gpt.chat.completions.create(model="gpt-5", max_tokens=32, messages=HI)
    with pytest.raises(openai.BadRequestError, match="Unrecognized request argument supplied: top_k"):
        gpt.chat.completions.create(model="gpt-4o", messages=HI, extra_body={"top_k": 3})
    pro = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}},
    }
    reply = httpx.post(
        f"{ge.url}/v1beta/models/gemini-2.5-pro:generateContent", json=pro, headers={"x-goog-api-key": "g"}
    )
    assert reply.status_code == 400 and "only works in thinking mode" in reply.text


def test_claude_sampling_rules_by_policy(setup: Setup) -> None:
    gw = setup[0]
    with pytest.raises(openai.BadRequestError) as err:
        _oa(gw).chat.completions.create(
            model="sonnet", messages=HI, extra_body={"temperature": 0.5, "top_p": 0.9}
        )
    assert err.value.code == "unsupported_parameter" and "'top_p'" in err.value.message
    assert "Claude 4.1 and later refuse temperature and top_p together" in err.value.message
    raw = _oa(gw).chat.completions.with_raw_response.create(
        model="sonnet",
        messages=HI,
        temperature=0.5,
        top_p=0.9,
        extra_body={"hedge": {"on_unsupported": "drop"}},
    )
    assert raw.headers["x-hedge-dropped-params"] == "top_p"


def test_unknown_and_answer_changing_parameters_are_never_silently_dropped(setup: Setup) -> None:
    gw = setup[0]
    with pytest.raises(openai.BadRequestError, match="'verbosity'"):
        _oa(gw).chat.completions.create(model="sonnet", messages=HI, verbosity="low")
    with pytest.raises(openai.BadRequestError, match="'brand_new'"):
        _oa(gw).chat.completions.create(model="flash", messages=HI, extra_body={"brand_new": 1})
    raw = _oa(gw).chat.completions.with_raw_response.create(model="sonnet", messages=HI, seed=3, store=True)
    assert raw.headers["x-hedge-dropped-params"] == "seed, store"


def test_reasoning_effort_reaches_claude_and_gemini_and_tokens_come_back(setup: Setup) -> None:
    gw = setup[0]
    for alias in ("sonnet", "flash"):
        done = _oa(gw).chat.completions.create(model=alias, messages=HI, reasoning_effort="low")
        assert done.usage is not None and done.usage.completion_tokens_details is not None
        assert (done.usage.completion_tokens_details.reasoning_tokens or 0) > 0, alias
    with pytest.raises(openai.BadRequestError, match="'reasoning_effort'"):
        _oa(gw).chat.completions.create(model="pro", messages=HI, reasoning_effort="none")
    off = _oa(gw).chat.completions.create(model="flash", messages=HI, reasoning_effort="none")
    assert off.usage is not None and off.usage.completion_tokens_details is not None
    assert off.usage.completion_tokens_details.reasoning_tokens == 0


def test_parallel_tool_calls_false_on_gemini_keeps_the_first_call(setup: Setup) -> None:
    gw = setup[0]
    tools: Any = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}}
        for n in ("get_weather", "get_time")
    ]
    ask: Any = [{"role": "user", "content": "Call get_weather and get_time."}]
    both = _oa(gw).chat.completions.create(model="flash", messages=ask, tools=tools)
    assert len(both.choices[0].message.tool_calls or []) == 2
    raw = _oa(gw).chat.completions.with_raw_response.create(
        model="flash", messages=ask, tools=tools, parallel_tool_calls=False
    )
    assert raw.headers["x-hedge-emulated"] == "parallel_tool_calls"
    assert len(raw.parse().choices[0].message.tool_calls or []) == 1
    with _oa(gw).chat.completions.stream(
        model="flash", messages=ask, tools=tools, parallel_tool_calls=False
    ) as stream:
        final = stream.get_final_completion()
    assert len(final.choices[0].message.tool_calls or []) == 1


def test_cache_markers_reach_anthropic_and_writes_come_back(setup: Setup) -> None:
    gw = setup[0]
    system: Any = [
        {"type": "text", "text": "You analyse novels. " * 50, "cache_control": {"type": "ephemeral"}}
    ]
    message = _an(gw).messages.create(model="sonnet", max_tokens=64, system=system, messages=HI)
    assert message.usage.cache_creation_input_tokens and message.usage.cache_creation_input_tokens > 0
    done = _oa(gw).chat.completions.create(
        model="sonnet", messages=[{"role": "system", "content": system}, *HI]
    )
    assert done.usage is not None and done.usage.prompt_tokens_details is not None
    details = done.usage.prompt_tokens_details.model_dump()
    assert details["cache_write_tokens"] > 0


def test_messages_to_openai_reasoning_model(setup: Setup) -> None:
    gw = setup[0]
    message = _an(gw).messages.create(model="gpt5", max_tokens=64, messages=HI)
    assert message.content and message.stop_reason == "end_turn"


class Contact(pydantic.BaseModel):
    name: str
    email: str


@pytest.mark.parametrize("alias", ["sonnet", "gpt5", "flash"])
def test_anthropic_messages_parse_through_hedge(setup: Setup, alias: str) -> None:
    gw = setup[0]
    ask: Any = [{"role": "user", "content": "Extract: Jane Doe, jane@example.com"}]
    parsed = _an(gw).messages.parse(model=alias, max_tokens=256, messages=ask, output_format=Contact)
    assert isinstance(parsed.parsed_output, Contact)


def test_anthropic_thinking_and_top_k_through_hedge(setup: Setup) -> None:
    gw = setup[0]
    message = _an(gw).messages.create(
        model="sonnet", max_tokens=4096, messages=HI, thinking={"type": "enabled", "budget_tokens": 2048}
    )
    assert message.content
    with pytest.raises(anthropic.BadRequestError, match="top_k"):
        _an(gw).messages.create(
            model="sonnet",
            max_tokens=4096,
            messages=HI,
            extra_body={"top_k": 5},
            thinking={"type": "enabled", "budget_tokens": 2048},
        )
    assert _an(gw).messages.create(model="flash", max_tokens=64, messages=HI, extra_body={"top_k": 5}).content
