"""``/v1/messages`` details an Anthropic-SDK client notices, through Hedge to every wire format.

PDFs reach every provider, a stop sequence says which one it was, ids keep one ``msg_`` prefix,
the stream's ``message_start`` carries the input token count, system messages may come
mid-conversation, more than OpenAI's four stop sequences reach an Anthropic upstream, and an
OpenAI refusal reaches the client whole and streamed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from conftest import MASTER_KEY, Gateway, Mock, start_gateway
from hedge.providers.anthropic_inbound import AnthropicEvents, to_anthropic, to_openai

PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF").decode()
ALIASES = {"oa": "openai", "an": "anthropic", "ge": "gemini"}


@pytest.fixture(scope="module")
def gw(style_mocks: dict[str, Mock], logs: Path) -> Iterator[Gateway]:
    models = {
        "oa": {"deployments": [{"provider": "openai", "model": "gpt-4o"}]},
        "an": {"deployments": [{"provider": "anthropic", "model": "claude-sonnet-4"}]},
        "ge": {"deployments": [{"provider": "gemini", "model": "gemini-2.5-flash"}]},
    }
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            name: {"style": name, "base_url": f"{m.url}/v1" if name == "openai" else m.url, "api_key": "k"}
            for name, m in style_mocks.items()
        },
        "models": models,
        "resilience": {"max_attempts": 1},
    }
    gateway = start_gateway(config, logs)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def client(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)


@pytest.mark.parametrize("alias", list(ALIASES))
def test_pdf_document_reaches_every_provider(
    client: anthropic.Anthropic, style_mocks: dict[str, Mock], alias: str
) -> None:
    document = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
    }
    message = client.messages.create(
        model=alias,
        max_tokens=50,
        messages=[{"role": "user", "content": [document, {"type": "text", "text": "Summarise it."}]}],
    )
    assert message.content and message.stop_reason == "end_turn"
    sent = style_mocks[ALIASES[alias]].stats()["last_body"]
    if alias == "oa":
        part = sent["messages"][0]["content"][0]
        assert part["type"] == "file" and part["file"]["file_data"] == f"data:application/pdf;base64,{PDF}"
        assert part["file"]["filename"]
    elif alias == "an":
        assert sent["messages"][0]["content"][0] == {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
        }
    else:
        assert sent["contents"][0]["parts"][0] == {"inlineData": {"mimeType": "application/pdf", "data": PDF}}


def test_stop_sequence_is_reported(client: anthropic.Anthropic) -> None:
    """The Anthropic mock echoes the user's message, so a stop word in it ends the answer there."""
    kwargs: dict[str, Any] = {
        "model": "an",
        "max_tokens": 50,
        "stop_sequences": ["banana"],
        "messages": [{"role": "user", "content": "say apple banana cherry"}],
    }
    message = client.messages.create(**kwargs)
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "banana")
    with client.messages.stream(**kwargs) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "banana")


@pytest.mark.parametrize("alias", ["an", "ge", "oa"])
def test_ids_and_stream_start_usage(client: anthropic.Anthropic, alias: str) -> None:
    messages: list[Any] = [{"role": "user", "content": "one two three four five six seven"}]
    message = client.messages.create(model=alias, max_tokens=20, messages=messages)
    assert message.id.startswith("msg_") and not message.id.startswith("msg_msg_")
    with client.messages.stream(model=alias, max_tokens=20, messages=messages) as stream:
        start = next(e for e in stream if e.type == "message_start")
        final = stream.get_final_message()
    assert not start.message.id.startswith("msg_msg_")
    # The real count at the start (Anthropic and Gemini report it first), or the gateway's estimate.
    assert start.message.usage.input_tokens > 0
    if alias != "oa":
        assert start.message.usage.input_tokens == final.usage.input_tokens == message.usage.input_tokens


@pytest.mark.parametrize("alias", list(ALIASES))
def test_system_messages_mid_conversation_and_blocks(
    client: anthropic.Anthropic, style_mocks: dict[str, Mock], alias: str
) -> None:
    message = client.messages.create(
        model=alias,
        max_tokens=20,
        system=[{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Answer in French."}],
        messages=[
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "bonjour"},
            {"role": "system", "content": "Always answer in uppercase."},
            {"role": "user", "content": "again"},
        ],
    )
    text = "".join(b.text for b in message.content if b.type == "text")
    assert text == text.upper(), "the mid-conversation system message reached the model"
    sent = str(style_mocks[ALIASES[alias]].stats()["last_body"])
    assert "Be terse.\\n\\nAnswer in French." in sent, "blocks flattened with a separator"


def test_more_than_four_stop_sequences(client: anthropic.Anthropic, style_mocks: dict[str, Mock]) -> None:
    stops = ["one", "two", "three", "four", "five"]
    messages: list[Any] = [{"role": "user", "content": "count"}]
    message = client.messages.create(model="an", max_tokens=20, stop_sequences=stops, messages=messages)
    assert message.content
    assert style_mocks["anthropic"].stats()["last_body"]["stop_sequences"] == stops
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="oa", max_tokens=20, stop_sequences=stops, messages=messages)
    assert "stop" in caught.value.message


# -- refusals (the mocks do not refuse: the translation, over an OpenAI answer as OpenAI sends it) ----

REFUSAL = "I'm sorry, I can't help with that."


def test_openai_refusal_reaches_the_client_whole() -> None:
    completion = {
        "id": "chatcmpl-B9",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": REFUSAL},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 9},
    }
    out = to_anthropic(completion)
    assert out["content"] == [{"type": "text", "text": REFUSAL}]
    assert (out["id"], out["stop_reason"]) == ("msg_B9", "refusal")


def test_openai_refusal_reaches_the_client_streamed() -> None:
    events = AnthropicEvents("gpt-4o")
    base = {"id": "chatcmpl-B9", "model": "gpt-4o"}
    out: list[bytes] = []
    out += events.chunk({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "refusal": ""}}]})
    for piece in ("I'm sorry, ", "I can't help with that."):
        out += events.chunk({**base, "choices": [{"index": 0, "delta": {"refusal": piece}}]})
    out += events.chunk({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out += events.finish({"prompt_tokens": 10, "completion_tokens": 9})
    text = b"".join(out).decode()
    assert '"text_delta","text":"I\'m sorry, "' in text and "I can't help with that." in text
    assert '"stop_reason":"refusal"' in text


def test_document_text_source_and_unsupported_source() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "title": "Notes",
                        "source": {"type": "text", "media_type": "text/plain", "data": "buy milk"},
                    }
                ],
            }
        ],
    }
    assert to_openai(body)["messages"][0]["content"] == "Notes\n\nbuy milk"
    body["messages"][0]["content"][0]["source"] = {"type": "url", "url": "https://x.example/a.pdf"}
    with pytest.raises(Exception, match="source type 'url'"):
        to_openai(body)
