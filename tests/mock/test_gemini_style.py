"""The Gemini mock driven by the google-genai SDK (and once through the gateway by the openai SDK)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from conftest import MASTER_KEY, Mock, start_gateway, start_mock

MODEL = "gemini-2.0-flash"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather in a city",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
        "required": ["city"],
    },
)
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)


@pytest.fixture(scope="module")
def gmock(logs: Path) -> Iterator[Mock]:
    mock = start_mock("gemini", logs, "--seed", "3")
    yield mock
    mock.stop()


@pytest.fixture(autouse=True)
def _clean_gmock(gmock: Mock) -> Iterator[None]:
    """Each test starts with a well-behaved mock and fresh counters, whatever the previous test set."""
    yield
    gmock.reset()
    gmock.configure(api_key=None, retry_after=1)


@pytest.fixture
def gclient(gmock: Mock) -> genai.Client:
    # attempts=1: the SDK must not retry, so a failure shows at once and the request count is exact.
    options = types.HttpOptions(
        base_url=gmock.url, timeout=10_000, retry_options=types.HttpRetryOptions(attempts=1)
    )
    return genai.Client(api_key="k", http_options=options)


def test_generate_content(gclient: genai.Client, gmock: Mock) -> None:
    resp = gclient.models.generate_content(model=MODEL, contents="hello there")
    assert resp.text == f"{MODEL} says: hello there"
    assert resp.candidates and resp.candidates[0].finish_reason == types.FinishReason.STOP
    usage = resp.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (8, 4, 12)
    assert resp.model_version == MODEL and resp.response_id
    stats = gmock.stats()
    assert stats["last_headers"]["x-goog-api-key"] == "k"
    assert stats["last_body"]["contents"] == [{"role": "user", "parts": [{"text": "hello there"}]}]


def test_system_instruction(gclient: genai.Client, gmock: Mock) -> None:
    config = types.GenerateContentConfig(system_instruction="You are terse and kind.")
    resp = gclient.models.generate_content(model=MODEL, contents="hello there", config=config)
    assert resp.text == f"{MODEL} says: hello there"
    assert gmock.stats()["last_body"]["systemInstruction"]["parts"] == [{"text": "You are terse and kind."}]
    assert resp.usage_metadata is not None
    assert resp.usage_metadata.prompt_token_count == 8 + 5 + 3, "the system turn counts as prompt"


def test_stop_sequences(gclient: genai.Client) -> None:
    config = types.GenerateContentConfig(stop_sequences=["there"])
    resp = gclient.models.generate_content(model=MODEL, contents="hello there friend", config=config)
    assert resp.text == f"{MODEL} says: hello "
    assert resp.candidates and resp.candidates[0].finish_reason == types.FinishReason.STOP


def test_max_output_tokens(gclient: genai.Client) -> None:
    config = types.GenerateContentConfig(max_output_tokens=2)
    resp = gclient.models.generate_content(model=MODEL, contents="one two three four", config=config)
    assert resp.text == f"{MODEL} says: "
    assert resp.candidates and resp.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert resp.usage_metadata is not None and resp.usage_metadata.candidates_token_count == 2


def test_candidate_count_and_json_mode(gclient: genai.Client) -> None:
    config = types.GenerateContentConfig(candidate_count=2, response_mime_type="application/json")
    resp = gclient.models.generate_content(model=MODEL, contents="hi", config=config)
    assert resp.candidates is not None and len(resp.candidates) == 2
    assert resp.parsed is None
    assert resp.candidates[1].content is not None and resp.candidates[1].content.parts is not None
    assert resp.candidates[1].content.parts[0].text == '{"model":"gemini-2.0-flash","echo":"hi"}'


def test_generate_content_stream(gclient: genai.Client, gmock: Mock) -> None:
    before = gmock.stats()["streams_completed"]
    chunks = list(gclient.models.generate_content_stream(model=MODEL, contents="stream this please"))
    assert len(chunks) == 5
    assert "".join(c.text or "" for c in chunks) == f"{MODEL} says: stream this please"
    finishes = [c.candidates[0].finish_reason if c.candidates else None for c in chunks]
    assert finishes == [None, None, None, None, types.FinishReason.STOP]
    last_usage = chunks[-1].usage_metadata
    assert last_usage is not None and last_usage.candidates_token_count == 5
    stats = gmock.stats()
    assert stats["streams_completed"] == before + 1
    assert any(path.endswith(":streamGenerateContent") for path in stats["by_path"])


def test_function_calling_two_turns(gclient: genai.Client, gmock: Mock) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])], automatic_function_calling=NO_AFC
    )
    question = types.Content(role="user", parts=[types.Part(text="weather in Paris?")])
    first = gclient.models.generate_content(model=MODEL, contents=[question], config=config)
    calls = first.function_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].name == "get_weather"
    assert calls[0].args == {"city": "weather in Paris?", "unit": "C"}
    assert first.candidates and first.candidates[0].content is not None

    answer = types.Part.from_function_response(name="get_weather", response={"temp_c": 21})
    history = [question, first.candidates[0].content, types.Content(role="user", parts=[answer])]
    second = gclient.models.generate_content(model=MODEL, contents=history, config=config)
    assert second.function_calls is None
    assert second.text == f'{MODEL} says: the tool returned {{"temp_c":21}}'
    assert gmock.stats()["last_body"]["contents"][1]["role"] == "model"


def test_forced_function_and_none(gclient: genai.Client) -> None:
    time_fn = types.FunctionDeclaration(name="get_time", parameters_json_schema={"type": "object"})
    tools = [types.Tool(function_declarations=[WEATHER, time_fn])]
    forced = types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(mode="ANY", allowed_function_names=["get_time"])
    )
    config = types.GenerateContentConfig(tools=tools, tool_config=forced, automatic_function_calling=NO_AFC)
    resp = gclient.models.generate_content(model=MODEL, contents="what now?", config=config)
    assert [c.name for c in resp.function_calls or []] == ["get_time"]
    off = types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="NONE"))
    config = types.GenerateContentConfig(tools=tools, tool_config=off, automatic_function_calling=NO_AFC)
    resp = gclient.models.generate_content(model=MODEL, contents="what now?", config=config)
    assert resp.function_calls is None and resp.text == f"{MODEL} says: what now?"


def test_embed_content(gclient: genai.Client) -> None:
    config = types.EmbedContentConfig(output_dimensionality=16)
    resp = gclient.models.embed_content(
        model="text-embedding-004", contents=["alpha", "beta", "alpha"], config=config
    )
    vectors = [e.values or [] for e in resp.embeddings or []]
    assert [len(v) for v in vectors] == [16, 16, 16]
    assert vectors[0] == vectors[2] != vectors[1]
    assert math.isclose(math.fsum(x * x for x in vectors[0]), 1.0, rel_tol=1e-9)


def test_list_and_get_models(gclient: genai.Client) -> None:
    names = [m.name for m in gclient.models.list()]
    assert "models/gemini-2.0-flash" in names and "models/text-embedding-004" in names
    assert gclient.models.get(model=MODEL).display_name == "Gemini 2.0 Flash"
    with pytest.raises(errors.ClientError) as info:
        gclient.models.get(model="no-such-model")
    assert info.value.code == 404 and info.value.status == "NOT_FOUND"


def test_injected_503(gclient: genai.Client, gmock: Mock) -> None:
    gmock.configure(fail_rate=1, fail_status=503)
    with pytest.raises(errors.ServerError) as info:
        gclient.models.generate_content(model=MODEL, contents="hi")
    assert info.value.code == 503 and info.value.status == "UNAVAILABLE"
    assert gmock.stats()["requests"] == 1, "the SDK must not retry"
    with pytest.raises(errors.ServerError):
        list(gclient.models.generate_content_stream(model=MODEL, contents="hi"))


def test_injected_429_has_retry_info(gmock: Mock) -> None:
    gmock.configure(fail_rate=1, fail_status=429, retry_after=2)
    resp = httpx.post(f"{gmock.url}/v1beta/models/{MODEL}:generateContent?key=k", json={"contents": []})
    assert resp.status_code == 429 and resp.headers["retry-after"] == "2"
    err = resp.json()["error"]
    assert (err["code"], err["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert err["details"][0]["retryDelay"] == "2s"


def test_mid_stream_disconnect(gclient: genai.Client, gmock: Mock) -> None:
    gmock.configure(fail_rate=1, fail_mode="disconnect")
    with pytest.raises(Exception):  # noqa: B017 - the transport's error type is the SDK's business
        list(gclient.models.generate_content_stream(model=MODEL, contents="one two three four five"))
    assert gmock.stats()["streams_cancelled"] == 1


def test_auth(gclient: genai.Client, gmock: Mock) -> None:
    gmock.configure(api_key="right")
    with pytest.raises(errors.ClientError) as info:
        gclient.models.generate_content(model=MODEL, contents="hi")
    assert info.value.code == 400 and "API key not valid" in (info.value.message or "")
    ok = httpx.post(
        f"{gmock.url}/v1beta/models/{MODEL}:generateContent?key=right",
        json={"contents": [{"parts": [{"text": "x"}]}]},
    )
    assert ok.status_code == 200
    missing = httpx.post(f"{gmock.url}/v1beta/models/{MODEL}:generateContent", json={"contents": []})
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"


def test_stream_without_sse_is_a_json_array(gmock: Mock) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "a b"}]}]}
    resp = httpx.post(
        f"{gmock.url}/v1beta/models/{MODEL}:streamGenerateContent", json=body, headers={"x-goog-api-key": "k"}
    )
    items: list[dict[str, Any]] = resp.json()
    assert "".join(i["candidates"][0]["content"]["parts"][0]["text"] for i in items) == f"{MODEL} says: a b"
    assert items[-1]["candidates"][0]["finishReason"] == "STOP"
    sse = httpx.post(
        f"{gmock.url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
        json=body,
        headers={"x-goog-api-key": "k"},
    )
    assert sse.headers["content-type"].startswith("text/event-stream")
    assert sse.content.startswith(b"data: {") and sse.content.endswith(b"}\r\n\r\n")


def test_through_the_gateway(gmock: Mock, logs: Path) -> None:
    """OpenAI SDK -> hedge (gemini adapter) -> this mock: the adapter and the mock agree on the wire."""
    import openai

    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {"g": {"style": "gemini", "base_url": gmock.url, "api_key": "k"}},
        "models": {
            "chat": {
                "deployments": [{"provider": "g", "model": MODEL, "price": {"input": 1.0, "output": 2.0}}]
            },
            "emb": {"deployments": [{"provider": "g", "model": "text-embedding-004"}]},
        },
    }
    gateway = start_gateway(config, logs)
    try:
        client = openai.OpenAI(base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
        messages: list[Any] = [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "hello there"},
        ]
        resp = client.chat.completions.create(model="chat", messages=messages)
        assert resp.choices[0].message.content == f"{MODEL} says: hello there"
        assert resp.usage is not None and (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (13, 4)

        stream = client.chat.completions.create(
            model="chat", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        assert (
            "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            == f"{MODEL} says: hello there"
        )
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4

        tools: list[Any] = [
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": WEATHER.parameters_json_schema},
            }
        ]
        first = client.chat.completions.create(model="chat", messages=messages, tools=tools)
        assert first.choices[0].finish_reason == "tool_calls"
        call = (first.choices[0].message.tool_calls or [])[0]
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "21C"},
        ]
        second = client.chat.completions.create(model="chat", messages=messages, tools=tools)
        assert second.choices[0].message.content == f"{MODEL} says: the tool returned 21C"

        emb = client.embeddings.create(model="emb", input=["a b", "c"], dimensions=4)
        assert [len(d.embedding) for d in emb.data] == [4, 4]
        assert emb.usage.prompt_tokens == 3
    finally:
        gateway.stop()
