"""Unit tests of the Gemini adapter: OpenAI chat/embeddings <-> Gemini REST, no network."""

from __future__ import annotations

import base64
import copy
import re
import struct
from typing import Any

import orjson
import pytest

from hedge.config import ProviderConfig
from hedge.errors import InvalidRequest, UpstreamError
from hedge.providers import ADAPTERS
from hedge.providers.base import UpstreamRequest
from hedge.providers.gemini import SKIP_SIGNATURE, GeminiAdapter, GeminiStream


def make(base_url: str = "https://gl.example", **extra: Any) -> GeminiAdapter:
    config = ProviderConfig(
        style="gemini", base_url=base_url, api_key="gk", headers={"x-extra": "1"}, **extra
    )
    return GeminiAdapter("gem", config)


def request(body: dict[str, Any], model: str = "gemini-2.0-flash", stream: bool = False) -> dict[str, Any]:
    """Translate, checking the client's body is left exactly as it was."""
    before = copy.deepcopy(body)
    upstream = make().chat_request(body, model, stream, False)
    assert body == before, "the adapter mutated the client's body"
    out: dict[str, Any] = orjson.loads(upstream.body)
    return out


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


NO_REQUEST = UpstreamRequest("u", b"")
"""For response tests with no matching request: ``*_request`` left no context."""


# -- request ------------------------------------------------------------------------------------------


def test_registered_and_urls() -> None:
    assert ADAPTERS["gemini"] is GeminiAdapter
    adapter = make("https://gl.example/")
    chat = adapter.chat_request({"messages": [user("hi")]}, "gemini-2.0-flash", False, False)
    assert chat.url == "https://gl.example/v1beta/models/gemini-2.0-flash:generateContent"
    assert chat.headers["x-goog-api-key"] == "gk"
    assert chat.headers["content-type"] == "application/json"
    assert chat.headers["x-extra"] == "1"
    assert "authorization" not in chat.headers
    stream = adapter.chat_request({"messages": [user("hi")]}, "gemini-2.0-flash", True, True)
    assert stream.url == "https://gl.example/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    emb = adapter.embeddings_request({"input": "x"}, "text-embedding-004")
    assert emb.url == "https://gl.example/v1beta/models/text-embedding-004:batchEmbedContents"
    assert make("https://gl.example/v1").url("models/m", "generateContent") == (
        "https://gl.example/v1/models/m:generateContent"
    )
    assert adapter.url("tunedModels/t1", "generateContent") == (
        "https://gl.example/v1beta/tunedModels/t1:generateContent"
    )


def test_capabilities_are_honest() -> None:
    caps = GeminiAdapter.capabilities
    assert caps.max_stop_sequences == 5
    assert not caps.logit_bias and not caps.logprobs
    assert caps.parallel_tool_calls, "parallel_tool_calls: false is emulated (the first call is kept)"
    assert (
        caps.tools and caps.vision and caps.json_schema and caps.seed and caps.penalties and caps.embeddings
    )


def test_system_roles_and_merging() -> None:
    out = request(
        {
            "model": "alias",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                user("one"),
                user("two"),
                {"role": "assistant", "content": "three"},
                {"role": "assistant", "content": [{"type": "text", "text": "four"}]},
                user("five"),
            ],
            "hedge": {"tags": ["x"]},
            "logit_bias": {"1": 2},
            "user": "u1",
        }
    )
    assert out["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Use French."}]}
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {"role": "model", "parts": [{"text": "three"}, {"text": "four"}]},
        {"role": "user", "parts": [{"text": "five"}]},
    ]
    assert set(out) == {"contents", "systemInstruction"}, "unknown and hedge params must not leak upstream"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"max_tokens": 50}, {"maxOutputTokens": 50}),
        ({"max_tokens": 50, "max_completion_tokens": 20}, {"maxOutputTokens": 20}),
        ({"stop": "END"}, {"stopSequences": ["END"]}),
        ({"stop": ["a", "b"]}, {"stopSequences": ["a", "b"]}),
        ({"temperature": 0.2, "top_p": 0.9}, {"temperature": 0.2, "topP": 0.9}),
        ({"n": 3, "seed": 7}, {"candidateCount": 3, "seed": 7}),
        (
            {"presence_penalty": 0.5, "frequency_penalty": -0.5},
            {"presencePenalty": 0.5, "frequencyPenalty": -0.5},
        ),
        ({"response_format": {"type": "json_object"}}, {"responseMimeType": "application/json"}),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "x",
                        "schema": {"type": "object", "properties": {"a": {"const": 1}}},
                    },
                }
            },
            {
                "responseMimeType": "application/json",
                "responseJsonSchema": {"type": "object", "properties": {"a": {"const": 1}}},
            },
        ),
        ({"response_format": {"type": "text"}}, None),
        ({"temperature": None}, None),
    ],
)
def test_generation_config(params: dict[str, Any], expected: dict[str, Any] | None) -> None:
    out = request({"messages": [user("hi")], **params})
    assert out.get("generationConfig") == expected


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": ["string", "null"]}}},
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        (None, None),
        ("auto", {"functionCallingConfig": {"mode": "AUTO"}}),
        ("none", {"functionCallingConfig": {"mode": "NONE"}}),
        ("required", {"functionCallingConfig": {"mode": "ANY"}}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}},
        ),
    ],
)
def test_tools_and_tool_choice(choice: Any, config: dict[str, Any] | None) -> None:
    body: dict[str, Any] = {
        "messages": [user("hi")],
        "tools": [WEATHER, TIME, {"type": "custom", "custom": {}}],
    }
    if choice is not None:
        body["tool_choice"] = choice
    out = request(body)
    assert out["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parametersJsonSchema": WEATHER["function"]["parameters"],  # type: ignore[index]
                },
                {"name": "get_time"},
            ]
        }
    ]
    assert out.get("toolConfig") == config


def test_tool_choice_without_tools_is_not_sent() -> None:
    out = request({"messages": [user("hi")], "tool_choice": "none"})
    assert "tools" not in out and "toolConfig" not in out


def test_tool_round_trip() -> None:
    out = request(
        {
            "messages": [
                user("weather and time?"),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": ""},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
                {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21}'},
                user("thanks"),
            ]
        }
    )
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "weather and time?"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
                {"functionResponse": {"name": "get_weather", "response": {"content": {"temp": 21}}}},
                {"text": "thanks"},
            ],
        },
    ]


def test_tool_result_for_unknown_call_is_rejected() -> None:
    with pytest.raises(InvalidRequest) as info:
        request({"messages": [user("x"), {"role": "tool", "tool_call_id": "call_zzz", "content": "1"}]})
    assert info.value.param == "messages[1].tool_call_id"


@pytest.mark.parametrize(
    ("arguments", "args"),
    [
        ('{"a": 1}', {"a": 1}),
        ("not json", {"arguments": "not json"}),
        ("[1, 2]", {"arguments": [1, 2]}),
        (None, {}),
    ],
)
def test_tool_call_arguments_become_an_object(arguments: Any, args: dict[str, Any]) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    out = request({"messages": [user("x"), {"role": "assistant", "tool_calls": [call]}]})
    assert out["contents"][1]["parts"] == [{"functionCall": {"name": "f", "args": args}}]


def test_images_and_files() -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    out = request(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                        {"type": "image_url", "image_url": {"url": "https://x.example/cat.webp?size=2"}},
                        {"type": "image_url", "image_url": {"url": "data:text/plain,hello%20there"}},
                        {"type": "input_audio", "input_audio": {"data": "QUJD", "format": "mp3"}},
                        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
                    ],
                }
            ]
        }
    )
    assert out["contents"][0]["parts"] == [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/png", "data": png}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://x.example/cat.webp?size=2"}},
        {"inlineData": {"mimeType": "text/plain", "data": base64.b64encode(b"hello there").decode()}},
        {"inlineData": {"mimeType": "audio/mp3", "data": "QUJD"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
    ]


def test_unsupported_content_part_is_rejected() -> None:
    with pytest.raises(InvalidRequest):
        request({"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": "x"}]}]})


def test_thought_signatures_round_trip() -> None:
    raw = {
        "responseId": "sig-round-trip",
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"functionCall": {"name": "f", "args": {"x": 1}}, "thoughtSignature": "c2lnMQ=="},
                        {"functionCall": {"name": "g", "args": {}}},
                    ],
                },
                "finishReason": "STOP",
            }
        ],
    }
    message = orjson.loads(make().chat_response(orjson.dumps(raw), NO_REQUEST).body)["choices"][0]["message"]
    first, second = message["tool_calls"]
    for call in (first, second):
        assert re.fullmatch(r"call_[0-9a-f]{24}", call["id"]), "ids valid for every provider"
    assert first["extra_content"] == {"google": {"thought_signature": "c2lnMQ=="}}
    assert "extra_content" not in second
    body = {"messages": [user("go"), message]}
    for model in ("gemini-2.5-flash", "gemini-3-pro-preview"):
        parts = request(body, model)["contents"][1]["parts"]
        assert parts[0]["thoughtSignature"] == "c2lnMQ==", "a real signature is always sent back"
        assert "thoughtSignature" not in parts[1]
    # A client that rebuilt the message without extra_content: the memory has the signature.
    rebuilt = {
        **message,
        "tool_calls": [{k: v for k, v in c.items() if k != "extra_content"} for c in (first,)],
    }
    parts = request({"messages": [user("go"), rebuilt]}, "gemini-3-pro-preview")["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == "c2lnMQ=="
    # An id of the older form (signature after "~") still gives its signature back.
    legacy = {"role": "assistant", "tool_calls": [{"id": "call_old~c2lnMg==", "function": {"name": "f"}}]}
    parts = request({"messages": [user("go"), legacy]}, "gemini-3-pro-preview")["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == "c2lnMg=="
    # A call without a signature (e.g. made by another provider): the sentinel, for Gemini 3+ only.
    foreign = {
        "role": "assistant",
        "tool_calls": [{"id": "call_x", "function": {"name": "f", "arguments": "{}"}}] * 2,
    }
    parts = request({"messages": [user("go"), foreign]}, "gemini-3-flash")["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in parts] == [SKIP_SIGNATURE, None]
    parts = request({"messages": [user("go"), foreign]}, "gemini-2.5-flash")["contents"][1]["parts"]
    assert all("thoughtSignature" not in p for p in parts)


def test_alike_calls_with_different_signatures_get_different_ids() -> None:
    """Without a responseId two answers calling f(x=1) would share an id, and a client that dropped
    extra_content would send one conversation's signature in the other."""
    ids = []
    for signature in ("c2lnQQ==", "c2lnQg=="):
        cand = {
            "content": {
                "parts": [{"functionCall": {"name": "f", "args": {"x": 1}}, "thoughtSignature": signature}]
            }
        }
        raw = orjson.dumps({"candidates": [{**cand, "finishReason": "STOP"}]})
        call = orjson.loads(make().chat_response(raw, NO_REQUEST).body)["choices"][0]["message"][
            "tool_calls"
        ][0]
        ids.append(call["id"])
        bare = {"role": "assistant", "tool_calls": [{"id": call["id"], "function": call["function"]}]}
        parts = request({"messages": [user("go"), bare]}, "gemini-3-pro-preview")["contents"][1]["parts"]
        assert parts[0]["thoughtSignature"] == signature
    assert ids[0] != ids[1]


# -- response -----------------------------------------------------------------------------------------


def response(candidates: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    raw = orjson.dumps({"candidates": candidates, **extra})
    out: dict[str, Any] = make().chat_response(raw, NO_REQUEST).body
    return orjson.loads(out)  # type: ignore[no-any-return]


def text_candidate(*texts: str, finish: str | None = "STOP", **extra: Any) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": t} for t in texts]}, **extra}
    if finish:
        cand["finishReason"] = finish
    return cand


FAILED = "upstream_failed_generation"


@pytest.mark.parametrize(
    ("reason", "with_text", "without_parts"),
    [
        # reason, with a text part, with no content at all (what failed generations look like)
        ("STOP", "stop", FAILED),
        ("MAX_TOKENS", "length", "length"),
        ("SAFETY", "content_filter", "content_filter"),
        ("RECITATION", "content_filter", "content_filter"),
        ("BLOCKLIST", "content_filter", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter", "content_filter"),
        ("SPII", "content_filter", "content_filter"),
        ("IMAGE_SAFETY", "content_filter", "content_filter"),
        ("MODEL_ARMOR", "content_filter", "content_filter"),
        ("OTHER", "stop", FAILED),
        ("LANGUAGE", "stop", FAILED),
        ("FINISH_REASON_UNSPECIFIED", "stop", FAILED),
        ("SOMETHING_NEW", "stop", FAILED),
        ("MALFORMED_FUNCTION_CALL", FAILED, FAILED),
        ("UNEXPECTED_TOOL_CALL", FAILED, FAILED),
        ("TOO_MANY_TOOL_CALLS", FAILED, FAILED),
        ("MISSING_THOUGHT_SIGNATURE", FAILED, FAILED),
        ("MALFORMED_RESPONSE", FAILED, FAILED),
    ],
)
def test_finish_reasons(reason: str, with_text: str, without_parts: str) -> None:
    """Every native finish reason, whole and streamed: an OpenAI finish reason, or a failed generation
    (a retryable 502 that fails over, never a 200 ``stop`` with nothing in it)."""
    empty: dict[str, Any] = {"content": {}, "finishReason": reason, "index": 0}
    for cand, expected in ((text_candidate("x", finish=reason), with_text), (empty, without_parts)):
        stream = make().stream_translator("m", False)
        if expected == FAILED:
            with pytest.raises(UpstreamError) as info:
                response([cand])
            assert (info.value.status, info.value.code, info.value.retryable) == (502, FAILED, True)
            assert not info.value.blame, "the model misbehaved once: not a reason to open the breaker"
            with pytest.raises(UpstreamError):
                stream.feed(sse({"candidates": [cand]}))
        else:
            assert response([cand])["choices"][0]["finish_reason"] == expected
            chunks = events(stream.feed(sse({"candidates": [cand]})))
            assert chunks[-1]["choices"][0]["finish_reason"] == expected


def test_stop_with_an_empty_text_part_is_an_empty_answer() -> None:
    """A stop sequence at the very start leaves ``[{"text": ""}]``: an answer, as OpenAI gives it."""
    assert response([text_candidate("")])["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "", "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }


def test_failed_generation_after_streamed_text_fails_the_stream() -> None:
    stream = make().stream_translator("m", False)
    assert events(stream.feed(sse({"candidates": [text_candidate("Let me look", finish=None)]})))
    with pytest.raises(UpstreamError) as info:
        stream.feed(sse({"candidates": [{"content": {}, "finishReason": "MALFORMED_FUNCTION_CALL"}]}))
    assert info.value.code == FAILED


def test_text_response_and_usage() -> None:
    thought = {"text": "secret reasoning", "thought": True}
    cand = text_candidate("Hello", ", world")
    cand["content"]["parts"].insert(0, thought)
    raw = {
        "candidates": [cand, text_candidate("Second", finish="MAX_TOKENS", index=1)],
        "usageMetadata": {
            "promptTokenCount": 100,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 7,
            "cachedContentTokenCount": 60,
            "totalTokenCount": 127,
        },
        "modelVersion": "gemini-2.0-flash-001",
        "responseId": "abc123",
    }
    translated = make().chat_response(orjson.dumps(raw), NO_REQUEST)
    out = orjson.loads(translated.body)
    assert out["object"] == "chat.completion"
    assert out["id"] == "chatcmpl-abc123"
    assert out["model"] == "gemini-2.0-flash-001"
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Hello, world", "refusal": None}
    assert out["choices"][1]["message"]["content"] == "Second"
    assert out["choices"][1]["finish_reason"] == "length"
    assert out["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 27,
        "total_tokens": 127,
        "prompt_tokens_details": {"cached_tokens": 60},
        "completion_tokens_details": {"reasoning_tokens": 7},
    }
    usage = translated.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (100, 27, 60)


def test_model_falls_back_to_the_requested_one() -> None:
    adapter = make()
    upstream = adapter.chat_request({"messages": [user("x")]}, "gemini-2.5-pro", False, False)
    raw = orjson.dumps({"candidates": [text_candidate("y")]})
    out = orjson.loads(adapter.chat_response(raw, upstream).body)
    assert out["model"] == "gemini-2.5-pro"
    assert "usage" not in out
    assert orjson.loads(adapter.chat_response(raw, NO_REQUEST).body)["model"] == "", "no context, no model"


def test_function_call_response() -> None:
    parts = [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
    ]
    cand = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}
    out = response([cand], responseId="r1")
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [c["function"] for c in calls] == [
        {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"name": "get_weather", "arguments": '{"city":"Rome"}'},
    ]
    assert all(c["type"] == "function" and c["id"].startswith("call_") for c in calls)
    assert calls[0]["id"] != calls[1]["id"]
    assert response([cand], responseId="r1")["choices"][0]["message"]["tool_calls"] == calls, (
        "ids are deterministic"
    )


def test_blocked_prompt() -> None:
    raw = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}}
    translated = make().chat_response(orjson.dumps(raw), NO_REQUEST)
    out = orjson.loads(translated.body)
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None,
            "finish_reason": "content_filter",
        }
    ]
    assert translated.usage is not None and translated.usage.prompt_tokens == 5


@pytest.mark.parametrize(
    "raw", [b"not json", b"[1]", b'{"error": {"code": 500, "message": "boom"}}', b'{"usageMetadata": {}}']
)
def test_bad_success_bodies(raw: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        make().chat_response(raw, NO_REQUEST)
    assert info.value.status == 502
    assert info.value.code == "upstream_bad_response"


# -- streaming ----------------------------------------------------------------------------------------


def sse(*objects: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(o) + b"\r\n\r\n" for o in objects)


def events(out: list[bytes]) -> list[dict[str, Any]]:
    chunks = []
    for item in out:
        for block in item.split(b"\n\n"):
            if block:
                assert block.startswith(b"data: ")
                chunks.append(orjson.loads(block[6:]))
    return chunks


def run(stream: GeminiStream, raw: bytes, size: int) -> list[dict[str, Any]]:
    out: list[bytes] = []
    for i in range(0, len(raw), size):
        out.extend(stream.feed(raw[i : i + size]))
    out.extend(stream.close())
    return events(out)


TEXT_STREAM = sse(
    {"candidates": [text_candidate("Hel", finish=None)], "responseId": "s1", "modelVersion": "gemini-x"},
    {"candidates": [text_candidate("lo ", finish=None)], "usageMetadata": {"promptTokenCount": 4}},
    {
        "candidates": [text_candidate("world", finish="STOP")],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 3, "cachedContentTokenCount": 2},
    },
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(TEXT_STREAM)])
def test_text_stream_in_awkward_pieces(size: int) -> None:
    stream = make().stream_translator("gemini-2.0-flash", False)
    chunks = run(stream, TEXT_STREAM, size)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo "},
        {"content": "world"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, None, "stop"]
    assert {c["id"] for c in chunks} == {"chatcmpl-s1"}
    assert {c["model"] for c in chunks} == {"gemini-x"}
    assert all(c["object"] == "chat.completion.chunk" and "usage" not in c for c in chunks)
    assert stream.finished
    assert stream.usage is not None
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens, stream.usage.cached_tokens) == (
        4,
        3,
        2,
    )
    assert stream.usage_chunk is not None
    assert stream.usage_chunk["choices"] == []
    assert stream.usage_chunk["usage"]["total_tokens"] == 7
    assert stream.usage_chunk["id"] == "chatcmpl-s1"


def test_stream_marks_usage_null_when_client_wants_usage() -> None:
    chunks = run(make().stream_translator("m", True), TEXT_STREAM, 10)
    assert all("usage" in c and c["usage"] is None for c in chunks)


def test_stream_not_finished_without_finish_reason() -> None:
    stream = make().stream_translator("m", False)
    raw = sse({"candidates": [text_candidate("partial", finish=None)]})
    chunks = run(
        stream, raw.rstrip(b"\r\n"), 5
    )  # the last event even lacks its blank line: close() flushes it
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "partial"},
    ]
    assert not stream.finished


def test_function_call_stream() -> None:
    call = {"functionCall": {"name": "f", "args": {"q": "a b"}}, "thoughtSignature": "U0lH"}
    raw = sse(
        {"candidates": [text_candidate("Let me look.", finish=None)], "responseId": "s2"},
        {"candidates": [{"content": {"role": "model", "parts": [call]}}]},
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"functionCall": {"name": "g"}}]},
                    "finishReason": "STOP",
                }
            ]
        },
    )
    for size in (1, 5, 13):
        stream = make().stream_translator("m", False)
        chunks = run(stream, raw, size)
        tool_deltas = [
            c["choices"][0]["delta"]["tool_calls"][0]
            for c in chunks
            if "tool_calls" in c["choices"][0]["delta"]
        ]
        assert [(d["index"], d["type"], d["function"]) for d in tool_deltas] == [
            (0, "function", {"name": "f", "arguments": '{"q":"a b"}'}),
            (1, "function", {"name": "g", "arguments": "{}"}),
        ]
        assert re.fullmatch(r"call_[0-9a-f]{24}", tool_deltas[0]["id"])
        assert tool_deltas[0]["extra_content"] == {"google": {"thought_signature": "U0lH"}}
        assert chunks[-1]["choices"][0] == {
            "index": 0,
            "delta": {},
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
        assert stream.finished


def test_blocked_prompt_stream() -> None:
    stream = make().stream_translator("m", False)
    chunks = run(stream, sse({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}), 4)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "content_filter"]
    assert stream.finished


def test_multiple_candidates_stream() -> None:
    raw = sse(
        {
            "candidates": [
                text_candidate("a", finish=None, index=0),
                text_candidate("b", finish=None, index=1),
            ]
        },
        {"candidates": [text_candidate("", finish="STOP", index=0)]},
        {"candidates": [text_candidate("c", finish="MAX_TOKENS", index=1)]},
    )
    stream = make().stream_translator("m", False)
    out: list[bytes] = stream.feed(raw[:-3])  # the last event is not complete yet
    assert not stream.finished, "candidate 1 has not finished yet"
    out += stream.feed(raw[-3:])
    chunks = events(out)
    assert stream.finished
    finishes = {
        c["choices"][0]["index"]: c["choices"][0]["finish_reason"]
        for c in chunks
        if c["choices"][0]["finish_reason"]
    }
    assert finishes == {0: "stop", 1: "length"}


@pytest.mark.parametrize(
    ("error", "status", "retryable"),
    [
        ({"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}, 429, True),
        ({"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}, 400, False),
        ({"message": "no code"}, 502, True),
    ],
)
def test_stream_error_event(error: dict[str, Any], status: int, retryable: bool) -> None:
    stream = make().stream_translator("m", False)
    stream.feed(sse({"candidates": [text_candidate("x", finish=None)]}))
    with pytest.raises(UpstreamError) as info:
        stream.feed(sse({"error": error}))
    assert info.value.status == status
    assert info.value.retryable is retryable
    assert "mid-stream" in info.value.message


def test_stream_event_that_is_not_json() -> None:
    with pytest.raises(UpstreamError) as info:
        make().stream_translator("m", False).feed(b"data: {oops\r\n\r\n")
    assert info.value.code == "upstream_bad_response"


# -- errors -------------------------------------------------------------------------------------------


def google(code: int, status: str, message: str, details: list[Any] | None = None) -> bytes:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        err["details"] = details
    return orjson.dumps({"error": err})


def test_error_429_reads_retry_info() -> None:
    retry = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]
    exc = make().error(429, {}, google(429, "RESOURCE_EXHAUSTED", "Quota exceeded", retry))
    assert (exc.status, exc.upstream_status, exc.retryable, exc.retry_after) == (429, 429, True, 37.0)
    assert exc.type == "rate_limit_error" and exc.code == "rate_limit_exceeded"
    assert "Quota exceeded" in exc.message
    # A retry-after header wins over the body.
    assert (
        make().error(429, {"retry-after": "3"}, google(429, "RESOURCE_EXHAUSTED", "q", retry)).retry_after
        == 3.0
    )


@pytest.mark.parametrize(
    ("delay", "seconds"), [("34.4s", 35.0), ("34s", 34.0), ("0.2s", 1.0), ("59.000001s", 60.0)]
)
def test_retry_info_delay_rounds_up(delay: str, seconds: float) -> None:
    """A client told to wait 34 s of a 34.4 s delay is refused again: Retry-After rounds up."""
    retry = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]
    exc = make().error(429, {}, google(429, "RESOURCE_EXHAUSTED", "Quota exceeded", retry))
    assert exc.retry_after == seconds
    assert exc.headers["retry-after"] == str(int(seconds))


def test_error_503_and_500_are_retryable() -> None:
    exc = make().error(503, {}, google(503, "UNAVAILABLE", "The model is overloaded."))
    assert (exc.status, exc.retryable, exc.code) == (503, True, "upstream_unavailable")
    assert "overloaded" in exc.message
    exc = make().error(500, {}, google(500, "INTERNAL", "oops"))
    assert (exc.status, exc.retryable, exc.upstream_status) == (502, True, 500)


def test_error_400_passes_on() -> None:
    exc = make().error(400, {}, google(400, "INVALID_ARGUMENT", "* contents: required"))
    assert (exc.status, exc.retryable, exc.message) == (400, False, "* contents: required")
    assert exc.code == "invalid_argument" and exc.type == "invalid_request_error"


def test_error_bad_api_key_is_the_gateways_problem() -> None:
    info = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
    exc = make().error(400, {}, google(400, "INVALID_ARGUMENT", "API key not valid.", info))
    assert (exc.status, exc.code, exc.upstream_status) == (502, "upstream_auth_error", 400)
    exc = make().error(403, {}, google(403, "PERMISSION_DENIED", "denied"))
    assert exc.code == "upstream_auth_error"


def test_error_bodies_not_in_googles_shape() -> None:
    wrapped = b"[" + google(404, "NOT_FOUND", "models/x is not found") + b"]"
    assert "models/x is not found" in make().error(404, {}, wrapped).message
    exc = make().error(502, {}, b"<html>Bad Gateway</html>")
    assert exc.status == 502 and "Bad Gateway" in exc.message


# -- embeddings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"input": "hello world"},
            [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "hello world"}]}}],
        ),
        (
            {"input": ["a", "b c"], "dimensions": 16, "user": "u", "hedge": {}},
            [
                {
                    "model": "models/text-embedding-004",
                    "content": {"parts": [{"text": "a"}]},
                    "outputDimensionality": 16,
                },
                {
                    "model": "models/text-embedding-004",
                    "content": {"parts": [{"text": "b c"}]},
                    "outputDimensionality": 16,
                },
            ],
        ),
    ],
)
def test_embeddings_request(body: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    before = copy.deepcopy(body)
    upstream = make().embeddings_request(body, "text-embedding-004")
    assert body == before
    assert orjson.loads(upstream.body) == {"requests": expected}


@pytest.mark.parametrize("bad", [[1, 2, 3], [[1, 2]], [], None, ["ok", 3]])
def test_embeddings_request_rejects_non_text(bad: Any) -> None:
    with pytest.raises(InvalidRequest):
        make().embeddings_request({"input": bad}, "text-embedding-004")


VALUES = [[0.25, -0.5, 1.0], [0.125, 0.0, -1.0]]
BATCH = orjson.dumps({"embeddings": [{"values": v} for v in VALUES]})


def test_embeddings_response_floats_and_estimated_usage() -> None:
    adapter = make()
    upstream = adapter.embeddings_request(
        {"input": ["one two three", "four"], "encoding_format": "float"}, "text-embedding-004"
    )
    translated = adapter.embeddings_response(BATCH, upstream)
    out = orjson.loads(translated.body)
    assert out == {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(VALUES)],
        "model": "text-embedding-004",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
    assert translated.usage is not None and translated.usage.prompt_tokens == 4


def test_embeddings_response_base64_like_openai() -> None:
    adapter = make()
    upstream = adapter.embeddings_request(
        {"input": ["a", "b"], "encoding_format": "base64"}, "text-embedding-004"
    )
    out = orjson.loads(adapter.embeddings_response(BATCH, upstream).body)
    decoded = [list(struct.unpack("<3f", base64.b64decode(d["embedding"]))) for d in out["data"]]
    assert decoded == VALUES


def test_embeddings_response_single_and_reported_usage() -> None:
    adapter = make()
    upstream = adapter.embeddings_request({"input": "a b"}, "gemini-embedding-001")
    raw = orjson.dumps({"embedding": {"values": [1.0]}, "usageMetadata": {"promptTokenCount": 9}})
    out = orjson.loads(adapter.embeddings_response(raw, upstream).body)
    assert out["data"][0]["embedding"] == [1.0]
    assert out["usage"]["prompt_tokens"] == 9


def test_embeddings_response_without_embeddings_is_an_error() -> None:
    with pytest.raises(UpstreamError):
        make().embeddings_response(b'{"something": "else"}', NO_REQUEST)


def test_embeddings_context_is_per_request() -> None:
    """Interleaved requests through one adapter: each answer gets the format and model its request asked for.

    The adapter keeps no per-request state: a request built later does not overwrite
    what an earlier one needs for its answer.
    """
    adapter = make()
    floats = adapter.embeddings_request({"input": ["x y"], "encoding_format": "float"}, "m-float")
    b64 = adapter.embeddings_request({"input": ["x"], "encoding_format": "base64"}, "m-b64")
    chat = adapter.chat_request({"messages": [user("hi")]}, "m-chat", False, False)
    out_b64 = orjson.loads(adapter.embeddings_response(BATCH, b64).body)
    out_floats = orjson.loads(adapter.embeddings_response(BATCH, floats).body)
    assert out_floats["model"] == "m-float" and isinstance(out_floats["data"][0]["embedding"], list)
    assert out_floats["usage"]["prompt_tokens"] == 2
    assert out_b64["model"] == "m-b64" and isinstance(out_b64["data"][0]["embedding"], str)
    assert out_b64["usage"]["prompt_tokens"] == 1
    reply = orjson.dumps({"candidates": [text_candidate("y")]})
    assert orjson.loads(adapter.chat_response(reply, chat).body)["model"] == "m-chat"
