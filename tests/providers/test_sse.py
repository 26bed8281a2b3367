"""The SSE parser: the same events however the bytes are split, with CRLF, named events and comments."""

from __future__ import annotations

import pytest

from hedge.providers.sse import SSEParser
from providers.test_openai import STREAM


@pytest.mark.parametrize("size", [1, 2, 3, 7, 50, len(STREAM)])
def test_sse_parser_is_split_independent(size: int) -> None:
    parser = SSEParser()
    events = []
    for i in range(0, len(STREAM), size):
        events.extend(parser.feed(STREAM[i : i + size]))
    events.extend(parser.close())
    assert [e.data[:8] for e in events] == [b'{"id":"1'] * 4 + [b"[DONE]"]
    assert b"".join(e.raw for e in events) == STREAM


def test_sse_parser_handles_crlf_named_events_and_comments() -> None:
    parser = SSEParser()
    events = parser.feed(b': ping\r\n\r\nevent: message_start\r\ndata: {"a":1}\r')
    events += parser.feed(b"\n\r\ndata: x\n")
    events += parser.close()
    assert [(e.event, e.data) for e in events] == [(b"message_start", b'{"a":1}'), (None, b"x")]
