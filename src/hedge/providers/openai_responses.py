"""Passing the Responses API straight through to an OpenAI-native upstream.

A provider declared with ``responses_api: true`` serves ``POST {base_url}/responses`` itself, so a
Responses request routed to it is sent as the client wrote it (only ``model`` replaced, the
conversation of ``previous_response_id`` expanded into ``input``, since the upstream does not know
the gateway's ids) instead of being translated to chat completions. Its answer is forwarded as the
upstream framed it; the face replaces the upstream's response id with the gateway's, so retrieving
it later, or continuing from it, finds the gateway's stored copy. The usage is read from the
answer, so the request is priced and booked like any other.
"""

from __future__ import annotations

from typing import Any

from hedge.errors import UpstreamError
from hedge.providers.base import Adapter, Translated, UpstreamRequest, Usage, tier_name, token_count
from hedge.providers.errors import load_object
from hedge.providers.openai import OpenAIAdapter
from hedge.providers.sse import DEFAULT_MAX_EVENT_BYTES, Event, SSETranslator, frame_event

_FINAL_EVENTS = {b"response.completed", b"response.incomplete", b"response.failed"}
_CONTENT_EVENTS = (
    b"response.output_text.delta",
    b"response.refusal.delta",
    b"response.function_call_arguments.delta",
    b"response.output_item.added",
    b"response.completed",
    b"response.incomplete",
    b"response.failed",
)


def usage_of(response: Any) -> Usage | None:
    """A Responses ``usage`` object in the gateway's terms."""
    usage = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    output = usage.get("output_tokens_details")
    reasoning = output.get("reasoning_tokens") if isinstance(output, dict) else 0
    return Usage(
        token_count(usage.get("input_tokens")),
        token_count(usage.get("output_tokens")),
        token_count(cached),
        reasoning_tokens=token_count(reasoning),
        service_tier=tier_name(response.get("service_tier")),
    )


class Passthrough:
    """One Responses request, for the deployments that serve the Responses API natively."""

    def __init__(self) -> None:
        self.needs_native: str | None = None
        """A parameter only a native deployment can honour (a hosted tool), set by the face."""
        self.body: dict[str, Any] | None = None
        """What to send (set by the face once the request is validated), ``model`` still the alias."""

    def serves(self, adapter: Adapter) -> bool:
        """Whether this deployment's provider takes the request as it is."""
        return self.body is not None and isinstance(adapter, OpenAIAdapter) and adapter.config.responses_api

    def request(self, adapter: Adapter, model: str, stream: bool) -> UpstreamRequest:
        assert self.body is not None and isinstance(adapter, OpenAIAdapter)
        return adapter.responses_request(self.body, model, stream)

    def answer(self, provider: str, raw: bytes) -> Translated:
        """A whole response, checked to be one, and its usage."""
        data = load_object(raw, provider)
        if data.get("object") != "response" or not isinstance(data.get("output"), list):
            err = data.get("error")
            said = err.get("message") if isinstance(err, dict) else err
            raise UpstreamError(
                f"provider '{provider}' answered 200 without a response object"
                + (f": {str(said)[:400]}" if said else ""),
                status=502,
                upstream_status=200,
                code="upstream_bad_response",
            )
        return Translated(raw, usage_of(data))

    def translator(self, adapter: Adapter) -> ResponsesStream:
        assert isinstance(adapter, OpenAIAdapter)
        return ResponsesStream(adapter.name, adapter.config.max_event_bytes)

    def only_native(self) -> str | None:
        return self.needs_native

    def has_content(self, event: bytes) -> bool:
        """Whether a Responses stream event is past the preamble (``response.created``/``in_progress``)."""
        return event.startswith(b"event: ") and event[7:].startswith(_CONTENT_EVENTS)


class ResponsesStream(SSETranslator):
    """Forwards a Responses event stream as it came, and reads the upstream's response id from its
    first event and its usage and final response from its last."""

    __slots__ = ("final", "upstream_id")

    def __init__(self, provider: str, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        super().__init__(provider, max_event_bytes)
        self.upstream_id: str | None = None
        """The upstream's id for this response, from ``response.created``."""
        self.final: dict[str, Any] | None = None
        """The response object of the last event, for the gateway to store."""

    def _handle(self, events: list[Event]) -> list[bytes]:
        out: list[bytes] = []
        for ev in events:
            name = ev.event or b""
            raw = ev.data
            if self.upstream_id is None and name == b"response.created":
                created = load_object(raw, self._provider).get("response") or {}
                self.upstream_id = str(created.get("id") or "")
            if name == b"error":
                message = (load_object(raw, self._provider).get("message")) or "stream failed"
                raise UpstreamError(
                    f"provider '{self._provider}' failed mid-stream: {message}",
                    status=502,
                    code="upstream_stream_error",
                )
            out.append(b"event: " + name + b"\ndata: " + raw + b"\n\n")
            if name in _FINAL_EVENTS:
                final = load_object(raw, self._provider).get("response")
                if isinstance(final, dict):
                    self.final = final
                    self.usage = usage_of(final)
                self.finished = self.ended = True
        return out


def under_our_id(events: list[bytes], translator: object, ours: str) -> bytes:
    """A batch of an upstream's Responses events with its response id replaced by the gateway's."""
    joined = b"".join(events)
    theirs = translator.upstream_id if isinstance(translator, ResponsesStream) else None
    return joined.replace(theirs.encode(), ours.encode()) if theirs else joined


def error_event(code: str | None, message: str) -> bytes:
    """The Responses API's ``error`` event, for a passed-through stream that failed part-way."""
    return frame_event("error", {"type": "error", "code": code, "message": message})
