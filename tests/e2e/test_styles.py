"""One conversation through Hedge on all three wire formats, driven by the official ``openai`` SDK.

Three mocks (OpenAI, Anthropic Messages, Gemini) sit behind one gateway, one
alias each. Every mock answers from :mod:`hedge.mock.behaviour`, so once the
adapters have translated there and back, the client must see the same
OpenAI-shaped answer from every style: the same text (modulo the upstream
model's name, which the mocks put in their replies), finish reasons, tool
names and arguments, with usage and cost.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest

from conftest import MASTER_KEY, Gateway, Mock, start_gateway

# alias -> (provider, upstream model); the providers are named after their wire format.
STYLES: dict[str, tuple[str, str]] = {
    "oa": ("openai", "gpt-4o"),
    "an": ("anthropic", "claude-sonnet-4"),
    "ge": ("gemini", "gemini-2.5-flash"),
}
ALIASES = list(STYLES)
EMBED_STYLES: dict[str, tuple[str, str]] = {
    "oa-embed": ("openai", "text-embedding-3-small"),
    "ge-embed": ("gemini", "text-embedding-004"),
}
PRICE = {"input": 2.0, "output": 8.0}
"""USD per million tokens, the same for every deployment."""

SYSTEM = "You are a terse weather assistant."
"""No 'JSON' in it: the Anthropic mock answers in JSON when the system prompt asks for it."""
ASK = "What is the weather in Paris today?"
TOOL_RESULT = json.dumps({"temp_c": 18, "sky": "sunny"}, separators=(",", ":"))
"""Compact JSON on purpose: the Gemini adapter sends a JSON tool result to Gemini parsed (as
``functionResponse.response``), and the Gemini mock, like the model, sees the object, not the
client's spacing; in compact form the text it quotes back is the client's text exactly."""
THANKS = "Thanks! And tomorrow?"
TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {
                "tz": {"type": "string", "enum": ["UTC", "CET"]},
                "offset": {"type": "integer", "minimum": 2},
            },
        },
    },
}
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}


@dataclass
class Styles:
    gateway: Gateway
    mocks: dict[str, Mock]


@pytest.fixture(scope="module")
def styles(style_mocks: dict[str, Mock], logs: Path) -> Iterator[Styles]:
    mocks = {provider: style_mocks[provider] for provider, _ in STYLES.values()}
    providers = {
        name: {
            "style": name,
            # OpenAI's base_url includes /v1; Anthropic's and Gemini's are the SDK-style root.
            "base_url": f"{mock.url}/v1" if name == "openai" else mock.url,
            "api_key": f"key-{name}",
        }
        for name, mock in mocks.items()
    }
    models: dict[str, Any] = {
        alias: {"deployments": [{"provider": provider, "model": model, "price": PRICE}]}
        for alias, (provider, model) in STYLES.items()
    }
    # Anthropic has no embeddings API: only two styles embed.
    for alias, (provider, model) in EMBED_STYLES.items():
        models[alias] = {"deployments": [{"provider": provider, "model": model, "price": PRICE}]}
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": providers,
        "models": models,
        "resilience": {"max_attempts": 1},
    }
    gw = start_gateway(config, logs)
    yield Styles(gw, mocks)
    gw.stop()


@pytest.fixture(scope="module")
def client(styles: Styles) -> openai.OpenAI:
    return openai.OpenAI(base_url=styles.gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)


# -- one answer, streamed or not, in one shape ---------------------------------------------------------


@dataclass
class Answer:
    provider: str
    """The ``x-hedge-provider`` header."""
    model: str
    content: str | None
    finish: str | None
    calls: list[dict[str, Any]]
    """``{"id", "name", "arguments"}`` per tool call (``arguments`` still the JSON string)."""
    prompt_tokens: int
    completion_tokens: int
    usage_extra: dict[str, Any] = field(default_factory=dict)
    message: dict[str, Any] = field(default_factory=dict)
    """The assistant message to append to the conversation, as the client would send it back."""

    def same_as(self, model: str) -> dict[str, Any]:
        """What must agree across styles: the model name replaced, call ids (provider-made) left out."""
        return {
            "content": None if self.content is None else self.content.replace(model, "<model>"),
            "finish": self.finish,
            "calls": [(c["name"], json.loads(c["arguments"])) for c in self.calls],
        }


def ask(client: openai.OpenAI, alias: str, stream: bool, messages: list[Any], **params: Any) -> Answer:
    if not stream:
        raw = client.chat.completions.with_raw_response.create(model=alias, messages=messages, **params)
        completion = raw.parse()
        assert completion.object == "chat.completion"
        assert len(completion.choices) == 1
        choice = completion.choices[0]
        assert choice.message.role == "assistant"
        assert completion.usage is not None
        calls = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in choice.message.tool_calls or []
            if isinstance(c, openai.types.chat.ChatCompletionMessageFunctionToolCall)
        ]
        assert len(calls) == len(choice.message.tool_calls or [])
        return Answer(
            provider=raw.headers["x-hedge-provider"],
            model=completion.model,
            content=choice.message.content,
            finish=choice.finish_reason,
            calls=calls,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            message=choice.message.model_dump(exclude_none=True),
        )

    raw_stream = client.chat.completions.with_raw_response.create(
        model=alias, messages=messages, stream=True, stream_options={"include_usage": True}, **params
    )
    assert raw_stream.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw_stream.parse())
    assert chunks, "an empty stream"
    assert chunks[0].choices and chunks[0].choices[0].delta.role == "assistant"
    text: list[str] = []
    finishes: list[str] = []
    by_index: dict[int, dict[str, Any]] = {}
    for chunk in chunks[:-1]:
        assert chunk.object == "chat.completion.chunk"
        assert chunk.usage is None, "usage comes only in the final chunk"
        assert [c.index for c in chunk.choices] == [0]
        choice = chunk.choices[0]
        text.append(choice.delta.content or "")
        if choice.finish_reason:
            finishes.append(choice.finish_reason)
        for delta in choice.delta.tool_calls or []:
            call = by_index.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
            if delta.id:
                assert call["id"] is None, "a tool call's id is sent once"
                call["id"] = delta.id
            if delta.function is not None:
                if delta.function.name:
                    assert call["name"] is None, "a tool call's name is sent once"
                    call["name"] = delta.function.name
                call["arguments"] += delta.function.arguments or ""
    last = chunks[-1]
    assert last.choices == [], "the usage chunk has no choices"
    assert last.usage is not None
    assert len(finishes) == 1, f"one finish_reason per choice, got {finishes}"
    assert sorted(by_index) == list(range(len(by_index))), "tool call indexes count from 0"
    calls = [by_index[i] for i in sorted(by_index)]
    content = "".join(text) or None
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ]
    return Answer(
        provider=raw_stream.headers["x-hedge-provider"],
        model=chunks[0].model,
        content=content,
        finish=finishes[0],
        calls=calls,
        prompt_tokens=last.usage.prompt_tokens,
        completion_tokens=last.usage.completion_tokens,
        usage_extra=dict(last.usage.model_extra or {}),
        message=message,
    )


def conversation(client: openai.OpenAI, alias: str, stream: bool) -> list[Answer]:
    """System + user -> tool call; tool result -> text quoting it; another user turn -> echo."""
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    first = ask(client, alias, stream, messages, tools=[WEATHER_TOOL])
    messages.append(first.message)
    messages.extend({"role": "tool", "tool_call_id": c["id"], "content": TOOL_RESULT} for c in first.calls)
    second = ask(client, alias, stream, messages, tools=[WEATHER_TOOL])
    messages.append(second.message)
    messages.append({"role": "user", "content": THANKS})
    # Tools stay declared (Anthropic wants them while the history holds tool calls); "none" keeps them unused.
    third = ask(client, alias, stream, messages, tools=[WEATHER_TOOL], tool_choice="none")
    return [first, second, third]


# -- the conversation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_tool_conversation(client: openai.OpenAI, alias: str, stream: bool) -> None:
    provider, model = STYLES[alias]
    first, second, third = conversation(client, alias, stream)
    for answer in (first, second, third):
        assert answer.provider == provider
        assert answer.model == model
        assert answer.prompt_tokens > 0 and answer.completion_tokens > 0

    assert first.finish == "tool_calls"
    assert first.content is None
    assert len(first.calls) == 1
    call = first.calls[0]
    assert call["name"] == "get_weather"
    assert isinstance(call["id"], str) and call["id"]
    args = json.loads(call["arguments"])
    assert set(args) == {"city"} and isinstance(args["city"], str)
    # The mocks fill a string parameter with the user's message (hedge.mock.behaviour.example_from_schema).
    assert args == {"city": ASK}

    assert second.finish == "stop"
    assert second.calls == []
    assert second.content == f"{model} says: the tool returned {TOOL_RESULT}"

    assert third.finish == "stop"
    assert third.calls == []
    assert third.content == f"{model} says: {THANKS}"


def test_styles_agree(client: openai.OpenAI) -> None:
    """All three styles, whole and streamed, give the same transcript (model name aside)."""
    transcripts = {
        (alias, stream): [a.same_as(STYLES[alias][1]) for a in conversation(client, alias, stream)]
        for alias in ALIASES
        for stream in (False, True)
    }
    reference = transcripts[("oa", False)]
    for key, transcript in transcripts.items():
        assert transcript == reference, f"{key} differs from the OpenAI style"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_parallel_and_forced_tool_calls(client: openai.OpenAI, alias: str, stream: bool) -> None:
    """Two calls in one turn (the mocks call every tool the user names), answered together; a forced tool."""
    model = STYLES[alias][1]
    tools = [WEATHER_TOOL, TIME_TOOL]
    ask_both = "call get_weather and get_time"
    messages: list[Any] = [{"role": "user", "content": ask_both}]
    first = ask(client, alias, stream, messages, tools=tools)
    assert first.finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in first.calls] == [
        ("get_weather", {"city": ask_both}),
        ("get_time", {"tz": "UTC", "offset": 2}),
    ]
    assert len({c["id"] for c in first.calls}) == 2, "each call has its own id"
    messages.append(first.message)
    messages.extend(
        {"role": "tool", "tool_call_id": c["id"], "content": f"result-{i}"} for i, c in enumerate(first.calls)
    )
    second = ask(client, alias, stream, messages, tools=tools)
    # The mocks quote the last tool result of the turn.
    assert (second.finish, second.content) == ("stop", f"{model} says: the tool returned result-1")

    forced = {"type": "function", "function": {"name": "get_time"}}
    third = ask(client, alias, stream, [{"role": "user", "content": "hi"}], tools=tools, tool_choice=forced)
    assert third.finish == "tool_calls"
    assert [c["name"] for c in third.calls] == ["get_time"]


# -- generation parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_stop_sequence(client: openai.OpenAI, alias: str, stream: bool) -> None:
    model = STYLES[alias][1]
    messages = [{"role": "user", "content": "alpha beta STOP gamma"}]
    answer = ask(client, alias, stream, messages, stop=["STOP"])
    assert answer.content == f"{model} says: alpha beta "
    assert "STOP" not in answer.content and "gamma" not in answer.content
    assert answer.finish == "stop"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_max_tokens_gives_length(client: openai.OpenAI, alias: str, stream: bool) -> None:
    model = STYLES[alias][1]
    messages = [{"role": "user", "content": "one two three four five six"}]
    answer = ask(client, alias, stream, messages, max_tokens=3)
    assert answer.content == f"{model} says: one "  # one word is one token for the mocks
    assert answer.finish == "length"
    assert answer.completion_tokens == 3


@pytest.mark.parametrize("alias", ALIASES)
def test_json_mode(client: openai.OpenAI, alias: str) -> None:
    """``response_format: json_object`` gives parseable JSON on every style.

    OpenAI and Gemini enforce it (``responseMimeType: application/json`` for
    Gemini). Anthropic has no JSON mode: the adapter asks for JSON in the
    system prompt, and the Anthropic mock, like a model following the
    instruction, answers in JSON when its system prompt asks for it; the real
    API gives no guarantee.
    """
    model = STYLES[alias][1]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "give me data"}]
    answer = ask(client, alias, False, messages, response_format={"type": "json_object"})
    assert answer.finish == "stop"
    assert answer.content is not None
    assert json.loads(answer.content) == {"model": model, "echo": "give me data"}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_unicode_round_trip(client: openai.OpenAI, alias: str, stream: bool) -> None:
    text = "héllo 👋 世界"
    answer = ask(client, alias, stream, [{"role": "user", "content": text}])
    assert answer.content == f"{STYLES[alias][1]} says: {text}"
    assert answer.finish == "stop"


# -- usage, cost and headers -----------------------------------------------------------------------------


def _cost(prompt: int, completion: int) -> float:
    return (prompt * PRICE["input"] + completion * PRICE["output"]) / 1_000_000


@pytest.mark.parametrize("alias", ALIASES)
def test_stream_usage_chunk_carries_cost(client: openai.OpenAI, alias: str) -> None:
    messages = [{"role": "user", "content": "count my tokens please"}]
    answer = ask(client, alias, True, messages)
    assert answer.prompt_tokens > 0 and answer.completion_tokens > 0
    assert "hedge_cost_usd" in answer.usage_extra
    expected = _cost(answer.prompt_tokens, answer.completion_tokens)
    assert answer.usage_extra["hedge_cost_usd"] == pytest.approx(expected, abs=1e-9)
    assert expected > 0
    whole = ask(client, alias, False, messages)
    assert (whole.prompt_tokens, whole.completion_tokens) == (answer.prompt_tokens, answer.completion_tokens)


@pytest.mark.parametrize("alias", ALIASES)
def test_headers_name_provider_and_model(client: openai.OpenAI, alias: str) -> None:
    provider, model = STYLES[alias]
    messages = [{"role": "user", "content": "who answers?"}]
    raw = client.chat.completions.with_raw_response.create(model=alias, messages=messages)
    assert raw.headers["x-hedge-provider"] == provider
    assert raw.headers["x-hedge-model"] == model
    usage = raw.parse().usage
    assert usage is not None
    expected = _cost(usage.prompt_tokens, usage.completion_tokens)
    assert float(raw.headers["x-hedge-cost-usd"]) == pytest.approx(expected, abs=1e-8)
    streamed = client.chat.completions.with_raw_response.create(model=alias, messages=messages, stream=True)
    assert streamed.headers["x-hedge-provider"] == provider
    assert streamed.headers["x-hedge-model"] == model
    streamed.parse().close()


def test_each_mock_saw_its_own_wire_format(client: openai.OpenAI, styles: Styles) -> None:
    """The requests really went out in three formats, each to its own mock."""
    for alias in ALIASES:
        client.chat.completions.create(model=alias, messages=[{"role": "user", "content": "ping"}])
    openai_body = styles.mocks["openai"].stats()["last_body"]
    assert openai_body["model"] == "gpt-4o" and openai_body["messages"][-1]["content"] == "ping"
    anthropic_body = styles.mocks["anthropic"].stats()["last_body"]
    assert anthropic_body["model"] == "claude-sonnet-4" and anthropic_body["max_tokens"] > 0
    gemini_body = styles.mocks["gemini"].stats()["last_body"]
    assert gemini_body["contents"] == [{"role": "user", "parts": [{"text": "ping"}]}]


# -- embeddings ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", list(EMBED_STYLES))
def test_embeddings(client: openai.OpenAI, alias: str) -> None:
    """Same shape from OpenAI and Gemini; Gemini's model, encoding and usage come from the request."""
    provider, model = EMBED_STYLES[alias]
    texts = ["first text here", "second"]
    raw = client.embeddings.with_raw_response.create(
        model=alias, input=texts, dimensions=8, encoding_format="float"
    )
    assert raw.headers["x-hedge-provider"] == provider
    floats = raw.parse()
    assert floats.model == model
    assert [d.index for d in floats.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in floats.data)
    assert floats.data[0].embedding != floats.data[1].embedding
    assert floats.usage.prompt_tokens == 4  # one word is one token (for Gemini, the adapter's estimate)

    # Asked for explicitly, base64 comes back as the string (float32, little-endian) ...
    b64 = client.embeddings.create(model=alias, input=texts, dimensions=8, encoding_format="base64")
    assert b64.model == model
    for encoded, plain in zip(b64.data, floats.data, strict=True):
        assert isinstance(encoded.embedding, str)
        decoded = struct.unpack("<8f", base64.b64decode(encoded.embedding))
        assert decoded == pytest.approx(plain.embedding, rel=1e-6)
    # ... and by default the SDK asks for base64 and decodes it itself.
    default = client.embeddings.create(model=alias, input=texts, dimensions=8)
    for decoded_by_sdk, plain in zip(default.data, floats.data, strict=True):
        assert decoded_by_sdk.embedding == pytest.approx(plain.embedding, rel=1e-6)
