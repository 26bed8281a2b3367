"""Thinking content, translated both ways (issue 14, point 4): Claude's thinking blocks and Gemini's
thought summaries as ``reasoning_content`` / ``reasoning_details``, and Claude's blocks sent back.

The redacted-thinking block is the shape of the example in Anthropic's extended-thinking guide
(docs.anthropic.com/en/docs/build-with-claude/extended-thinking, "Thinking redaction"; its data
shortened); the stream is a recorded real exchange (``recorded/SOURCES.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from hedge.config import ProviderConfig
from hedge.errors import InvalidRequest
from hedge.providers import make_adapter
from hedge.providers.anthropic import AnthropicAdapter, thinking_blocks, translate_messages
from hedge.providers.anthropic_inbound import AnthropicEvents, to_anthropic, to_openai
from hedge.providers.base import thinking_requested
from hedge.providers.capabilities import model_rules, unthought_tool_turn
from hedge.providers.gemini import GeminiAdapter
from hedge.providers.ids import portable_messages
from hedge.providers.signatures import THINKING
from hedge.wire.sse import chunks

RECORDED = Path(__file__).parent / "recorded"
ANTHROPIC = ProviderConfig(style="anthropic", base_url="https://api.anthropic.com", api_key="k")
GEMINI = ProviderConfig(style="gemini", base_url="https://generativelanguage.googleapis.com", api_key="k")
USER: list[Any] = [{"role": "user", "content": "hey"}]
REDACTED = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"
SIGNATURE = (
    "ErUBCkYIARgCIkACJWxzySUOJzOlZ8WFdgQSbeQA3H1i5rfkKLV9eC4HN6Jcnrlw1NcnPRIPaTs9jLF3rllsfoidjZ"
    "apJ+5MLwjVEgzTfQ6r9tDZvyBP0nEaDHWRqRWP7CoPOc+ksSIwSlxHzaMbnyXGoiNmCj9thC3N6EDMpemJPx3UZqDt"
    "rgmKZgQMMzNzNsh9IxgvtuYKKh1PxXUmWexqlckSVETQj3LbHLK/nwEK+bz0+2b/pA=="
)
THOUGHT_TEXT = (
    'The user has simply said "hey" as a greeting without any specific request or question. I don\'t need'
    " to use any tools for this type of interaction. I should respond with a friendly greeting and ask how"
    " I can help them today."
)


def anthropic() -> AnthropicAdapter:
    adapter = make_adapter("anthropic", ANTHROPIC)
    assert isinstance(adapter, AnthropicAdapter)
    return adapter


def gemini() -> GeminiAdapter:
    adapter = make_adapter("gemini", GEMINI)
    assert isinstance(adapter, GeminiAdapter)
    return adapter


@pytest.mark.parametrize(
    ("body", "asked"),
    [
        ({}, False),
        ({"reasoning_effort": "none"}, False),
        ({"reasoning_effort": "low"}, True),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, True),
        ({"thinking": {"type": "adaptive"}}, True),
        ({"thinking": {"type": "disabled"}}, False),
    ],
)
def test_thinking_requested(body: dict[str, Any], asked: bool) -> None:
    assert thinking_requested(body) is asked


@pytest.mark.parametrize("asked", [True, False])
def test_recorded_thinking_stream(asked: bool) -> None:
    adapter = anthropic()
    body = {"model": "a", "messages": USER, **({"reasoning_effort": "low"} if asked else {})}
    request = adapter.chat_request(body, "claude-3-7-sonnet-20250219", True, True)
    stream = adapter.stream_translator("claude-3-7-sonnet-20250219", True, request)
    raw = (RECORDED / "anthropic-thinking-stream.txt").read_bytes()
    out = list(chunks(stream.feed(raw) + stream.close()))
    deltas = [c["choices"][0]["delta"] for c in out if c.get("choices")]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    details = [x for d in deltas for x in d.get("reasoning_details") or []]
    content = "".join(d.get("content") or "" for d in deltas)
    assert content.startswith("Hello! I'm Assistant") and "greeting" not in content
    if asked:
        assert reasoning == THOUGHT_TEXT
        # OpenRouter's streaming shape: pieces of index 0, the signature last.
        assert {(d["type"], d["format"], d["index"]) for d in details} == {
            ("reasoning.text", "anthropic-claude-v1", 0)
        }
        assert "".join(d.get("text") or "" for d in details) == THOUGHT_TEXT
        assert details[-1] == {
            "type": "reasoning.text",
            "signature": SIGNATURE,
            "format": "anthropic-claude-v1",
            "index": 0,
        }
        assert thinking_blocks({"role": "assistant", "reasoning_details": details}) == [
            {"type": "thinking", "thinking": THOUGHT_TEXT, "signature": SIGNATURE}
        ]
    else:
        assert reasoning == "" and details == []


def _claude_answer(tool_id: str) -> bytes:
    return orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [
                {"type": "thinking", "thinking": "Paris, so Celsius.", "signature": SIGNATURE},
                {"type": "redacted_thinking", "data": REDACTED},
                {"type": "tool_use", "id": tool_id, "name": "get_weather", "input": {"city": "Paris"}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 40},
        }
    )


def test_whole_answer_keeps_every_block_and_redacted_thinking_is_not_text() -> None:
    adapter = anthropic()
    request = adapter.chat_request(
        {"model": "a", "messages": USER, "reasoning_effort": "low"}, "claude-sonnet-4-5", False, False
    )
    message = orjson.loads(adapter.chat_response(_claude_answer("toolu_whole"), request).body)["choices"][0][
        "message"
    ]
    assert message["reasoning_content"] == "Paris, so Celsius."
    assert [d["type"] for d in message["reasoning_details"]] == ["reasoning.text", "reasoning.encrypted"]
    assert message["reasoning_details"][1]["data"] == REDACTED
    assert orjson.loads(THINKING.recall("toolu_whole") or "null") == message["reasoning_details"]

    plain = adapter.chat_request({"model": "a", "messages": USER}, "claude-sonnet-4-5", False, False)
    message = orjson.loads(adapter.chat_response(_claude_answer("toolu_plain"), plain).body)["choices"][0][
        "message"
    ]
    assert "reasoning_content" not in message and "reasoning_details" not in message


DETAILS = [
    {"type": "reasoning.text", "text": "t", "signature": "s", "format": "anthropic-claude-v1", "index": 0},
    {"type": "reasoning.encrypted", "data": "d", "format": "anthropic-claude-v1", "index": 1},
]
CALL = {"id": "toolu_kept", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("message", "blocks"),
    [
        (
            {"role": "assistant", "reasoning_details": DETAILS, "tool_calls": [CALL]},
            [
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "redacted_thinking", "data": "d"},
            ],
        ),
        # Another provider's reasoning (OpenAI's encrypted reasoning through OpenRouter) is not Claude's.
        ({"role": "assistant", "reasoning_details": [{**DETAILS[1], "format": "openai-responses-v1"}]}, []),
        # Text without a signature cannot be sent back to Claude.
        ({"role": "assistant", "reasoning_details": [{"type": "reasoning.text", "text": "t"}]}, []),
        # A client that dropped the details: what the gateway kept for the first tool call.
        (
            {"role": "assistant", "tool_calls": [{**CALL, "id": "toolu_remembered"}]},
            [{"type": "thinking", "thinking": "kept", "signature": "sig"}],
        ),
        ({"role": "assistant", "content": "hi"}, []),
    ],
)
def test_thinking_blocks(message: dict[str, Any], blocks: list[dict[str, Any]]) -> None:
    THINKING.remember(
        "toolu_remembered",
        orjson.dumps([{**DETAILS[0], "text": "kept", "signature": "sig"}]).decode(),
    )
    assert thinking_blocks(message) == blocks


def test_thinking_blocks_go_first_and_only_while_thinking() -> None:
    messages = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [CALL], "reasoning_details": DETAILS},
        {"role": "tool", "tool_call_id": "toolu_kept", "content": "18"},
    ]
    _, turns = translate_messages(messages, thinking=True)
    assert [b["type"] for b in turns[1]["content"]] == ["thinking", "redacted_thinking", "tool_use"]
    _, turns = translate_messages(messages, thinking=False)
    assert [b["type"] for b in turns[1]["content"]] == ["tool_use"]
    sent = orjson.loads(
        anthropic().chat_request({"model": "a", "messages": messages}, "claude-sonnet-4-5", False, False).body
    )
    assert [b["type"] for b in sent["messages"][1]["content"]] == ["tool_use"]


def test_claude_reasoning_details_are_dropped_elsewhere() -> None:
    other = {"type": "reasoning.encrypted", "data": "x", "format": "openai-responses-v1"}
    messages = [
        {"role": "assistant", "content": "a", "reasoning_details": DETAILS},
        {"role": "assistant", "content": "b", "reasoning_details": [*DETAILS, other]},
        {"role": "assistant", "content": "c"},
    ]
    out = portable_messages(messages, strict=False)
    assert "reasoning_details" not in out[0]
    assert out[1]["reasoning_details"] == [other]
    assert out[2] is messages[2]
    assert messages[0]["reasoning_details"] == DETAILS, "the client's body is not changed"


GEMINI_ANSWER = {
    "candidates": [
        {
            "content": {
                "parts": [
                    {"text": "**Planning**\n\nA short answer.", "thought": True},
                    {"text": "Hello!"},
                ],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "thoughtsTokenCount": 20},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "r1",
}


@pytest.mark.parametrize("asked", [True, False])
def test_gemini_thought_summaries(asked: bool) -> None:
    adapter = gemini()
    body = {"model": "a", "messages": USER, **({"reasoning_effort": "low"} if asked else {})}
    request = adapter.chat_request(body, "gemini-2.5-flash", False, False)
    sent = orjson.loads(request.body)
    thinking = sent.get("generationConfig", {}).get("thinkingConfig", {})
    assert thinking.get("includeThoughts") is (True if asked else None)
    message = orjson.loads(adapter.chat_response(orjson.dumps(GEMINI_ANSWER), request).body)["choices"][0][
        "message"
    ]
    assert message["content"] == "Hello!"
    assert message.get("reasoning_content") == ("**Planning**\n\nA short answer." if asked else None)

    streamed = adapter.chat_request(body, "gemini-2.5-flash", True, False)
    stream = adapter.stream_translator("gemini-2.5-flash", False, streamed)
    out = list(chunks(stream.feed(b"data: " + orjson.dumps(GEMINI_ANSWER) + b"\n\n") + stream.close()))
    deltas = [c["choices"][0]["delta"] for c in out if c.get("choices")]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    assert reasoning == ("**Planning**\n\nA short answer." if asked else "")
    assert "".join(d.get("content") or "" for d in deltas) == "Hello!"


# -- /v1/messages: Anthropic clients --------------------------------------------------------------------


def sse_data(raw: bytes) -> list[dict[str, Any]]:
    return [
        orjson.loads(line[6:])
        for block in raw.split(b"\n\n")
        for line in block.splitlines()
        if line.startswith(b"data: ")
    ]


def test_recorded_thinking_stream_through_both_translations() -> None:
    adapter = anthropic()
    body = {"model": "a", "messages": USER, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    request = adapter.chat_request(body, "claude-3-7-sonnet-20250219", True, True)
    stream = adapter.stream_translator("claude-3-7-sonnet-20250219", True, request)
    openai_chunks = list(chunks(stream.feed((RECORDED / "anthropic-thinking-stream.txt").read_bytes())))
    face = AnthropicEvents("alias")
    out = b"".join(b for ch in openai_chunks for b in face.chunk(ch)) + b"".join(face.finish(None))
    events = sse_data(out)
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["thinking", "text"]
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta" and e["index"] == 0]
    assert "".join(d.get("thinking", "") for d in deltas) == THOUGHT_TEXT
    assert deltas[-1] == {"type": "signature_delta", "signature": SIGNATURE}
    stops = [e["index"] for e in events if e["type"] == "content_block_stop"]
    assert stops == [0, 1]


@pytest.mark.parametrize(
    ("message", "content"),
    [
        (
            {"role": "assistant", "content": "hi", "reasoning_details": DETAILS},
            [
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "redacted_thinking", "data": "d"},
                {"type": "text", "text": "hi"},
            ],
        ),
        # Gemini's or DeepSeek's reasoning text: no signature, so no thinking block.
        (
            {"role": "assistant", "content": "hi", "reasoning_content": "thought"},
            [{"type": "text", "text": "hi"}],
        ),
    ],
)
def test_whole_message_for_anthropic_clients(message: dict[str, Any], content: list[dict[str, Any]]) -> None:
    completion = {
        "id": "chatcmpl-x",
        "model": "m",
        "choices": [{"message": message, "finish_reason": "stop"}],
    }
    assert to_anthropic(completion)["content"] == content


def test_thinking_blocks_from_anthropic_clients_reach_claude_only() -> None:
    body = {
        "model": "alias",
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [
            *USER,
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "redacted_thinking", "data": "d"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
        ],
    }
    chat = to_openai(body)
    sent = orjson.loads(anthropic().chat_request(chat, "claude-sonnet-4-5", False, False).body)
    assert sent["messages"][1]["content"] == body["messages"][1]["content"]
    openai_sent = orjson.loads(
        make_adapter("o", ProviderConfig(style="openai", base_url="https://api.openai.com/v1"))
        .chat_request(chat, "gpt-4o", False, False)
        .body
    )
    assert "reasoning_details" not in openai_sent["messages"][1]
    with pytest.raises(InvalidRequest, match="signature"):
        to_openai(
            {
                **body,
                "messages": [
                    *USER,
                    {"role": "assistant", "content": [{"type": "thinking", "thinking": "t"}]},
                ],
            }
        )


TOOL_CALL_TURN = {"role": "assistant", "content": None, "tool_calls": [{**CALL, "id": "call_gemini"}]}
TOOL_RESULT = {"role": "tool", "tool_call_id": "call_gemini", "content": "18"}


@pytest.mark.parametrize(
    ("messages", "refused"),
    [
        ([*USER], False),
        ([*USER, TOOL_CALL_TURN, TOOL_RESULT], True),
        ([*USER, {**TOOL_CALL_TURN, "reasoning_details": DETAILS}, TOOL_RESULT], False),
        ([*USER, {**TOOL_CALL_TURN, "tool_calls": [{**CALL, "id": "toolu_remembered"}]}, TOOL_RESULT], False),
        # The loop ended: a new user question starts a new assistant turn.
        ([*USER, TOOL_CALL_TURN, TOOL_RESULT, {"role": "assistant", "content": "18C"}, *USER], False),
        ([*USER, {"role": "assistant", "content": "hi"}, *USER], False),
    ],
)
def test_unthought_tool_turn(messages: list[Any], refused: bool) -> None:
    THINKING.remember("toolu_remembered", orjson.dumps(DETAILS).decode())
    assert unthought_tool_turn(messages) is refused
    body = {"model": "a", "messages": messages, "reasoning_effort": "low"}
    rules = model_rules(body, "anthropic", "claude-sonnet-4-5", AnthropicAdapter.capabilities)
    assert ("reasoning_effort" in rules) is refused
    assert not model_rules(
        {**body, "reasoning_effort": "none"}, "anthropic", "claude-sonnet-4-5", AnthropicAdapter.capabilities
    )
