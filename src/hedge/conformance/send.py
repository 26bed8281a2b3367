"""Sending one chat request straight to a deployment, through the gateway's own attempt code.

No routing, failover or retries: the point is to see exactly what this deployment answers. A
whole answer comes from :func:`hedge.gateway.attempt.complete`; a stream is opened by
:func:`hedge.gateway.attempt.open_stream` and read through :class:`hedge.gateway.stream.Stream`,
so the SSE checked is byte for byte what a client of the gateway would get, and an error status
becomes the adapter's translated error here exactly as it does for clients.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from hedge.errors import HedgeError, UpstreamError
from hedge.gateway.attempt import complete, open_stream
from hedge.gateway.stream import Stream
from hedge.providers.base import Usage
from hedge.record import RequestRecord
from hedge.routing.deployment import Deployment
from hedge.transport import Transport


@dataclass(slots=True)
class Exchange:
    """One request and what came back: a completion (assembled from the chunks, for a stream) or an error."""

    request: dict[str, Any]
    body: dict[str, Any] | None = None
    error: HedgeError | None = None
    crash: str | None = None
    """The adapter (or this code) raised something that is not an error the gateway can render."""
    sse: bytes | None = None
    """For streams: every byte the gateway would have sent the client."""
    events: list[Any] = field(default_factory=list)
    """For streams: each SSE ``data`` payload, parsed (``"[DONE]"`` kept as that string)."""
    usage: Usage | None = None
    """The usage the adapter reported (``None``: the provider sent none)."""
    latency_ms: float = 0.0


async def exchange(
    transport: Transport, dep: Deployment, body: dict[str, Any], model: str, stream: bool
) -> Exchange:
    """Send ``body`` to ``dep`` as upstream ``model``; never raises for what the deployment did."""
    out = Exchange(request=body)
    began = time.perf_counter()
    try:
        async with asyncio.timeout(dep.timeouts.total):
            if stream:
                await _stream(transport, dep, body, model, out)
            else:
                await _complete(transport, dep, body, model, out)
    except HedgeError as exc:
        out.error = exc
    except TimeoutError:
        out.error = UpstreamError(
            f"no complete answer within {dep.timeouts.total:g}s", status=504, code="upstream_timeout"
        )
    except Exception as exc:
        out.crash = f"{type(exc).__name__}: {exc}"
    out.latency_ms = (time.perf_counter() - began) * 1000
    return out


async def _complete(
    transport: Transport, dep: Deployment, body: dict[str, Any], model: str, out: Exchange
) -> None:
    answer = await complete(transport, dep, "chat", body, model)
    out.usage = answer.usage
    data = orjson.loads(answer.body)
    if not isinstance(data, dict):
        raise ValueError("the translated completion is not a JSON object")
    out.body = data


async def _stream(
    transport: Transport, dep: Deployment, body: dict[str, Any], model: str, out: Exchange
) -> None:
    want_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    started = time.perf_counter()
    opened = await open_stream(transport, dep, body, want_usage, model)
    record = RequestRecord("check-" + uuid.uuid4().hex[:16], "chat", alias="", stream=True)
    stream = Stream(
        opened,
        deployment=dep,
        want_usage=want_usage,
        record=record,
        price=dep.price,
        baseline=None,
        started=started,
        prompt_estimate=0,
        on_failure=None,
        finish=lambda _rec: None,
    )
    parts: list[bytes] = []
    try:
        async for events in stream:
            parts += events
        parts += stream.tail()
    finally:
        await stream.close()
    out.sse = b"".join(parts)
    out.usage = opened.translator.usage
    out.events = parse_sse(out.sse)
    out.body = assemble(out.events)


def parse_sse(raw: bytes) -> list[Any]:
    """Each event's ``data`` (the gateway sends only ``data:`` events), parsed; ``[DONE]`` as a string.

    An event that is not ``data: <JSON>`` is kept as ``{"_malformed": <text>}``.
    """
    events: list[Any] = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not block.strip():
            continue
        lines = [line for line in block.split(b"\n") if line and not line.startswith(b":")]
        if not lines or not all(line.startswith(b"data:") for line in lines):
            events.append({"_malformed": block[:200].decode("utf-8", "replace")})
            continue
        data = b"\n".join(line[5:].removeprefix(b" ") for line in lines)
        if data == b"[DONE]":
            events.append("[DONE]")
            continue
        try:
            events.append(orjson.loads(data))
        except orjson.JSONDecodeError:
            events.append({"_malformed": data[:200].decode("utf-8", "replace")})
    return events


def assemble(events: list[Any]) -> dict[str, Any]:
    """A ``chat.completion`` built from stream chunks, so the same checks apply to streams.

    Tool call arguments are joined when they arrive as strings; a non-string
    fragment is kept as it came, so a check can report it.
    """
    choices: dict[int, dict[str, Any]] = {}
    usage: Any = None
    first: dict[str, Any] = {}
    for event in events:
        if not isinstance(event, dict) or "_malformed" in event or "error" in event:
            continue
        first = first or event
        if event.get("usage") is not None:
            usage = event["usage"]
        for choice in event.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0) if isinstance(choice.get("index"), int) else 0
            slot = choices.setdefault(
                index,
                {
                    "index": index,
                    "message": {"role": None, "content": None},
                    "finish_reason": None,
                    "_calls": {},
                },
            )
            delta = choice.get("delta") or {}
            message = slot["message"]
            if delta.get("role") and message["role"] is None:
                message["role"] = delta["role"]
            if isinstance(delta.get("content"), str):
                message["content"] = (message["content"] or "") + delta["content"]
            for call in delta.get("tool_calls") or []:
                _merge_call(slot["_calls"], call)
            if choice.get("finish_reason"):
                slot["finish_reason"] = choice["finish_reason"]
    out_choices = []
    for index in sorted(choices):
        slot = choices[index]
        calls = slot.pop("_calls")
        if calls:
            slot["message"]["tool_calls"] = [calls[k] for k in sorted(calls)]
        out_choices.append(slot)
    return {
        "id": first.get("id"),
        "object": "chat.completion",
        "model": first.get("model"),
        "choices": out_choices,
        "usage": usage,
    }


def _merge_call(calls: dict[int, dict[str, Any]], delta: Any) -> None:
    if not isinstance(delta, dict):
        return
    index: int = delta["index"] if isinstance(delta.get("index"), int) else len(calls)
    call = calls.setdefault(
        index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
    )
    if delta.get("id"):
        call["id"] = delta["id"]
    fn = delta.get("function") or {}
    if fn.get("name"):
        call["function"]["name"] += fn["name"]
    args = fn.get("arguments")
    if isinstance(args, str) and isinstance(call["function"]["arguments"], str):
        call["function"]["arguments"] += args
    elif args is not None and args != "":
        call["function"]["arguments"] = args
