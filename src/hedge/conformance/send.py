"""Sending one request straight to a deployment, through the gateway's own attempt code.

No routing, failover or retries: the point is to see exactly what this deployment answers. A
whole answer comes from :func:`hedge.gateway.attempt.complete`; a stream is opened by
:func:`hedge.gateway.attempt.open_stream` and read through :class:`hedge.gateway.stream.Stream`,
so the SSE checked is byte for byte what a client of the gateway would get, and an error status
becomes the adapter's translated error here exactly as it does for clients.

A Responses API request goes the way ``/v1/responses`` sends it: translated to chat
(:func:`~hedge.providers.responses_inbound.to_chat`), and the answer back to a Response object
(:func:`~hedge.providers.responses_inbound.to_response`) or, streamed, to Responses events
(:class:`~hedge.providers.responses_inbound.ResponsesEvents`); or, to a provider with
``responses_api: true``, passed through as it is
(:class:`~hedge.providers.openai_responses.Passthrough`,
:func:`~hedge.gateway.attempt.complete_native`), the upstream's response id replaced by the
gateway's. The face's own glue (``hedge.api.responses``) is a few lines, mirrored here, since
the faces do not import each other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from hedge.errors import HedgeError, UpstreamError
from hedge.gateway.attempt import Opened, complete, complete_native, open_stream
from hedge.gateway.stream import Stream
from hedge.providers.base import Usage
from hedge.providers.openai_responses import Passthrough, error_event, under_our_id
from hedge.providers.responses_inbound import ResponsesEvents, to_chat, to_response
from hedge.record import RequestRecord
from hedge.routing.deployment import Deployment
from hedge.transport import Transport

TERMINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")
"""The events that end a Responses stream, each carrying the final response."""


@dataclass(slots=True)
class Exchange:
    """One request and what came back: a completion (assembled from the chunks, for a stream) or an error."""

    request: dict[str, Any]
    body: dict[str, Any] | None = None
    """The chat completion, or for ``api == "responses"`` the Response object (for a stream: the
    one its final event carries)."""
    error: HedgeError | None = None
    crash: str | None = None
    """The adapter (or this code) raised something that is not an error the gateway can render."""
    sse: bytes | None = None
    """For streams: every byte the gateway would have sent the client."""
    events: list[Any] = field(default_factory=list)
    """For streams: each SSE ``data`` payload, parsed (``"[DONE]"`` kept as that string); for
    Responses streams each event as ``{"event": name, "data": payload}`` (see :func:`parse_events`)."""
    usage: Usage | None = None
    """The usage the adapter reported (``None``: the provider sent none)."""
    latency_ms: float = 0.0
    api: str = "chat"
    conversation: list[dict[str, Any]] = field(default_factory=list)
    """What a next step continues: the chat messages with the assistant's answer, or the Responses
    items (earlier ones, this input, the output) a ``previous_response_id`` would carry."""

    def call_ids(self) -> list[str]:
        """The ids of the answer's tool (function) calls, in order: what ``$call_id`` refers to."""
        body = self.body or {}
        if self.api == "responses":
            output = body.get("output")
            items: list[Any] = output if isinstance(output, list) else []
            return [
                str(i.get("call_id"))
                for i in items
                if isinstance(i, dict) and i.get("type") == "function_call" and i.get("call_id")
            ]
        choices = body.get("choices") or [{}]
        message = (choices[0] if isinstance(choices[0], dict) else {}).get("message") or {}
        tool_calls = message.get("tool_calls")
        calls: list[Any] = tool_calls if isinstance(tool_calls, list) else []
        return [str(c["id"]) for c in calls if isinstance(c, dict) and c.get("id")]


async def exchange(
    transport: Transport,
    dep: Deployment,
    body: dict[str, Any],
    model: str,
    stream: bool,
    api: str = "chat",
    previous: Sequence[dict[str, Any]] = (),
) -> Exchange:
    """Send ``body`` to ``dep`` as upstream ``model``; never raises for what the deployment did.

    ``previous``: for ``api="responses"``, the items of the conversation so far (what the gateway's
    store gives for ``previous_response_id``)."""
    if api == "responses":
        body = {**body, "model": model}
    out = Exchange(request=body, api=api)
    began = time.perf_counter()
    try:
        async with asyncio.timeout(dep.timeouts.total):
            if api == "responses":
                await _responses(transport, dep, body, model, stream, previous, out)
            elif stream:
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
    out.body = _object(answer.body, "the translated completion")
    out.conversation = [*body["messages"], _assistant(out.body)]


def _object(raw: bytes, what: str) -> dict[str, Any]:
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError(f"{what} is not a JSON object")
    return data


def _assistant(completion: dict[str, Any]) -> dict[str, Any]:
    """The first choice's message, as the next chat turn sends it back."""
    choices = completion.get("choices") or [{}]
    message = (choices[0] if isinstance(choices[0], dict) else {}).get("message") or {}
    turn: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        turn["tool_calls"] = message["tool_calls"]
    return turn


def _reader(
    opened: Opened, dep: Deployment, want_usage: bool, started: float, native: bool = False
) -> Stream:
    """The gateway's :class:`Stream` over an opened upstream stream, booking and recording nowhere."""
    record = RequestRecord("check-" + uuid.uuid4().hex[:16], "chat", alias="", stream=True)
    return Stream(
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
        native=native,
    )


async def _stream(
    transport: Transport, dep: Deployment, body: dict[str, Any], model: str, out: Exchange
) -> None:
    want_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    started = time.perf_counter()
    opened = await open_stream(transport, dep, body, want_usage, model)
    stream = _reader(opened, dep, want_usage, started)
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
    out.conversation = [*body["messages"], _assistant(out.body)]


# -- the Responses API ----------------------------------------------------------------------------


def responses_route(
    dep: Deployment, body: dict[str, Any], previous: Sequence[dict[str, Any]] = ()
) -> tuple[dict[str, Any], list[dict[str, Any]], Passthrough | None]:
    """What ``/v1/responses`` makes of ``body`` for ``dep``: the chat body, the request's input items
    (stored form), and the pass-through if ``dep`` serves the Responses API itself.

    Raises the face's 400 (:class:`~hedge.errors.InvalidRequest`) for a request it refuses."""
    chat, items = to_chat(body, previous)
    native = Passthrough()
    # As the face does: the upstream knows neither the gateway's ids nor its store.
    native.body = {k: v for k, v in body.items() if k != "previous_response_id"}
    native.body["input"] = [*previous, *items]
    native.body["store"] = False
    return chat, items, native if native.serves(dep.adapter) else None


async def _responses(
    transport: Transport,
    dep: Deployment,
    body: dict[str, Any],
    model: str,
    stream: bool,
    previous: Sequence[dict[str, Any]],
    out: Exchange,
) -> None:
    chat, items, native = responses_route(dep, body, previous)
    rid = "resp_check" + uuid.uuid4().hex
    created = int(time.time())
    if stream:
        response = await _responses_stream(transport, dep, body, chat, model, native, rid, created, out)
    elif native is not None:
        if model != dep.model:
            dep = dataclasses.replace(dep, model=model)
        answer = await complete_native(transport, dep, native)
        out.usage = answer.usage
        response = _object(answer.body, "the upstream's response")
        response["id"] = rid
        response["store"] = body.get("store", True)
        response["previous_response_id"] = body.get("previous_response_id")
    else:
        answer = await complete(transport, dep, "chat", chat, model)
        out.usage = answer.usage
        completion = _object(answer.body, "the translated completion")
        response = to_response(
            completion, body, response_id=rid, created_at=created, completed_at=int(time.time())
        )
    out.body = response
    output = response.get("output") if response is not None else None
    if isinstance(output, list):
        out.conversation = [*previous, *items, *(i for i in output if isinstance(i, dict))]


async def _responses_stream(
    transport: Transport,
    dep: Deployment,
    body: dict[str, Any],
    chat: dict[str, Any],
    model: str,
    native: Passthrough | None,
    rid: str,
    created: int,
    out: Exchange,
) -> dict[str, Any] | None:
    want_usage = bool((chat.get("stream_options") or {}).get("include_usage"))
    started = time.perf_counter()
    opened = await open_stream(transport, dep, chat, want_usage, model, native=native)
    stream = _reader(opened, dep, want_usage, started, native=native is not None)
    translate = ResponsesEvents(body, response_id=rid, created_at=created) if native is None else None
    parts: list[bytes] = []
    try:
        async for events in stream:
            if translate is None:  # the upstream's own events, under the gateway's response id
                parts.append(under_our_id(events, stream.translator, rid))
            else:
                parts += translate.frames(events)
        if translate is None:
            if stream.failure is not None:
                parts.append(error_event(stream.failure.code, stream.failure.message))
        elif stream.failure is not None:
            parts += translate.fail(stream.failure.message)
        else:
            parts += translate.finish(stream.usage_object(), int(time.time()))
    finally:
        await stream.close()
    out.sse = b"".join(parts)
    out.usage = opened.translator.usage
    out.events = parse_events(out.sse)
    return final_response(out.events)


def parse_events(raw: bytes) -> list[dict[str, Any]]:
    """Each named SSE event as ``{"event": name or None, "data": payload}``, the payload parsed
    (``[DONE]`` kept as that string); anything else as ``{"_malformed": <text>}``."""
    events: list[dict[str, Any]] = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not block.strip():
            continue
        name: str | None = None
        data: list[bytes] = []
        ok = True
        for line in block.split(b"\n"):
            if not line or line.startswith(b":"):
                continue
            if line.startswith(b"event:"):
                name = line[6:].strip().decode("utf-8", "replace")
            elif line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
            elif not line.startswith((b"id:", b"retry:")):
                ok = False
        payload = b"\n".join(data)
        if not ok or not data:
            events.append({"_malformed": block[:200].decode("utf-8", "replace")})
            continue
        if payload == b"[DONE]":
            events.append({"event": name, "data": "[DONE]"})
            continue
        try:
            events.append({"event": name, "data": orjson.loads(payload)})
        except orjson.JSONDecodeError:
            events.append({"_malformed": payload[:200].decode("utf-8", "replace")})
    return events


def final_response(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The response object of the stream's last ``response.completed`` (``.incomplete``, ``.failed``)."""
    for event in reversed(events):
        data = event.get("data")
        if isinstance(data, dict) and data.get("type") in TERMINAL_EVENTS:
            response = data.get("response")
            return response if isinstance(response, dict) else None
    return None


_CALL_ID = re.compile(r"^\$call_id(?:\[(\d+)\])?$")


def substitute(value: Any, call_ids: list[str]) -> Any:
    """``value`` with every string ``$call_id`` (``$call_id[N]``) replaced by that call id.

    Raises :class:`LookupError` naming the placeholder when the answer has no such call."""
    if isinstance(value, dict):
        return {k: substitute(v, call_ids) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, call_ids) for v in value]
    match = _CALL_ID.match(value) if isinstance(value, str) else None
    if match is None:
        return value
    index = int(match.group(1) or 0)
    if index >= len(call_ids):
        raise LookupError(f"{value}: the answer before has {len(call_ids)} function calls")
    return call_ids[index]


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
