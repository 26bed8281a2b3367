"""Incremental Server-Sent Events parsing and framing.

Upstream bytes arrive in arbitrary pieces; :class:`SSEParser` returns whole
events as they complete, keeping each event's raw bytes so an OpenAI-style
stream can be forwarded without re-encoding. Framing (:func:`frame`,
:func:`frame_event`, :data:`DONE`) lives in :mod:`hedge.wire.sse`, which the
mocks share, and is re-exported here for the adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hedge.errors import UpstreamError
from hedge.wire.sse import DONE, frame, frame_event

if TYPE_CHECKING:
    from hedge.providers.base import Usage

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "DONE",
    "Event",
    "EventTooLarge",
    "SSEParser",
    "SSETranslator",
    "frame",
    "frame_event",
]


@dataclass(slots=True)
class Event:
    data: bytes
    event: bytes | None
    raw: bytes


DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


class EventTooLarge(ValueError):
    """An event grew past the parser's limit without ending: the sender is broken or hostile."""


class SSEParser:
    __slots__ = ("_buf", "_max_event")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._buf = b""
        self._max_event = max_event_bytes

    def feed(self, chunk: bytes) -> list[Event]:
        buf = self._buf + chunk
        if b"\r" in buf:
            # Normalise CRLF, but keep a trailing CR: its LF may be in the next chunk.
            tail = b"\r" if buf.endswith(b"\r") else b""
            buf = buf[: len(buf) - len(tail)].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail
        events: list[Event] = []
        if b"\n\n" in buf:
            # One split for every event that arrived (bytes.find would parse its arguments the slow
            # old way, hundreds of instructions a call, at every event of every stream).
            *whole, buf = buf.split(b"\n\n")
            for body in whole:
                event = _parse(body)
                if event is not None:
                    events.append(event)
        if len(buf) > self._max_event:
            self._buf = b""
            raise EventTooLarge(f"a stream event exceeded {self._max_event} bytes without ending")
        self._buf = buf
        return events

    def close(self) -> list[Event]:
        """Flush a final event that lacked its blank line (some servers end that way)."""
        rest, self._buf = self._buf.strip(), b""
        if not rest:
            return []
        event = _parse(rest)
        return [event] if event is not None else []


class SSETranslator:
    """Base of the stream translators: SSE framing in, and the end-of-stream state the gateway reads.

    Subclasses implement ``_handle`` (whole upstream events in, OpenAI ``data:`` events out) and
    fill ``usage``, ``usage_chunk`` and ``finished`` as the stream tells them, and ``ended`` once the
    upstream sent its definitive last event (OpenAI's ``[DONE]``, Anthropic's ``message_stop``): nothing
    may follow it, so the gateway stops reading there and hangs up rather than wait for a close that a
    broken upstream may never send. ``finished`` alone (Gemini, which has no end event) waits for EOF.
    """

    __slots__ = ("_parser", "_provider", "ended", "finished", "usage", "usage_chunk")

    def __init__(self, provider: str, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._parser = SSEParser(max_event_bytes)
        self._provider = provider
        self.usage: Usage | None = None
        self.usage_chunk: dict[str, Any] | None = None
        self.finished = False
        self.ended = False

    def feed(self, data: bytes) -> list[bytes]:
        try:
            events = self._parser.feed(data)
        except EventTooLarge as exc:
            raise UpstreamError(
                f"provider '{self._provider}' sent {exc}", status=502, code="upstream_event_too_large"
            ) from None
        return self._handle(events)

    def close(self) -> list[bytes]:
        return self._handle(self._parser.close())

    def _handle(self, events: list[Event]) -> list[bytes]:
        raise NotImplementedError


def _parse(body: bytes) -> Event | None:
    """One event from its lines (``body``: the event without the blank line that ended it); None
    for an event of nothing but comments and empty lines."""
    if body[:6] == b"data: " and b"\n" not in body:  # one data line: almost every event
        return Event(data=body[6:], event=None, raw=body + b"\n\n")
    data: list[bytes] = []
    name: bytes | None = None
    for line in body.split(b"\n"):
        if not line or line[0] == 0x3A:  # a comment (":")
            continue
        key, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if key == b"data":
            data.append(value)
        elif key == b"event":
            name = value
    if not data and name is None:
        return None
    return Event(data=b"\n".join(data), event=name, raw=body + b"\n\n")
