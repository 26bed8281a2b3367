"""Passing the Responses API through to an OpenAI-native upstream: the pure parts."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hedge.config import ConfigError, parse_config
from hedge.errors import UpstreamError
from hedge.providers.base import Usage
from hedge.providers.openai_responses import Passthrough, ResponsesStream, usage_of


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


RESPONSE = {"id": "resp_upstream1", "object": "response", "status": "completed", "output": []}
USAGE = {
    "input_tokens": 11,
    "input_tokens_details": {"cached_tokens": 3},
    "output_tokens": 7,
    "total_tokens": 18,
}


@pytest.mark.parametrize(
    ("response", "usage"),
    [
        ({"usage": USAGE}, Usage(11, 7, 3)),
        ({"usage": {"input_tokens": 2, "output_tokens": 1}}, Usage(2, 1, 0)),
        ({"usage": None}, None),
        ({}, None),
        ("not an object", None),
    ],
)
def test_usage_of(response: Any, usage: Usage | None) -> None:
    assert usage_of(response) == usage


def test_a_stream_is_forwarded_as_it_came_and_its_end_is_read() -> None:
    stream = ResponsesStream("p")
    created = _event(
        "response.created", {"type": "response.created", "response": RESPONSE, "sequence_number": 0}
    )
    delta = _event("response.output_text.delta", {"type": "response.output_text.delta", "delta": "hi"})
    done = _event(
        "response.completed",
        {"type": "response.completed", "response": {**RESPONSE, "usage": USAGE}, "sequence_number": 2},
    )
    wire = created + delta + done
    out = [stream.feed(wire[i : i + 7]) for i in range(0, len(wire), 7)]
    assert b"".join(b"".join(o) for o in out) == wire
    assert stream.upstream_id == "resp_upstream1"
    assert stream.finished and stream.ended
    assert stream.usage == Usage(11, 7, 3)
    assert stream.final is not None and stream.final["status"] == "completed"
    passthrough = Passthrough()
    assert not passthrough.has_content(created)
    assert passthrough.has_content(delta)


def test_an_error_event_fails_the_stream() -> None:
    with pytest.raises(UpstreamError) as caught:
        ResponsesStream("p").feed(_event("error", {"type": "error", "message": "overloaded"}))
    assert caught.value.code == "upstream_stream_error" and "overloaded" in caught.value.message


def test_a_whole_answer_must_be_a_response() -> None:
    passthrough = Passthrough()
    good = passthrough.answer("p", orjson.dumps({**RESPONSE, "usage": USAGE}))
    assert good.usage == Usage(11, 7, 3)
    with pytest.raises(UpstreamError):
        passthrough.answer("p", orjson.dumps({"choices": []}))


def test_an_error_answered_with_200_keeps_that_status_and_its_message() -> None:
    """As the chat adapters report it: the provider's status was 200, and its message is the news."""
    body = {"error": {"message": "model overloaded", "type": "server_error"}}
    with pytest.raises(UpstreamError) as caught:
        Passthrough().answer("p", orjson.dumps(body))
    assert caught.value.status == 502 and caught.value.upstream_status == 200
    assert caught.value.code == "upstream_bad_response" and "model overloaded" in caught.value.message


def test_only_openai_style_providers_serve_the_responses_api() -> None:
    def config(provider: dict[str, Any]) -> dict[str, Any]:
        return {
            "server": {"master_key": "sk-m"},
            "providers": {"p": provider},
            "models": {"m": {"deployments": [{"provider": "p", "model": "x"}]}},
        }

    ok = {"style": "openai", "base_url": "http://127.0.0.1:1/v1", "responses_api": True}
    assert parse_config(config(ok), "<t>").providers["p"].responses_api
    bad = {"style": "anthropic", "base_url": "http://127.0.0.1:1", "responses_api": True}
    with pytest.raises(ConfigError, match="responses_api"):
        parse_config(config(bad), "<t>")
