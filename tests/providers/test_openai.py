"""The OpenAI adapter: the request it sends, and the stream it relays (usage kept, hidden when unasked)."""

from __future__ import annotations

import orjson
import pytest

from hedge.config import ProviderConfig
from hedge.providers.base import Usage
from hedge.providers.openai import OpenAIAdapter, OpenAIStream

STREAM = (
    b'data: {"id":"1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":null}\n\n'
    b'data: {"id":"1","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
    b'data: {"id":"1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n'
    b'data: {"id":"1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("want_usage", [True, False])
def test_openai_stream_captures_usage_and_hides_it_when_unasked(want_usage: bool) -> None:
    stream = OpenAIStream("p", want_usage)
    out = b"".join(stream.feed(STREAM[:100]) + stream.feed(STREAM[100:]) + stream.close())
    assert stream.finished
    assert stream.usage == Usage(prompt_tokens=3, completion_tokens=1)
    assert stream.usage_chunk is not None and stream.usage_chunk["choices"] == []
    assert b"[DONE]" not in out, "the gateway ends the stream itself"
    assert (b'"usage"' in out) is want_usage
    assert out.count(b"data: ") == 3


def test_openai_request_translation_does_not_mutate_body() -> None:
    adapter = OpenAIAdapter("p", ProviderConfig(style="openai", base_url="http://x/v1", api_key="k"))
    body = {
        "model": "alias",
        "messages": [],
        "stream": True,
        "stream_options": {"x": 1},
        "hedge": {},
        "top_k": 2,
    }
    snapshot = orjson.dumps(body)
    req = adapter.chat_request(body, "up-model", True, False)
    sent = orjson.loads(req.body)
    assert orjson.dumps(body) == snapshot
    assert sent["model"] == "up-model" and sent["top_k"] == 2 and "hedge" not in sent
    assert sent["stream_options"] == {"x": 1, "include_usage": True}
    assert req.headers["authorization"] == "Bearer k"
    assert req.url == "http://x/v1/chat/completions"


@pytest.mark.parametrize(
    "payload",
    [
        b'{"id":"1","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}',
        b'{"id":"1","usage":null,"choices":[{"index":0,"delta":{"content":"hi"}}]}',
        b'{"usage":null,"id":"1","choices":[{"index":0,"delta":{"content":"hi"}}]}',
        b'{"id":"1", "choices":[{"index":0,"delta":{"content":"say \\"usage\\""}}], "usage": null}',
    ],
)
def test_unasked_usage_null_is_removed_exactly(payload: bytes) -> None:
    stream = OpenAIStream("p", want_usage=False)
    (out,) = stream.feed(b"data: " + payload + b"\n\n")
    expected = orjson.loads(payload)
    del expected["usage"]
    assert orjson.loads(out.removeprefix(b"data: ")) == expected
    kept = OpenAIStream("p", want_usage=True).feed(b"data: " + payload + b"\n\n")
    assert orjson.loads(kept[0].removeprefix(b"data: ")) == orjson.loads(payload)
