"""Token counting in translation: the adapter's count request, the inbound body's rules, the error types."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hedge.config import ProviderConfig
from hedge.errors import InvalidRequest, UpstreamError
from hedge.providers.anthropic import AnthropicAdapter
from hedge.providers.anthropic_inbound import error_body, error_type, to_openai, validate_messages

TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


def adapter() -> AnthropicAdapter:
    config = ProviderConfig(
        style="anthropic", base_url="https://up.example", api_key="sk-ant", headers={"x-o": "1"}
    )
    return AnthropicAdapter("an", config)


def test_count_request_is_the_message_request_without_generation_settings() -> None:
    body: dict[str, Any] = {
        "model": "alias",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "max_tokens": 10,
        "temperature": 0.3,
        "top_p": 0.9,
        "stop": ["END"],
        "user": "alice",
        "stream": True,
        "tools": [TOOL],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    }
    a = adapter()
    req = a.count_tokens_request(body, "claude-x")
    assert req.url == "https://up.example/v1/messages/count_tokens"
    assert req.headers["x-api-key"] == "sk-ant"
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["x-o"] == "1"
    sent = orjson.loads(req.body)
    message = orjson.loads(a.chat_request(body, "claude-x", stream=True, want_usage=True).body)
    assert sent == {k: message[k] for k in ("model", "system", "messages", "tools", "tool_choice")}
    assert sent["model"] == "claude-x"
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert message["stream"] is True and "stream" not in sent


def test_chat_request_unchanged_by_the_split() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "user": "bob"}
    sent = orjson.loads(adapter().chat_request(body, "claude-x", stream=False, want_usage=False).body)
    assert sent == {
        "model": "claude-x",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"user_id": "bob"},
    }


def test_count_response() -> None:
    assert adapter().count_tokens_response(b'{"input_tokens": 42}') == 42


@pytest.mark.parametrize(
    "raw",
    [b"{}", b'{"input_tokens": "42"}', b'{"input_tokens": -1}', b'{"input_tokens": true}', b"[1]", b"<html>"],
)
def test_count_response_without_a_count_is_the_upstreams_fault(raw: bytes) -> None:
    with pytest.raises(UpstreamError) as caught:
        adapter().count_tokens_response(raw)
    assert caught.value.status == 502 and caught.value.retryable
    assert caught.value.code == "upstream_bad_response"


COUNT_BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_counting_body_needs_no_max_tokens_and_translates_without_one() -> None:
    validate_messages(COUNT_BODY, counting=True)
    assert to_openai(COUNT_BODY, counting=True) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
    }
    with pytest.raises(InvalidRequest, match="max_tokens: Field required"):
        validate_messages(COUNT_BODY)


@pytest.mark.parametrize("field", ["max_tokens", "stream", "temperature", "stop_sequences", "metadata"])
def test_counting_body_refuses_generation_settings(field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_openai({**COUNT_BODY, field: None}, counting=True)
    assert caught.value.message == f"{field}: Extra inputs are not permitted"
    assert caught.value.param == field


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model: Field required"),
        ({"model": "m"}, "messages: Field required"),
        (
            {"model": "m", "messages": [{"role": "developer", "content": "hi"}]},
            "messages.0.role: Input should be",
        ),
    ],
)
def test_counting_body_is_validated_like_a_message(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        validate_messages(body, counting=True)


@pytest.mark.parametrize(
    ("status", "etype"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (405, "invalid_request_error"),  # any other 4xx, as Anthropic's errors page says
        (408, "invalid_request_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_types(status: int, etype: str) -> None:
    assert error_type(status) == etype
    assert error_body(status, "why") == {"type": "error", "error": {"type": etype, "message": "why"}}
