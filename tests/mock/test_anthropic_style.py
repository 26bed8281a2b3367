"""The Anthropic-style mock driven by the official ``anthropic`` SDK, and by the Anthropic adapter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from conftest import Mock, start_mock
from hedge.config import ProviderConfig
from hedge.providers.anthropic import AnthropicAdapter
from hedge.providers.base import Translated

MODEL = "claude-test"
WEATHER_TOOL: anthropic.types.ToolParam = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def mock(logs: Path) -> Iterator[Mock]:
    m = start_mock("anthropic", logs, "--seed", "3")
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def _reset(mock: Mock) -> Iterator[None]:
    yield
    mock.reset()
    mock.configure(api_key=None, retry_after=1.0)


@pytest.fixture
def client(mock: Mock) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mock.url, api_key="k", max_retries=0, timeout=10)


def text_of(msg: Any) -> str:
    return "".join(b.text for b in msg.content if b.type == "text")


# -- the SDK against the mock -----------------------------------------------------------------------


def test_plain_message(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hello there"}]
    )
    assert msg.id.startswith("msg_")
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.model == MODEL
    assert text_of(msg) == f"{MODEL} says: hello there"
    assert msg.stop_reason == "end_turn"
    assert msg.stop_sequence is None
    assert msg.usage.output_tokens == 4
    assert msg.usage.input_tokens > 0
    assert msg.usage.cache_read_input_tokens == 0


def test_system_prompt_counts_and_is_received(client: anthropic.Anthropic, mock: Mock) -> None:
    messages: Any = [{"role": "user", "content": "hi"}]
    bare = client.messages.create(model=MODEL, max_tokens=50, messages=messages)
    with_system = client.messages.create(
        model=MODEL, max_tokens=50, system="You are a very careful assistant.", messages=messages
    )
    assert mock.stats()["last_body"]["system"] == "You are a very careful assistant."
    assert with_system.usage.input_tokens > bare.usage.input_tokens
    assert text_of(with_system) == text_of(bare)


def test_system_prompt_asking_for_json_gets_json(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(
        model=MODEL,
        max_tokens=50,
        system=[{"type": "text", "text": "Answer with a JSON object only."}],
        messages=[{"role": "user", "content": "hi"}],
    )
    assert orjson.loads(text_of(msg)) == {"model": MODEL, "echo": "hi"}


def test_stop_sequences(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(
        model=MODEL,
        max_tokens=100,
        stop_sequences=["world", "never"],
        messages=[{"role": "user", "content": "hello world again"}],
    )
    assert msg.stop_reason == "stop_sequence"
    assert msg.stop_sequence == "world"
    assert text_of(msg) == f"{MODEL} says: hello "


def test_max_tokens(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "a b c d"}])
    assert msg.stop_reason == "max_tokens"
    assert msg.usage.output_tokens == 2
    assert text_of(msg) == f"{MODEL} says: "


def test_streaming(client: anthropic.Anthropic, mock: Mock) -> None:
    before = mock.stats()["streams_completed"]
    with client.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "stream me please"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == f"{MODEL} says: stream me please"
    assert text_of(final) == "".join(pieces)
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(pieces)
    assert mock.stats()["streams_completed"] == before + 1


def test_raw_stream_event_sequence(client: anthropic.Anthropic) -> None:
    events = client.messages.create(
        model=MODEL, max_tokens=100, stream=True, messages=[{"role": "user", "content": "hi"}]
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_tool_use_over_two_turns(client: anthropic.Anthropic) -> None:
    messages: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    first = client.messages.create(model=MODEL, max_tokens=100, tools=[WEATHER_TOOL], messages=messages)
    assert first.stop_reason == "tool_use"
    calls = [b for b in first.content if b.type == "tool_use"]
    assert len(calls) == 1
    call = calls[0]
    assert call.id.startswith("toolu_")
    assert call.name == "get_weather"
    assert set(call.input) == {"city"}

    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}],
        },
    ]
    second = client.messages.create(model=MODEL, max_tokens=100, tools=[WEATHER_TOOL], messages=messages)
    assert second.stop_reason == "end_turn"
    assert text_of(second) == f"{MODEL} says: the tool returned 18C and sunny"


def test_streamed_tool_use(client: anthropic.Anthropic) -> None:
    time_tool: anthropic.types.ToolParam = {
        "name": "get_time",
        "input_schema": {"type": "object", "properties": {}},
    }
    with client.messages.stream(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER_TOOL, time_tool],
        tool_choice={"type": "tool", "name": "get_time"},
        messages=[{"role": "user", "content": "weather in Paris?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "name", None)) for b in final.content] == [("tool_use", "get_time")]


def test_unanswered_tool_use_is_rejected(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="tool_result"):
        client.messages.create(
            model=MODEL,
            max_tokens=50,
            messages=[
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_x", "name": "f", "input": {}}],
                },
                {"role": "user", "content": "never mind"},
            ],
        )


def test_system_role_in_messages_is_rejected(client: anthropic.Anthropic) -> None:
    messages: Any = [{"role": "system", "content": "rules"}, {"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=MODEL, max_tokens=50, messages=messages)
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_overloaded_529(client: anthropic.Anthropic, mock: Mock) -> None:
    mock.configure(fail_rate=1, fail_status=529)
    with pytest.raises(anthropic.OverloadedError) as info:
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 529
    assert info.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    mock.reset()
    msg = client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert msg.stop_reason == "end_turn"


def test_rate_limited_429_with_retry_after(client: anthropic.Anthropic, mock: Mock) -> None:
    mock.configure(fail_rate=1, fail_status=429, retry_after=3)
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def test_wrong_api_key(client: anthropic.Anthropic, mock: Mock) -> None:
    mock.configure(api_key="right")
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    good = anthropic.Anthropic(base_url=mock.url, api_key="right", max_retries=0)
    assert good.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}]).id


def test_mid_stream_error_event(client: anthropic.Anthropic, mock: Mock) -> None:
    mock.configure(fail_rate=1, fail_mode="disconnect", quirks=["error-event"])
    with (
        pytest.raises(anthropic.APIStatusError, match="overloaded_error"),
        client.messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "a long enough answer"}]
        ) as stream,
    ):
        stream.get_final_message()
    assert mock.stats()["streams_cancelled"] == 1


def test_count_tokens(client: anthropic.Anthropic) -> None:
    messages: Any = [{"role": "user", "content": "hello there"}]
    counted = client.messages.count_tokens(model=MODEL, messages=messages)
    created = client.messages.create(model=MODEL, max_tokens=10, messages=messages)
    assert counted.input_tokens == created.usage.input_tokens


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"max_tokens": 10}, 400, "max_tokens: Extra inputs are not permitted"),
        ({"stream": False}, 400, "stream: Extra inputs are not permitted"),
        ({"model": None}, 400, "model: Field required"),
        ({"messages": None}, 400, "messages: at least one message is required"),
        ({"messages": [{"role": "system", "content": "hi"}]}, 400, "messages.0.role"),
        ({"messages": [{"role": "user", "content": ""}]}, 400, "messages.0.content.0: text content blocks"),
        ({"model": "the-no-such-model"}, 404, "model: the-no-such-model"),
    ],
)
def test_count_tokens_refuses_what_anthropic_refuses(
    mock: Mock, change: dict[str, Any], status: int, message: str
) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **change}
    resp = httpx.post(
        f"{mock.url}/v1/messages/count_tokens",
        json={k: v for k, v in body.items() if v is not None},
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert resp.status_code == status, resp.text
    error = resp.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    assert error["error"]["message"].startswith(message)


def test_raw_http_checks(mock: Mock) -> None:
    url = f"{mock.url}/v1/messages"
    ok = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(url, json=body, headers=ok).status_code == 200
    no_key = httpx.post(url, json=body, headers={"anthropic-version": "2023-06-01"})
    assert no_key.status_code == 401
    assert no_key.json()["error"]["type"] == "authentication_error"
    no_version = httpx.post(url, json=body, headers={"x-api-key": "k"})
    assert no_version.status_code == 400
    assert "anthropic-version" in no_version.json()["error"]["message"]
    no_max = httpx.post(url, json={**body, "max_tokens": None}, headers=ok)
    assert no_max.status_code == 400
    assert no_max.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }
    too_hot = httpx.post(url, json={**body, "temperature": 1.5}, headers=ok)
    assert too_hot.status_code == 400


# -- the adapter against the mock -------------------------------------------------------------------


@pytest.fixture
def adapter(mock: Mock) -> AnthropicAdapter:
    return AnthropicAdapter("claude", ProviderConfig(style="anthropic", base_url=mock.url, api_key="k"))


def send(adapter: AnthropicAdapter, body: dict[str, Any], stream: bool = False) -> httpx.Response:
    req = adapter.chat_request(body, MODEL, stream, True)
    resp = httpx.post(req.url, content=req.body, headers=req.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp


def complete(adapter: AnthropicAdapter, body: dict[str, Any]) -> Translated:
    """A non-streamed round trip: translate, send to the mock, translate the answer back."""
    req = adapter.chat_request(body, MODEL, False, True)
    resp = httpx.post(req.url, content=req.body, headers=req.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    return adapter.chat_response(resp.content, req)


def test_adapter_round_trip_with_tools(adapter: AnthropicAdapter) -> None:
    tool = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]},
    }
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "weather in Paris?"},
    ]
    first = complete(adapter, {"messages": messages, "tools": [tool]})
    completion = openai.types.chat.ChatCompletion.model_validate_json(first.body)
    assert completion.choices[0].finish_reason == "tool_calls"
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    assert first.usage is not None and first.usage.completion_tokens > 0

    messages.append(completion.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": "18C"})
    second = complete(adapter, {"messages": messages, "tools": [tool]})
    final = openai.types.chat.ChatCompletion.model_validate_json(second.body)
    assert final.choices[0].message.content == f"{MODEL} says: the tool returned 18C"
    assert final.choices[0].finish_reason == "stop"


def test_adapter_count_tokens_against_mock(adapter: AnthropicAdapter, mock: Mock) -> None:
    """The adapter's count request is one the mock (like the API) accepts, and counts as a message."""
    body: dict[str, Any] = {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
        "max_tokens": 50,
        "temperature": 0.5,
        "stop": ["END"],
        "user": "alice",
    }
    req = adapter.count_tokens_request(body, MODEL)
    resp = httpx.post(req.url, content=req.body, headers=req.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    assert mock.stats()["by_path"]["/v1/messages/count_tokens"] == 1
    created = complete(adapter, body)
    assert created.usage is not None
    assert adapter.count_tokens_response(resp.content) == created.usage.prompt_tokens


def test_adapter_stream_against_mock(adapter: AnthropicAdapter, mock: Mock) -> None:
    mock.configure(quirks=["cache-hit"])
    body = {
        "messages": [{"role": "user", "content": "tell me something"}],
        "stop": ["never"],
        "max_tokens": 3,
    }
    raw = send(adapter, body, stream=True).content
    translator = adapter.stream_translator(MODEL, True)
    out: list[bytes] = []
    for i in range(0, len(raw), 11):
        out.extend(translator.feed(raw[i : i + 11]))
    out.extend(translator.close())
    assert translator.finished
    chunks = [openai.types.chat.ChatCompletionChunk.model_validate_json(o[len(b"data: ") :]) for o in out]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == f"{MODEL} says: tell "
    assert chunks[-1].choices[0].finish_reason == "length"
    usage = translator.usage
    assert usage is not None
    assert usage.completion_tokens == 3
    assert usage.cached_tokens > 0
    assert usage.prompt_tokens > usage.cached_tokens


@pytest.mark.parametrize(("mode", "content_before_cut"), [("disconnect", True), ("early-disconnect", False)])
def test_injected_stream_cuts(
    adapter: AnthropicAdapter, mock: Mock, mode: str, content_before_cut: bool
) -> None:
    mock.configure(fail_rate=1, fail_mode=mode)
    req = adapter.chat_request(
        {"messages": [{"role": "user", "content": "one two three four five"}]}, MODEL, True, True
    )
    translator = adapter.stream_translator(MODEL, True)
    out: list[bytes] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", req.url, content=req.body, headers=req.headers, timeout=10) as resp,
    ):
        assert resp.status_code == 200
        for data in resp.iter_raw():
            out.extend(translator.feed(data))
    assert not translator.finished
    deltas = [orjson.loads(o[len(b"data: ") :])["choices"][0]["delta"] for o in out]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert any(d.get("content") for d in deltas) is content_before_cut
    assert mock.stats()["streams_cancelled"] == 1
