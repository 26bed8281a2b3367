"""The mocks refuse what the real APIs refuse about tool call ids and thought signatures, and the
Gemini mock can fail a generation, each checked with the provider's official SDK.

These are the witnesses that would have caught Gemini signatures riding in tool call ids: the real
APIs' rules (Anthropic's id pattern, OpenAI's 40 characters, Gemini 3's signed calls), with their
error shapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types

from conftest import Mock, start_mock

SIGNED_ID = "call_0a1b2c3d4e5f60718293a4b5~CpcHAdHtim9+/Zx+/Zx=="


@pytest.fixture(scope="module")
def mocks(logs: Path) -> Iterator[dict[str, Mock]]:
    started = {style: start_mock(style, logs) for style in ("openai", "anthropic", "gemini")}
    yield started
    for mock in started.values():
        mock.stop()


def test_anthropic_refuses_ids_outside_its_pattern(mocks: dict[str, Mock]) -> None:
    client = anthropic.Anthropic(base_url=mocks["anthropic"].url, api_key="k", max_retries=0)
    messages: list[Any] = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": SIGNED_ID, "name": "w", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": SIGNED_ID, "content": "sunny"}]},
    ]
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=messages)
    assert caught.value.body["error"] == {
        "type": "invalid_request_error",
        "message": "messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'",
    }


def test_openai_refuses_ids_over_40_characters(mocks: dict[str, Mock]) -> None:
    client = openai.OpenAI(base_url=f"{mocks['openai'].url}/v1", api_key="k", max_retries=0)
    call = {"id": SIGNED_ID, "type": "function", "function": {"name": "w", "arguments": "{}"}}
    messages: list[Any] = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": SIGNED_ID, "content": "sunny"},
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=messages)
    assert (caught.value.code, caught.value.param) == (
        "string_above_max_length",
        "messages[1].tool_calls[0].id",
    )
    assert (
        f"Expected a string with maximum length 40, but got a string with length {len(SIGNED_ID)}"
        in caught.value.message
    )


WEATHER = types.FunctionDeclaration(
    name="get_weather",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


@pytest.fixture
def gemini(mocks: dict[str, Mock]) -> Iterator[genai.Client]:
    mock = mocks["gemini"]
    mock.configure(thought_signatures=True)
    options = types.HttpOptions(base_url=mock.url, retry_options=types.HttpRetryOptions(attempts=1))
    yield genai.Client(api_key="k", http_options=options)
    mock.configure(thought_signatures=False, finish_reason=None)


def test_gemini_3_signs_calls_and_refuses_them_unsigned(gemini: genai.Client, mocks: dict[str, Mock]) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    first = gemini.models.generate_content(
        model="gemini-3-flash-preview", contents="weather in Paris?", config=config
    )
    assert first.candidates and first.candidates[0].content and first.candidates[0].content.parts
    turn = first.candidates[0].content
    part = turn.parts[0]  # type: ignore[index]
    assert part.function_call is not None and part.thought_signature, "the SDK decodes the signature to bytes"
    answer = types.Part.from_function_response(name="get_weather", response={"temp_c": 18})
    history = [types.Content(role="user", parts=[types.Part(text="weather in Paris?")]), turn]
    again = [*history, types.Content(role="user", parts=[answer])]
    reply = gemini.models.generate_content(model="gemini-3-flash-preview", contents=again, config=config)
    assert "18" in (reply.text or ""), "the signature went back as the SDK keeps it"

    unsigned = types.Content(role="model", parts=[types.Part(function_call=part.function_call)])
    with pytest.raises(errors.ClientError) as caught:
        gemini.models.generate_content(
            model="gemini-3-flash-preview",
            contents=[history[0], unsigned, types.Content(role="user", parts=[answer])],
            config=config,
        )
    assert caught.value.code == 400 and "missing a thought_signature" in str(caught.value.message)

    # Google's documented sentinel passes; a signature that is not base64 is Google's decoding error.
    url = f"{mocks['gemini'].url}/v1beta/models/gemini-3-flash-preview:generateContent"
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    for signature, status in (("skip_thought_signature_validator", 200), ("not base64!", 400)):
        body = {
            "contents": [
                {"role": "user", "parts": [{"text": "weather?"}]},
                {"role": "model", "parts": [{**call, "thoughtSignature": signature}]},
                {
                    "role": "user",
                    "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 1}}}],
                },
            ]
        }
        resp = httpx.post(url, json=body, headers={"x-goog-api-key": "k"})
        assert resp.status_code == status, resp.text
        if status == 400:
            assert "Base64 decoding failed" in resp.json()["error"]["message"]


@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "SAFETY"])
def test_gemini_failed_generation_knob(gemini: genai.Client, mocks: dict[str, Mock], reason: str) -> None:
    mocks["gemini"].configure(finish_reason=reason)
    resp = gemini.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert resp.candidates and resp.candidates[0].finish_reason == types.FinishReason(reason)
    assert not (resp.candidates[0].content and resp.candidates[0].content.parts)
    chunks = list(gemini.models.generate_content_stream(model="gemini-2.5-flash", contents="hello"))
    assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == types.FinishReason(reason)
