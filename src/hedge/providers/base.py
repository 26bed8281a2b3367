"""The one interface every wire format implements.

The gateway speaks OpenAI chat completions to clients. A provider *adapter*
translates one request into its upstream wire format, and translates the
answer back: a whole JSON body, a stream chunk by chunk, or an error. What a
response translation needs from its request (and cannot find in the upstream
body) travels explicitly in ``UpstreamRequest.context``: the gateway hands the
request back with the answer, so adapters keep no per-request state. The
adapter reports the token usage it saw, so cost falls out of translation with
no second parse. Adapters know nothing of routing, retries or money.

Translation must be idempotent on the original body: a retry on another
deployment translates the same client body again, so adapters never mutate it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from hedge.config import ProviderConfig

MAX_TOKENS = 100_000_000
"""More tokens than any model's context holds, by far: a count above it is an upstream bug."""

log = logging.getLogger("hedge.usage")


def token_count(value: Any) -> int:
    """An upstream's token count as an int: numbers are truncated (inf and NaN count as nothing),
    anything else (a string, an object) is 0, never an exception on the request path."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return int(value)
    return 0


@dataclass(slots=True)
class Usage:
    """Token counts in OpenAI's terms: ``prompt_tokens`` include ``cached_tokens`` (read from the
    provider's prompt cache) and ``cache_write_tokens`` (written to it); ``completion_tokens`` include
    ``reasoning_tokens``. ``service_tier`` is the tier the upstream says it served in (``flex``...)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    service_tier: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def sane(self, source: str) -> Usage:
        """These counts, each clamped to ``0..MAX_TOKENS``, so an upstream cannot book negative spend
        (a key's budget driven to -4,000 USD) or an absurd bill; an anomaly is logged with its source."""
        counts = (
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
        )
        if all(0 <= c <= MAX_TOKENS for c in counts):
            return self
        clamped = [min(max(c, 0), MAX_TOKENS) for c in counts]
        log.warning(
            "%s reported impossible usage (prompt=%d, completion=%d, cached=%d, cache_write=%d, "
            "reasoning=%d); booked as %s",
            source,
            *counts,
            "/".join(str(c) for c in clamped),
        )
        prompt, completion, cached, written, reasoning = clamped
        return Usage(prompt, completion, cached, written, reasoning, self.service_tier)

    @classmethod
    def from_openai(cls, data: Any, service_tier: Any = None) -> Usage | None:
        """OpenAI's ``usage`` (chat completions and embeddings); ``service_tier`` is the response's."""
        if not isinstance(data, dict):
            return None
        details = data.get("prompt_tokens_details") or {}
        output = data.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=token_count(data.get("prompt_tokens")),
            completion_tokens=token_count(data.get("completion_tokens")),
            cached_tokens=token_count(details.get("cached_tokens") if isinstance(details, dict) else 0),
            reasoning_tokens=token_count(output.get("reasoning_tokens") if isinstance(output, dict) else 0),
            service_tier=tier_name(service_tier),
        )


def tier_name(value: Any) -> str | None:
    """A service tier as an upstream reported it, if it is a short plain name (it is stored and shown)."""
    if isinstance(value, str) and 0 < len(value) <= 32 and value.replace("_", "").isalnum():
        return value.lower()
    return None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can honour, so a request is never silently changed in meaning.

    The gateway compares a request against this table before translation and,
    per the provider's policy, rejects the request (400) or drops the
    parameter (and says so in ``x-hedge-dropped-params``).
    """

    tools: bool = True
    parallel_tool_calls: bool = True
    vision: bool = True
    json_mode: bool = True
    json_schema: bool = True
    max_stop_sequences: int = 4
    n: bool = True
    """``n`` > 1 (several choices)."""
    logprobs: bool = True
    seed: bool = True
    penalties: bool = True
    """``presence_penalty`` / ``frequency_penalty``."""
    logit_bias: bool = True
    embeddings: bool = True
    service_tiers: frozenset[str] = frozenset({"auto", "default", "flex", "priority", "scale"})
    """The ``service_tier`` values the upstream honours (OpenAI's, by default)."""
    cache_markers: bool = False
    """Prompt-cache breakpoints (``cache_control`` on content parts) are honoured (Anthropic)."""
    extensions: bool = True
    """Parameters beyond OpenAI's own (``top_k``) are passed on; False for OpenAI's own API, which
    refuses them ("Unrecognized request argument supplied: top_k")."""


def thinking_requested(body: dict[str, Any]) -> bool:
    """Whether the request asks the model to think (``reasoning_effort`` other than none, or an
    Anthropic ``thinking`` other than disabled): the capability check's rule, and the adapters' for
    showing thinking content (``reasoning_content``) only to a client that asked for it."""
    effort = body.get("reasoning_effort")
    if isinstance(effort, str) and effort != "none":
        return True
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled")


@dataclass(slots=True)
class UpstreamRequest:
    """A fully built HTTP request for a provider: the transport only sends it."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    context: Any = None
    """Adapter-private data the matching response translation needs; the gateway hands the same
    :class:`UpstreamRequest` back to ``chat_response`` / ``embeddings_response``."""


@dataclass(slots=True)
class Translated:
    """A whole (non-streaming) answer in OpenAI format, with the usage it reported."""

    body: bytes
    usage: Usage | None


class StreamTranslator(Protocol):
    """Turns upstream stream bytes into OpenAI SSE events, incrementally.

    ``feed`` takes raw bytes as they arrive (event boundaries may fall
    anywhere) and returns complete ``data: {...}\\n\\n`` events ready to send.
    The usage-only chunk and ``data: [DONE]`` are never returned: the gateway
    decides whether the client gets usage (and adds the cost to it) and ends
    the stream itself. ``usage_chunk`` holds that final chunk as a dict.
    """

    usage: Usage | None
    usage_chunk: dict[str, Any] | None
    finished: bool
    """True once the upstream signalled a normal end of stream."""
    ended: bool
    """True once the upstream sent its definitive last event: stop reading and hang up, don't wait for EOF."""

    def feed(self, data: bytes) -> list[bytes]: ...

    def close(self) -> list[bytes]:
        """Called at upstream EOF; returns any events still buffered."""
        ...


class Adapter(Protocol):
    """Translation between OpenAI chat completions and one provider wire format."""

    style: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def __init__(self, name: str, config: ProviderConfig) -> None: ...

    def chat_request(
        self, body: dict[str, Any], model: str, stream: bool, want_usage: bool
    ) -> UpstreamRequest:
        """Build the upstream request for a client's chat body (never mutate ``body``)."""
        ...

    def chat_response(self, raw: bytes, request: UpstreamRequest) -> Translated:
        """Translate a successful upstream body into an OpenAI chat completion.

        ``request`` is the :class:`UpstreamRequest` that :meth:`chat_request` built for this
        answer, so the translation can read what it left in ``request.context``.
        """
        ...

    def stream_translator(
        self, model: str, want_usage: bool, request: UpstreamRequest | None = None
    ) -> StreamTranslator:
        """A translator for the stream answering ``request`` (what :meth:`chat_request` built)."""
        ...

    def embeddings_request(self, body: dict[str, Any], model: str) -> UpstreamRequest: ...

    def embeddings_response(self, raw: bytes, request: UpstreamRequest) -> Translated:
        """Translate a successful upstream body into an OpenAI embeddings list.

        ``request`` is the :class:`UpstreamRequest` that :meth:`embeddings_request` built.
        """
        ...

    def error(self, status: int, headers: dict[str, str], raw: bytes) -> Exception:
        """Translate an upstream error response into an :class:`~hedge.errors.UpstreamError`."""
        ...
