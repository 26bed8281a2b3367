"""One attempt on one deployment: fit the request to it, translate, send, read (or hold a stream
until its first token).

No routing, failover or money here: the pipeline decides which deployment to try and books what
came back, and ``hedge check`` calls these functions directly to see exactly what one deployment
answers. The deployment's in-flight count and latency (which the load- and latency-aware
strategies read) are bracketed here, and only here, by :class:`InFlight`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from hedge.errors import HedgeError, UpstreamError
from hedge.providers.base import Adapter, StreamTranslator, Translated, UpstreamRequest, Usage
from hedge.providers.capabilities import drop, ignorable, model_rules, unsupported
from hedge.routing.deployment import Deployment
from hedge.transport import Reply, Transport, network_error
from hedge.wire.sse import event_data


class Native(Protocol):
    """A request some deployments take in the client's own API (e.g. the Responses API passed through
    to an upstream that serves it), rather than translated to chat completions."""

    def serves(self, adapter: Adapter) -> bool: ...

    def request(self, adapter: Adapter, model: str, stream: bool) -> UpstreamRequest: ...

    def answer(self, provider: str, raw: bytes) -> Translated: ...

    def translator(self, adapter: Adapter) -> StreamTranslator: ...

    def has_content(self, event: bytes) -> bool:
        """Whether a stream event is past the preamble (the first token has arrived)."""
        ...

    def only_native(self) -> str | None:
        """The parameter that only a deployment serving the API natively can honour (e.g. a hosted
        tool), or None: the others may serve the translated body."""
        ...


class InFlight:
    """One request counted in flight on a deployment, from send to the end of its answer."""

    __slots__ = ("_dep", "_ended")

    def __init__(self, dep: Deployment) -> None:
        self._dep = dep
        self._ended = False
        dep.stats.start()

    def end(
        self, latency_ms: float | None, ttft_ms: float | None = None, completion_tokens: int | None = None
    ) -> None:
        """The attempt ended (``latency_ms`` None: it failed); a second call is ignored."""
        if not self._ended:
            self._ended = True
            self._dep.stats.end(latency_ms, ttft_ms, completion_tokens)


def fit(
    dep: Deployment, endpoint: str, body: dict[str, Any], policy: str | None
) -> tuple[dict[str, Any], list[str]]:
    """The body to send ``dep`` under the unsupported-parameter policy, and the parameters dropped;
    or a 400 naming what it cannot honour.

    The refusal is retryable without blame, so failover first looks for another
    deployment of the alias that can honour the request.
    """
    caps, style = dep.adapter.capabilities, dep.adapter.style
    if endpoint != "chat":
        bad = [] if caps.embeddings else ["embeddings"]
        ignored: list[str] = []
    else:
        ignored = ignorable(body, style)
        bad = unsupported(body, caps, style, dep.model, ignored)
    if ignored:
        body = drop(body, ignored, caps, style)
    if not bad:
        return body, ignored
    if endpoint == "chat" and (policy or dep.on_unsupported) == "drop":
        return drop(body, bad, caps, style), ignored + bad
    names = ", ".join(f"'{p}'" for p in bad)
    what = "does not support embeddings" if bad == ["embeddings"] else f"cannot honour {names}"
    reasons = model_rules(body, style, dep.model, caps) if endpoint == "chat" else {}
    why = "; ".join(reasons[p] for p in bad if p in reasons)
    if why:
        what += f" ({why})"
    raise UpstreamError(
        f"Provider '{dep.provider}' (model {dep.model}) {what}. Remove it, route to a provider that "
        'supports it, or send "hedge": {"on_unsupported": "drop"} to drop it.',
        status=400,
        type="invalid_request_error",
        code="unsupported_parameter",
        param=bad[0],
        retryable=True,
        blame=False,
    )


@dataclass(slots=True)
class Answer:
    """A whole answer from one deployment, in OpenAI format."""

    body: bytes
    usage: Usage | None
    latency_ms: float


async def complete(
    transport: Transport, dep: Deployment, endpoint: str, body: dict[str, Any], model: str | None = None
) -> Answer:
    """Send a (fitted) chat or embeddings body to ``dep`` (as upstream ``model``, by default the
    deployment's) and translate its whole answer."""
    adapter = dep.adapter
    chat = endpoint == "chat"
    model = model or dep.model
    upstream = (
        adapter.chat_request(body, model, False, False) if chat else adapter.embeddings_request(body, model)
    )
    began = time.perf_counter()
    flight = InFlight(dep)
    latency: float | None = None
    usage: Usage | None = None
    try:
        reply = await transport.send(dep.provider, upstream, dep.timeouts, adapter.error)
        raw = await reply.read()
        translated = (
            adapter.chat_response(raw, upstream) if chat else adapter.embeddings_response(raw, upstream)
        )
        usage = translated.usage
        latency = (time.perf_counter() - began) * 1000
    finally:
        flight.end(latency, None, usage.completion_tokens if usage is not None else None)
    return Answer(translated.body, usage, latency)


async def complete_native(transport: Transport, dep: Deployment, native: Native) -> Answer:
    """Send the request in its own API to a deployment that serves it, and read the whole answer."""
    upstream = native.request(dep.adapter, dep.model, False)
    began = time.perf_counter()
    flight = InFlight(dep)
    latency: float | None = None
    usage: Usage | None = None
    try:
        reply = await transport.send(dep.provider, upstream, dep.timeouts, dep.adapter.error)
        translated = native.answer(dep.provider, await reply.read())
        usage = translated.usage
        latency = (time.perf_counter() - began) * 1000
    finally:
        flight.end(latency, None, usage.completion_tokens if usage is not None else None)
    return Answer(translated.body, usage, latency)


@dataclass(slots=True)
class Opened:
    """A stream that has sent its first content: the upstream reply, still being read, and what
    arrived so far (OpenAI SSE events, held back from the client until now)."""

    reply: Reply
    translator: StreamTranslator
    first: list[bytes]
    flight: InFlight


async def open_stream(
    transport: Transport,
    dep: Deployment,
    body: dict[str, Any],
    want_usage: bool,
    model: str | None = None,
    native: Native | None = None,
) -> Opened:
    """Send a (fitted) chat body as a stream and hold it back until its first content.

    Nothing has reached the client yet, so a failure before the first token can still fail
    over, invisibly to it. The time-to-first-token timeout, if set, bounds this phase.
    """
    model = model or dep.model
    if native is not None:
        upstream = native.request(dep.adapter, model, True)
        content: Callable[[bytes], bool] = native.has_content
    else:
        upstream = dep.adapter.chat_request(body, model, True, want_usage)
        content = _has_content
    flight = InFlight(dep)
    try:
        reply = await transport.send(dep.provider, upstream, dep.timeouts, dep.adapter.error)
        if native is not None:
            translator = native.translator(dep.adapter)
        else:
            translator = dep.adapter.stream_translator(model, want_usage, upstream)
        try:
            first = await _first_events(reply, translator, dep, content)
        except BaseException:
            reply.close()
            raise
    except BaseException:
        flight.end(None)
        raise
    return Opened(reply, translator, first, flight)


async def _first_events(
    reply: Reply, translator: StreamTranslator, dep: Deployment, content: Callable[[bytes], bool]
) -> list[bytes]:
    held: list[bytes] = []
    first_token = dep.timeouts.first_token
    try:  # without a first-token timeout, no asyncio.timeout(None) to set up per stream
        async with asyncio.timeout(first_token) if first_token is not None else contextlib.nullcontext():
            while data := await reply.piece():
                events = translator.feed(data)
                held.extend(events)
                if any(content(e) for e in events):
                    return held
                if translator.ended:
                    break
            held.extend(translator.close())
    except HedgeError:
        raise
    except BaseException as exc:
        raise network_error(dep.provider, exc) from None
    if not translator.finished:
        raise UpstreamError(
            f"provider '{dep.provider}' ended the stream before its first token",
            status=502,
            code="upstream_empty_stream",
        )
    return held


def _has_content(event: bytes) -> bool:
    """Whether an OpenAI chunk event carries anything beyond the opening role delta."""
    try:
        chunk = orjson.loads(event_data(event))
    except orjson.JSONDecodeError:
        return True
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if choice.get("finish_reason") or any(delta.get(k) for k in ("content", "tool_calls", "refusal")):
            return True
    return False
