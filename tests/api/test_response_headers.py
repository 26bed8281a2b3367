"""The model endpoints make their response headers themselves: byte for byte what Starlette's
``Response.init_headers`` made of the same headers before (table-driven)."""

from __future__ import annotations

from typing import cast

import pytest
from starlette.responses import Response

from hedge.api.chat import WholeJSON
from hedge.api.sse import SSE_HEADERS, SSEResponse
from hedge.gateway.stream import Stream

BODY = b'{"id":"chatcmpl-1","object":"chat.completion"}'

CASES = [
    {},
    {"x-request-id": "req_1", "x-hedge-attempts": "1", "x-hedge-route": "m/gpt-4o-mini=ok"},
    {"X-Hedge-Provider": "Mixed-Case"},  # names are lower-cased either way
    {"x-hedge-model": "modèle-é"},  # latin-1, encoded as such
    {"x-hedge-dropped-params": "top_k, logprobs", "cache-control": "no-store"},
]


def _starlette_stream_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """What SSEResponse used to make: Starlette's init_headers on a response without a body."""
    probe = Response.__new__(Response)
    probe.status_code = 200
    probe.media_type = "text/event-stream"
    Response.init_headers(probe, {**SSE_HEADERS, **headers})
    return probe.raw_headers


@pytest.mark.parametrize("headers", CASES)
def test_whole_answers_carry_starlettes_headers(headers: dict[str, str]) -> None:
    theirs = Response(BODY, headers=headers, media_type="application/json").raw_headers
    assert WholeJSON(BODY, headers=headers).raw_headers == theirs


@pytest.mark.parametrize("headers", CASES)
def test_streams_carry_starlettes_headers(headers: dict[str, str]) -> None:
    ours = SSEResponse(cast(Stream, None), headers).raw_headers
    assert ours == _starlette_stream_headers(headers)
    assert (b"content-type", b"text/event-stream; charset=utf-8") in ours


def test_a_stream_keeps_a_content_type_it_is_given() -> None:
    headers = {"content-type": "text/event-stream"}
    ours = SSEResponse(cast(Stream, None), headers).raw_headers
    assert ours == _starlette_stream_headers(headers)
    assert [v for k, v in ours if k == b"content-type"] == [b"text/event-stream"]


@pytest.mark.parametrize(
    "make", [lambda h: WholeJSON(BODY, headers=h), lambda h: SSEResponse(cast(Stream, None), h)]
)
def test_a_value_latin_1_cannot_hold_is_refused_like_starlette_refuses_it(make: object) -> None:
    headers = {"x-hedge-model": "模型"}
    with pytest.raises(UnicodeEncodeError):
        Response(BODY, headers=headers)
    with pytest.raises(UnicodeEncodeError):
        make(headers)  # type: ignore[operator]
