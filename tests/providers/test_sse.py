"""The SSE parser: the same events however the bytes are split, with CRLF, named events and comments."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _reference_events(stream: bytes) -> list[tuple[bytes | None, bytes, bytes]]:
    """The events of a whole stream, by the plainest reading of the SSE framing: cut at each blank
    line in turn, then read each event's lines (what the parser did before its fast paths)."""
    stream = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    out: list[tuple[bytes | None, bytes, bytes]] = []
    while (end := stream.find(b"\n\n")) >= 0:
        raw, stream = stream[: end + 2], stream[end + 2 :]
        data: list[bytes] = []
        name: bytes | None = None
        for line in raw.split(b"\n"):
            if not line or line.startswith(b":"):
                continue
            key, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if key == b"data":
                data.append(value)
            elif key == b"event":
                name = value
        if data or name is not None:
            out.append((name, b"\n".join(data), raw))
    return out


_PIECES = [b"data: ", b"data:", b"event: ", b": c", b"id: 1", b"x", b'{"a":1}', b" ", b"\n", b"\r\n", b"\n\n"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES), max_size=40),
    st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=20),
)
def test_sse_parser_reads_any_stream_as_the_plain_reading_does(pieces: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(pieces) + b"\n\n"
    parser = SSEParser()
    events = []
    at, i = 0, 0
    while at < len(stream):  # fed in pieces of the drawn sizes, cycling
        size = cuts[i % len(cuts)]
        events.extend(parser.feed(stream[at : at + size]))
        at, i = at + size, i + 1
    assert [(e.event, e.data, e.raw) for e in events] == _reference_events(stream)
