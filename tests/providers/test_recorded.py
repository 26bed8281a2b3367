"""The adapters over recorded real API traffic (see ``recorded/SOURCES.md`` for where each came from).

The mocks and the adapters were written by the same hands; these exchanges were not. Each table
row runs one recording through the translation a client's request or answer takes and checks what
a client, or the next provider in the conversation, would see.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from hedge.config import ProviderConfig
from hedge.providers.anthropic import AnthropicAdapter
from hedge.providers.anthropic_inbound import AnthropicEvents, to_anthropic
from hedge.providers.base import UpstreamRequest
from hedge.providers.gemini import GeminiAdapter
from hedge.providers.openai import OpenAIAdapter
from hedge.wire.sse import chunks

RECORDED = Path(__file__).parent / "recorded"
VALID_EVERYWHERE = re.compile(r"[a-zA-Z0-9_-]{1,40}")
"""A tool call id Anthropic (pattern) and OpenAI (length) both accept."""


def recorded(name: str) -> bytes:
    return (RECORDED / name).read_bytes()


def gemini() -> GeminiAdapter:
    return GeminiAdapter("gemini", ProviderConfig(style="gemini", base_url="https://g.example", api_key="k"))


def anthropic() -> AnthropicAdapter:
    return AnthropicAdapter("anthropic", ProviderConfig(style="anthropic", base_url="https://a.example"))


def openai() -> OpenAIAdapter:
    return OpenAIAdapter("openai", ProviderConfig(style="openai", base_url="https://o.example/v1"))


def sse_data(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.split(b"\n\n"):
        for line in block.splitlines():
            if line.startswith(b"data: ") and line[6:] != b"[DONE]":
                out.append(orjson.loads(line[6:]))
    return out


# -- Gemini -> OpenAI, and the conversation moving on --------------------------------------------------


def test_gemini_3_signed_call_then_every_provider() -> None:
    raw = recorded("gemini-3-tool-call.json")
    signature = orjson.loads(raw)["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
    answer = orjson.loads(gemini().chat_response(raw, UpstreamRequest("u", b"")).body)
    choice = answer["choices"][0]
    (call,) = choice["message"]["tool_calls"]
    assert choice["finish_reason"] == "tool_calls"
    assert VALID_EVERYWHERE.fullmatch(call["id"]), "no signature in the id"
    assert call["extra_content"] == {"google": {"thought_signature": signature}}
    assert orjson.loads(call["function"]["arguments"]) == {"location": "San Francisco"}
    assert answer["usage"]["completion_tokens"] == 15 + 1801
    assert answer["usage"]["completion_tokens_details"] == {"reasoning_tokens": 1801}

    conversation = {
        "messages": [
            {"role": "user", "content": "Weather in San Francisco?"},
            choice["message"],
            {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_f":61}'},
        ]
    }
    back = orjson.loads(gemini().chat_request(conversation, "gemini-3-pro-preview", False, False).body)
    assert back["contents"][1]["parts"][0]["thoughtSignature"] == signature, "exactly as received"
    to_claude = anthropic().chat_request(conversation, "claude-sonnet-4-5", False, False).body
    to_gpt = openai().chat_request(conversation, "gpt-4o", False, False).body
    for body in (to_claude, to_gpt):
        assert signature.encode() not in body, "Gemini's signature goes back to Gemini only"
    claude = orjson.loads(to_claude)
    assert claude["messages"][1]["content"][0]["id"] == claude["messages"][2]["content"][0]["tool_use_id"]


def test_gemini_429_retry_info_rounds_up() -> None:
    exc = gemini().error(429, {}, recorded("gemini-429-retry-info.json"))
    assert (exc.status, exc.retryable, exc.retry_after) == (429, True, 35.0)


# -- Anthropic -> OpenAI -> Anthropic (/v1/messages) ------------------------------------------------------


def test_anthropic_tool_use_stream_through_both_translations() -> None:
    raw = recorded("anthropic-tool-use-stream.txt")
    stream = anthropic().stream_translator("claude-sonnet-4-20250514", True)
    events = stream.feed(raw) + stream.close()
    openai_chunks = list(chunks(events))
    calls = [c for ch in openai_chunks for c in ch["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["id"] == "toolu_01NRLabsLyVHZPKxbKvkfSMn" and VALID_EVERYWHERE.fullmatch(calls[0]["id"])
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert orjson.loads(arguments) == {"location": "Paris"}
    assert openai_chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert stream.usage is not None and (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (
        377,
        65,
    )

    # The same stream as an Anthropic client of Hedge sees it.
    face = AnthropicEvents("alias")
    assert stream.usage_chunk is not None
    face.start_usage = stream.usage_chunk["usage"]
    out = b"".join(b for ch in openai_chunks for b in face.chunk(ch)) + b"".join(
        face.finish(face.start_usage)
    )
    sent = {e["type"]: e for e in sse_data(out) if e["type"] in ("message_start", "message_delta")}
    start = sent["message_start"]["message"]
    assert start["id"] == "msg_019Q1hrJbZG26Fb9BQhrkHEr", "one msg_ prefix"
    assert start["usage"]["input_tokens"] == 377
    assert sent["message_delta"]["delta"]["stop_reason"] == "tool_use"


# -- OpenAI -> Anthropic (/v1/messages) ---------------------------------------------------------------------


def test_openai_refusal_whole() -> None:
    message = to_anthropic(orjson.loads(recorded("openai-refusal.json")))
    assert message["content"] == [
        {"type": "text", "text": "I'm sorry, but I can't assist with that request."}
    ]
    assert (message["stop_reason"], message["id"]) == ("refusal", "msg_ABgIq8R3DWxhOWoorrE8RgxJTPkYS")


@pytest.mark.parametrize("piece", [1, 7, 64, 100_000])
def test_openai_refusal_streamed(piece: int) -> None:
    raw = recorded("openai-refusal-stream.txt")
    stream = openai().stream_translator("gpt-4o", True)
    events: list[bytes] = []
    for at in range(0, len(raw), piece):
        events += stream.feed(raw[at : at + piece])
    events += stream.close()
    face = AnthropicEvents("alias")
    out = b"".join(b for ch in chunks(events) for b in face.chunk(ch)) + b"".join(face.finish(None))
    sent = sse_data(out)
    text = "".join(e["delta"]["text"] for e in sent if e["type"] == "content_block_delta")
    assert text == "I'm sorry, but I can't assist with that request."
    assert [e["delta"]["stop_reason"] for e in sent if e["type"] == "message_delta"] == ["refusal"]
