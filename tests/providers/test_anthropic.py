"""Unit tests of the Anthropic adapter: request, response, stream and error translation."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from hedge.config import ProviderConfig
from hedge.errors import InvalidRequest, UpstreamError
from hedge.providers import make_adapter
from hedge.providers.anthropic import AnthropicAdapter, AnthropicStream
from hedge.providers.base import UpstreamRequest, Usage

BASE = "https://api.anthropic.com"


def adapter(**config: Any) -> AnthropicAdapter:
    cfg = ProviderConfig(style="anthropic", base_url=BASE, api_key="sk-ant-test", **config)
    return AnthropicAdapter("claude", cfg)


def translate(body: dict[str, Any], stream: bool = False, **config: Any) -> dict[str, Any]:
    """Translate ``body`` and check that the client's body was not touched."""
    original = copy.deepcopy(body)
    req = adapter(**config).chat_request(body, "claude-sonnet", stream, False)
    assert body == original, "chat_request mutated the client's body"
    out: dict[str, Any] = orjson.loads(req.body)
    return out


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


NO_REQUEST = UpstreamRequest("u", b"")
"""The request handed back to response translation (the Anthropic adapter needs nothing from it)."""


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}


# -- request translation ----------------------------------------------------------------------------


def test_url_and_headers() -> None:
    req = adapter(headers={"anthropic-beta": "prompt-caching"}).chat_request(
        {"messages": [user("hi")]}, "claude-sonnet", False, False
    )
    assert req.url == f"{BASE}/v1/messages"
    assert req.headers["x-api-key"] == "sk-ant-test"
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["anthropic-beta"] == "prompt-caching"
    assert "authorization" not in req.headers


def test_minimal_request_has_only_anthropic_fields() -> None:
    body = {
        "model": "alias",
        "messages": [user("hi")],
        "hedge": {"tags": ["x"]},
        "n": 1,
        "seed": 7,
        "logprobs": False,
        "presence_penalty": 0,
        "stream_options": {"include_usage": True},
    }
    assert translate(body) == {"model": "claude-sonnet", "max_tokens": 4096, "messages": [user("hi")]}


REQUEST_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "system and developer messages join into system",
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
                user("hi"),
                {"role": "system", "content": "Late rule."},
            ]
        },
        {"system": "Be brief.\n\nUse metric.\n\nLate rule.", "messages": [user("hi")]},
    ),
    (
        "consecutive same-role messages merge",
        {"messages": [user("one"), user("two"), {"role": "assistant", "content": "ok"}, user("three")]},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
                },
                {"role": "assistant", "content": "ok"},
                user("three"),
            ]
        },
    ),
    ("stop string", {"messages": [user("x")], "stop": "END"}, {"stop_sequences": ["END"]}),
    ("stop list", {"messages": [user("x")], "stop": ["a", "b"]}, {"stop_sequences": ["a", "b"]}),
    ("max_tokens", {"messages": [user("x")], "max_tokens": 10}, {"max_tokens": 10}),
    (
        "max_completion_tokens wins",
        {"messages": [user("x")], "max_tokens": 10, "max_completion_tokens": 20},
        {"max_tokens": 20},
    ),
    ("temperature clamped to 1", {"messages": [user("x")], "temperature": 1.7}, {"temperature": 1.0}),
    (
        "temperature and top_p kept",
        {"messages": [user("x")], "temperature": 0.3, "top_p": 0.9},
        {"temperature": 0.3, "top_p": 0.9},
    ),
    (
        "user becomes metadata.user_id",
        {"messages": [user("x")], "user": "u-42"},
        {"metadata": {"user_id": "u-42"}},
    ),
    (
        "tools",
        {"messages": [user("x")], "tools": [WEATHER, TIME]},
        {
            "tools": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
                },
                {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
            ]
        },
    ),
    (
        "trailing assistant prefill loses trailing whitespace",
        {"messages": [user("x"), {"role": "assistant", "content": "The answer is "}]},
        {"messages": [user("x"), {"role": "assistant", "content": "The answer is"}]},
    ),
    (
        "empty assistant message dropped",
        {"messages": [user("a"), {"role": "assistant", "content": ""}, user("b")]},
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
            ]
        },
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in REQUEST_CASES], ids=[c[0] for c in REQUEST_CASES]
)
def test_request_translation(body: dict[str, Any], expected: dict[str, Any]) -> None:
    out = translate(body)
    for key, value in expected.items():
        assert out[key] == value, key


def test_default_max_tokens_from_config() -> None:
    assert translate({"messages": [user("x")]}, default_max_tokens=123)["max_tokens"] == 123


def test_stream_flag() -> None:
    assert translate({"messages": [user("x")]}, stream=True)["stream"] is True
    assert "stream" not in translate({"messages": [user("x")], "stream": True}, stream=False)


TOOL_CHOICE_CASES: list[tuple[Any, Any, dict[str, Any] | None]] = [
    (None, None, None),
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    ({"type": "function", "function": {"name": "get_time"}}, None, {"type": "tool", "name": "get_time"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    (
        {"type": "function", "function": {"name": "get_time"}},
        False,
        {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
    ),
    ("auto", True, {"type": "auto"}),
]


@pytest.mark.parametrize(("choice", "parallel", "expected"), TOOL_CHOICE_CASES)
def test_tool_choice(choice: Any, parallel: Any, expected: dict[str, Any] | None) -> None:
    body: dict[str, Any] = {"messages": [user("x")], "tools": [WEATHER, TIME]}
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert translate(body).get("tool_choice") == expected


def test_tool_choice_without_tools_is_not_sent() -> None:
    out = translate({"messages": [user("x")], "tool_choice": "required", "parallel_tool_calls": False})
    assert "tool_choice" not in out
    assert "tools" not in out


def test_tool_round_trip() -> None:
    body = {
        "messages": [
            user("weather in Paris and the time?"),
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "noon"}]},
            user("thanks"),
        ],
        "tools": [WEATHER, TIME],
    }
    out = translate(body)
    assert out["messages"] == [
        user("weather in Paris and the time?"),
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]


def test_tool_results_come_first_in_their_turn() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    body = {
        "messages": [
            user("time?"),
            {"role": "assistant", "content": None, "tool_calls": [call]},
            user("also, hurry"),
            {"role": "tool", "tool_call_id": "t1", "content": "noon"},
        ]
    }
    last = translate(body)["messages"][-1]
    assert [b["type"] for b in last["content"]] == ["tool_result", "text"]


def test_images() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"},
                    },
                ],
            }
        ]
    }
    assert translate(body)["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    "body",
    [
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA"}}],
                }
            ]
        },
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}
            ]
        },
        {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
        {"messages": [{"role": "tool", "content": "no id"}]},
        {"messages": [{"role": "function", "name": "f", "content": "legacy"}]},
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{bad"}}],
                }
            ]
        },
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "[1]"}}],
                }
            ]
        },
        {"messages": []},
        {"messages": [user("x")], "tools": [{"type": "web_search"}]},
    ],
    ids=[
        "bmp",
        "ftp",
        "audio",
        "tool-no-id",
        "function-role",
        "bad-args",
        "array-args",
        "empty",
        "non-function-tool",
    ],
)
def test_untranslatable_requests_are_rejected(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        translate(body)


def test_json_object_mode_is_a_system_instruction() -> None:
    out = translate(
        {
            "messages": [{"role": "system", "content": "You are terse."}, user("x")],
            "response_format": {"type": "json_object"},
        }
    )
    first, _, rest = out["system"].partition("\n\n")
    assert first == "You are terse."
    assert "JSON object" in rest
    assert "response_format" not in out


def test_json_schema_mode_includes_the_schema() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    out = translate(
        {
            "messages": [user("x")],
            "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
        }
    )
    assert "JSON" in out["system"]
    assert orjson.dumps(schema).decode() in out["system"]


def test_text_response_format_adds_nothing() -> None:
    assert "system" not in translate({"messages": [user("x")], "response_format": {"type": "text"}})


def test_registered_and_capabilities() -> None:
    cfg = ProviderConfig(style="anthropic", base_url=BASE, api_key="k")
    assert isinstance(make_adapter("claude", cfg), AnthropicAdapter)
    caps = AnthropicAdapter.capabilities
    assert caps.tools and caps.vision and caps.json_mode
    assert not (caps.n or caps.logprobs or caps.seed or caps.penalties or caps.logit_bias or caps.embeddings)


def test_no_embeddings() -> None:
    with pytest.raises(InvalidRequest, match="embeddings"):
        adapter().embeddings_request({"input": "x"}, "claude")


# -- response translation ---------------------------------------------------------------------------


def message(**fields: Any) -> bytes:
    data: dict[str, Any] = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 3},
    }
    data.update(fields)
    return orjson.dumps(data)


def test_text_response() -> None:
    result = adapter().chat_response(message(), NO_REQUEST)
    body = orjson.loads(result.body)
    assert body["id"] == "chatcmpl-msg_01"
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "claude-sonnet-4"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Hello", "refusal": None}
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] == 13
    assert result.usage == Usage(prompt_tokens=10, completion_tokens=3)


def test_tool_use_response() -> None:
    content = [
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "text", "text": "Checking. "},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
    ]
    body = orjson.loads(
        adapter().chat_response(message(content=content, stop_reason="tool_use"), NO_REQUEST).body
    )
    msg = body["choices"][0]["message"]
    assert msg["content"] == "Checking. "
    assert msg["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    assert body["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_only_response_has_null_content() -> None:
    content = [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]
    body = orjson.loads(
        adapter().chat_response(message(content=content, stop_reason="tool_use"), NO_REQUEST).body
    )
    assert body["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("stop_sequence", "stop"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("pause_turn", "length"),
        ("something_new", "stop"),
    ],
)
def test_finish_reasons(stop_reason: str, finish: str) -> None:
    body = orjson.loads(adapter().chat_response(message(stop_reason=stop_reason), NO_REQUEST).body)
    assert body["choices"][0]["finish_reason"] == finish


def test_usage_with_cache_tokens() -> None:
    usage = {
        "input_tokens": 10,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 5,
        "output_tokens": 7,
    }
    result = adapter().chat_response(message(usage=usage), NO_REQUEST)
    assert result.usage == Usage(
        prompt_tokens=115, completion_tokens=7, cached_tokens=100, cache_write_tokens=5
    )
    assert orjson.loads(result.body)["usage"] == {
        "prompt_tokens": 115,
        "completion_tokens": 7,
        "total_tokens": 122,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 5},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


@pytest.mark.parametrize(
    "raw", [b'{"type":"error","error":{"type":"api_error","message":"boom"}}', b"<html>oops</html>", b"[1]"]
)
def test_bad_200_bodies_are_upstream_errors(raw: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        adapter().chat_response(raw, NO_REQUEST)
    assert info.value.status == 502


# -- stream translation -----------------------------------------------------------------------------


def ev(name: str, **data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


def text_delta(index: int, text: str) -> bytes:
    return ev("content_block_delta", index=index, delta={"type": "text_delta", "text": text})


def json_delta(index: int, partial: str) -> bytes:
    return ev("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": partial})


START = ev(
    "message_start",
    message={
        "id": "msg_9",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "cache_read_input_tokens": 30, "output_tokens": 1},
    },
)
STREAM = b"".join(
    [
        START,
        ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        ev("ping"),
        text_delta(0, "Hel"),
        text_delta(0, "lo \u00e9"),
        ev("content_block_stop", index=0),
        ev(
            "content_block_start",
            index=1,
            content_block={"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}},
        ),
        json_delta(1, ""),
        json_delta(1, '{"city": "Pa'),
        json_delta(1, 'ris"}'),
        ev("content_block_stop", index=1),
        ev(
            "content_block_start",
            index=2,
            content_block={"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}},
        ),
        ev("content_block_stop", index=2),
        ev(
            "message_delta",
            delta={"stop_reason": "tool_use", "stop_sequence": None},
            usage={"output_tokens": 42},
        ),
        ev("message_stop"),
    ]
)


def run_stream(chunks: list[bytes]) -> tuple[AnthropicStream, list[dict[str, Any]]]:
    stream = adapter().stream_translator("claude-sonnet", want_usage=True)
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(stream.feed(chunk))
    out.extend(stream.close())
    events: list[dict[str, Any]] = []
    for item in out:
        assert item.startswith(b"data: ") and item.endswith(b"\n\n"), item
        events.append(orjson.loads(item[len(b"data: ") : -2]))
    return stream, events


def splits(data: bytes) -> dict[str, list[bytes]]:
    return {
        "whole": [data],
        "bytes": [data[i : i + 1] for i in range(len(data))],
        "sevens": [data[i : i + 7] for i in range(0, len(data), 7)],
        "at-newlines": [part + b"\n" for part in data.split(b"\n")[:-1]],
        "crlf": [data.replace(b"\n", b"\r\n")[i : i + 5] for i in range(0, len(data) * 2, 5)],
    }


@pytest.mark.parametrize("split", list(splits(STREAM)))
def test_stream_translation(split: str) -> None:
    stream, events = run_stream(splits(STREAM)[split])
    assert stream.finished
    for e in events:
        assert e["id"] == "chatcmpl-msg_9"
        assert e["object"] == "chat.completion.chunk"
        assert e["model"] == "claude-sonnet-4"
        assert len(e["choices"]) == 1, "the usage chunk must not be emitted by the translator"
    deltas = [e["choices"][0]["delta"] for e in events]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content") or "" for d in deltas) == "Hello \u00e9"

    calls: dict[int, dict[str, Any]] = {}
    for d in deltas:
        for tc in d.get("tool_calls", []):
            call = calls.setdefault(tc["index"], {"id": None, "name": None, "arguments": ""})
            if "id" in tc:
                assert tc["type"] == "function"
                call["id"], call["name"] = tc["id"], tc["function"]["name"]
            call["arguments"] += tc["function"].get("arguments", "")
    assert calls == {
        0: {"id": "toolu_a", "name": "f", "arguments": '{"city": "Paris"}'},
        1: {"id": "toolu_b", "name": "g", "arguments": "{}"},
    }
    finishes = [e["choices"][0]["finish_reason"] for e in events]
    assert finishes[-1] == "tool_calls"
    assert finishes.count("tool_calls") == 1
    assert [f for f in finishes if f is not None] == ["tool_calls"]

    assert stream.usage == Usage(prompt_tokens=50, completion_tokens=42, cached_tokens=30)
    assert stream.usage_chunk is not None
    assert stream.usage_chunk["choices"] == []
    assert stream.usage_chunk["id"] == "chatcmpl-msg_9"
    assert stream.usage_chunk["usage"] == {
        "prompt_tokens": 50,
        "completion_tokens": 42,
        "total_tokens": 92,
        "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_stream_message_delta_usage_overrides_cumulatively() -> None:
    data = START + ev(
        "message_delta",
        delta={"stop_reason": "max_tokens"},
        usage={"output_tokens": 5, "input_tokens": 25, "cache_read_input_tokens": None},
    )
    stream, events = run_stream([data + ev("message_stop")])
    assert stream.usage == Usage(prompt_tokens=55, completion_tokens=5, cached_tokens=30)
    assert events[-1]["choices"][0]["finish_reason"] == "length"


def test_stream_final_event_without_blank_line_is_flushed_on_close() -> None:
    data = START + ev("message_delta", delta={"stop_reason": "max_tokens"}, usage={"output_tokens": 1})
    data += b'event: message_stop\ndata: {"type":"message_stop"}'
    stream, _ = run_stream([data])
    assert stream.finished


def test_end_turn_without_any_content_is_a_failed_generation() -> None:
    """Never a 200 ``stop`` with nothing in it: a retryable 502 that fails over, whole or streamed;
    a stop sequence that cut the answer to nothing is still an answer."""
    with pytest.raises(UpstreamError) as info:
        adapter().chat_response(message(content=[]), NO_REQUEST)
    assert (info.value.status, info.value.code, info.value.retryable) == (
        502,
        "upstream_failed_generation",
        True,
    )
    assert not info.value.blame
    data = START + ev("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 1})
    with pytest.raises(UpstreamError):
        run_stream([data])
    cut = orjson.loads(
        adapter()
        .chat_response(message(content=[], stop_reason="stop_sequence", stop_sequence="x"), NO_REQUEST)
        .body
    )
    assert cut["choices"][0]["finish_reason"] == "stop" and cut["choices"][0]["stop_reason"] == "x"


def test_truncated_stream_is_not_finished() -> None:
    stream, events = run_stream([START + text_delta(0, "Hi")])
    assert not stream.finished
    assert all(e["choices"][0]["finish_reason"] is None for e in events)


@pytest.mark.parametrize(("etype", "status"), [("overloaded_error", 503), ("api_error", 502)])
def test_stream_error_event(etype: str, status: int) -> None:
    stream = adapter().stream_translator("claude-sonnet", want_usage=False)
    stream.feed(START + text_delta(0, "Hi"))
    with pytest.raises(UpstreamError) as info:
        stream.feed(ev("error", error={"type": etype, "message": "Overloaded"})[:-1])
        stream.feed(b"\n")
    assert info.value.status == status
    assert etype in info.value.message
    assert not stream.finished


# -- error translation ------------------------------------------------------------------------------


def err(etype: str, message: str) -> bytes:
    return orjson.dumps(
        {"type": "error", "error": {"type": etype, "message": message}, "request_id": "req_1"}
    )


def test_rate_limit_error() -> None:
    exc = adapter().error(429, {"retry-after": "7"}, err("rate_limit_error", "slow down"))
    assert exc.status == 429
    assert exc.retryable
    assert exc.retry_after == 7.0
    assert exc.headers["retry-after"] == "7"
    assert "slow down" in exc.message


def test_overloaded_error() -> None:
    exc = adapter().error(529, {}, err("overloaded_error", "Overloaded"))
    assert exc.status == 503
    assert exc.upstream_status == 529
    assert exc.retryable
    assert "overloaded_error: Overloaded" in exc.message


def test_invalid_request_error_is_passed_on() -> None:
    exc = adapter().error(400, {}, err("invalid_request_error", "max_tokens: Field required"))
    assert exc.status == 400
    assert not exc.retryable
    assert exc.type == "invalid_request_error"
    assert "max_tokens: Field required" in exc.message


@pytest.mark.parametrize(("status", "client_status"), [(401, 502), (500, 502), (504, 504)])
def test_other_errors(status: int, client_status: int) -> None:
    exc = adapter().error(status, {}, b"<html>upstream broke</html>")
    assert exc.status == client_status
    assert exc.upstream_status == status
    assert "upstream broke" in exc.message
