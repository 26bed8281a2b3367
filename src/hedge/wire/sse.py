"""Server-Sent Events framing: how one JSON object becomes one event on the wire.

A leaf: the adapters (through ``hedge.providers.sse``), the gateway's own streams and the mock
upstreams all frame events with these, and it imports nothing of Hedge's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"
"""The event that ends an OpenAI-style stream."""


def frame(obj: object) -> bytes:
    """Encode one JSON object as an SSE ``data:`` event."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def frame_event(name: str, obj: object) -> bytes:
    """Encode one JSON object as a named SSE event (Anthropic style)."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def event_data(event: bytes) -> bytes:
    """The ``data`` of one whole SSE event (its ``data:`` lines joined), as the gateway frames it.

    The fast path is the gateway's own framing, ``data: <payload>\\n\\n``; an event forwarded as
    the upstream sent it may also carry ``event:``/``id:`` lines or comments, which are skipped.
    """
    if event.startswith(b"data: ") and event.find(b"\n") == len(event) - 2:
        return event[6:-2]
    lines = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            lines.append(line[5:].removeprefix(b" "))
    return b"\n".join(lines)


def chunks(events: Iterable[bytes]) -> Iterator[Any]:
    """Each OpenAI stream event's payload, parsed (``[DONE]`` and empty events left out): what a face
    that speaks another dialect translates, event by event."""
    for event in events:
        data = event_data(event)
        if data and data != b"[DONE]":
            yield orjson.loads(data)
