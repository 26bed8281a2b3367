"""Mock upstream speaking the OpenAI wire format (chat completions, embeddings, models).

Faithful enough for the official ``openai`` SDK: the same field names and
object types, ``data: [DONE]``, a usage-only final chunk under
``stream_options.include_usage`` (and ``"usage": null`` on every other chunk),
OpenAI-shaped error bodies and ``Retry-After`` on 429. Like OpenAI it rejects an
out-of-range ``max_tokens``/``max_completion_tokens``, ``temperature`` or ``n``
with 400, and an unknown model (see :func:`~hedge.mock.behaviour.unknown_model`) with 404.

Quirks (``--quirk``, repeatable) reproduce incompatibilities of real
"OpenAI-compatible" servers; ``hedge check`` catches each of them:
``ignore-stop`` (``stop`` is ignored), ``stop-included`` (the matched stop
sequence stays in the text), ``no-stream-usage`` (no usage chunk despite
``stream_options.include_usage``), ``tool-args-object`` (tool call
``arguments`` as a JSON object instead of a string), ``drop-system`` (system
messages are ignored), ``no-role-in-first-chunk`` (the first stream chunk has
no ``role``) and ``error-as-200`` (errors, and every completion, are an error
body with status 200).
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hedge.mock.behaviour import Reply, Tool, Turn, count_tokens, plan_reply, text_of, unknown_model
from hedge.mock.state import MockState
from hedge.providers.sse import DONE, frame

_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "Invalid request.", None),
    401: ("invalid_request_error", "Incorrect API key provided.", "invalid_api_key"),
    403: ("invalid_request_error", "You are not allowed to access this resource.", None),
    404: (
        "invalid_request_error",
        "The model does not exist or you do not have access to it.",
        "model_not_found",
    ),
    429: ("requests", "Rate limit reached for requests. Please try again later.", "rate_limit_exceeded"),
    500: ("server_error", "The server had an error while processing your request. Sorry about that!", None),
    502: ("server_error", "Bad gateway.", None),
    503: ("server_error", "The server is overloaded or not ready yet.", None),
    504: ("server_error", "The server timed out.", None),
}


def error(state: MockState, status: int, message: str | None = None, param: str | None = None) -> Response:
    etype, default, code = _ERRORS.get(status, ("server_error", f"Mock failure {status}.", None))
    body = {"error": {"message": message or default, "type": etype, "param": param, "code": code}}
    after = state.knobs.retry_after  # a string is sent verbatim: "inf", an HTTP date, garbage
    headers = {"retry-after": after if isinstance(after, str) else f"{after:g}"} if status == 429 else None
    if state.quirk("error-as-200"):
        status = 200
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def _authorized(state: MockState, request: Request) -> bool:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return False
    return state.knobs.api_key is None or key.strip() == state.knobs.api_key


async def _admit(state: MockState, request: Request) -> tuple[dict[str, Any] | None, Response | None]:
    """Common entry: parse, record, authenticate, inject faults. Returns (body, early_response)."""
    body = await state.read(request)
    if not _authorized(state, request):
        return None, error(state, 401, "You didn't provide a valid API key.")
    if not isinstance(body, dict):
        return None, error(state, 400, "We could not parse the JSON body of your request.")
    status = await state.fault(body, bool(body.get("stream")))
    return (None, error(state, status)) if status is not None else (body, None)


def turns_of(messages: list[dict[str, Any]], drop_system: bool = False) -> list[Turn]:
    turns: list[Turn] = []
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            if not drop_system:
                turns.append(Turn("system", text_of(m.get("content"))))
        elif role in ("tool", "function"):
            turns.append(Turn("tool", text_of(m.get("content"))))
        elif role == "assistant":
            turns.append(Turn("assistant", text_of(m.get("content"))))
        else:
            turns.append(Turn("user", text_of(m.get("content"))))
    return turns


def _plan(state: MockState, body: dict[str, Any]) -> Reply:
    tools = [
        Tool(t["function"]["name"], t["function"].get("parameters") or {})
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    fmt = (body.get("response_format") or {}).get("type")
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
    reply = plan_reply(
        str(body.get("model")),
        turns_of(body.get("messages") or [], drop_system=state.quirk("drop-system")),
        tools=tools or None,
        tool_choice=choice if isinstance(choice, str) else None,
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        stop=None if state.quirk("ignore-stop") else stops,
        json_mode=fmt in ("json_object", "json_schema"),
        json_schema=schema if fmt == "json_schema" and isinstance(schema, dict) else None,
    )
    if state.quirk("stop-included") and reply.matched_stop:
        reply.pieces.append(reply.matched_stop)
    return reply


def _tool_call_json(state: MockState, reply: Reply) -> list[dict[str, Any]]:
    as_object = state.quirk("tool-args-object")
    return [
        {
            "id": c.id,
            "type": "function",
            "function": {
                "name": c.name,
                "arguments": c.arguments if as_object else orjson.dumps(c.arguments).decode(),
            },
        }
        for c in reply.tool_calls
    ]


def _usage(reply: Reply, n: int) -> dict[str, Any]:
    completion = reply.completion_tokens * n
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": reply.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _completion_id(body: dict[str, Any]) -> str:
    return "chatcmpl-" + hashlib.sha1(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:29]


async def chat(request: Request) -> Response:
    state: MockState = request.app.state.mock
    body, early = await _admit(state, request)
    if early is not None or body is None:
        return early or error(state, 400)
    if (
        not isinstance(body.get("model"), str)
        or not isinstance(body.get("messages"), list)
        or not body["messages"]
    ):
        return error(state, 400, "'model' and a non-empty 'messages' array are required.", "messages")
    if unknown_model(body["model"]):
        missing = f"The model `{body['model']}` does not exist or you do not have access to it."
        return error(state, 404, missing, "model")
    problem = _invalid_parameter(body)
    if problem is not None:
        return error(state, 400, problem[1], problem[0])
    reply = _plan(state, body)
    n = int(body.get("n") or 1)
    if body.get("stream"):
        return StreamingResponse(_stream(state, body, reply, n), media_type="text/event-stream")
    await state.delay()
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text if reply.pieces else None,
        "refusal": None,
    }
    if reply.tool_calls:
        message["tool_calls"] = _tool_call_json(state, reply)
    data = {
        "id": _completion_id(body),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {"index": i, "message": message, "logprobs": None, "finish_reason": reply.finish}
            for i in range(n)
        ],
        "usage": _usage(reply, n),
        "service_tier": "default",
        "system_fingerprint": "fp_hedge_mock",
    }
    if state.quirk("error-as-200"):
        data = {"error": {"message": "Mock error reported with status 200.", "type": "server_error"}}
    return Response(orjson.dumps(data), media_type="application/json")


def _invalid_parameter(body: dict[str, Any]) -> tuple[str, str] | None:
    """``(param, message)`` for the first out-of-range parameter OpenAI would reject, if any."""
    for name, low, high in (
        ("max_tokens", 1, None),
        ("max_completion_tokens", 1, None),
        ("n", 1, 128),
        ("temperature", 0, 2),
    ):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            return name, f"Invalid type for '{name}': expected a number."
        if value < low:
            return name, f"Invalid '{name}': {value} is below the minimum value of {low}."
        if high is not None and value > high:
            return name, f"Invalid '{name}': {value} is above the maximum value of {high}."
    return None


async def _stream(state: MockState, body: dict[str, Any], reply: Reply, n: int) -> AsyncIterator[bytes]:
    state.stats.streams_started += 1
    completed = False
    include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and not state.quirk(
        "no-stream-usage"
    )
    base = {
        "id": _completion_id(body),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_hedge_mock",
        "choices": [],
    }
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return frame({**base, "choices": [choice]})

    deltas: list[dict[str, Any]] = []
    for piece in reply.pieces:
        deltas.append({"content": piece})
    for i, call in enumerate(_tool_call_json(state, reply)):
        args = call["function"]["arguments"]
        head = {
            "index": i,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"]},
        }
        if isinstance(args, str):
            half = len(args) // 2
            head["function"]["arguments"] = ""
            deltas.append({"tool_calls": [head]})
            deltas.append({"tool_calls": [{"index": i, "function": {"arguments": args[:half]}}]})
            deltas.append({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]})
        else:
            head["function"]["arguments"] = args
            deltas.append({"tool_calls": [head]})
    steps = len(deltas) + 1
    disconnect_at = -1
    if body.get("_mock_disconnect"):
        disconnect_at = 0 if state.knobs.fail_mode == "early-disconnect" else max(1, len(deltas) // 2)
    try:
        await state.delay(1 / steps)
        first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        if state.quirk("no-role-in-first-chunk"):
            first = {"content": ""}
        yield b"".join(chunk(first, index=i) for i in range(n))
        for k, delta in enumerate(deltas):
            if k == disconnect_at:
                raise ConnectionAbortedError("mock: injected mid-stream disconnect")
            await state.delay(1 / steps)
            yield b"".join(chunk(delta, index=i) for i in range(n))
        yield b"".join(chunk({}, reply.finish, index=i) for i in range(n))
        if include_usage:
            yield frame({**base, "choices": [], "usage": _usage(reply, n)})
        yield DONE
        completed = True
    finally:
        if completed:
            state.stats.streams_completed += 1
        else:
            state.stats.streams_cancelled += 1


def _vector(text: str, dims: int) -> list[float]:
    out: list[float] = []
    counter = 0
    while len(out) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend((b / 127.5) - 1.0 for b in digest)
        counter += 1
    vec = out[:dims]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [v / norm for v in vec]


async def embeddings(request: Request) -> Response:
    state: MockState = request.app.state.mock
    body, early = await _admit(state, request)
    if early is not None or body is None:
        return early or error(state, 400)
    raw_input = body.get("input")
    if raw_input is None or not isinstance(body.get("model"), str):
        return error(state, 400, "'model' and 'input' are required.", "input")
    inputs = [raw_input] if isinstance(raw_input, str) else list(raw_input)
    if inputs and isinstance(inputs[0], int):
        inputs = [inputs]
    dims = int(body.get("dimensions") or 8)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    tokens = 0
    for i, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(map(str, item))
        tokens += count_tokens(text) if isinstance(item, str) else len(item)
        vec = _vector(text, dims)
        emb: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if as_base64 else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    await state.delay()
    out = {
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return Response(orjson.dumps(out), media_type="application/json")


async def models(request: Request) -> Response:
    state: MockState = request.app.state.mock
    if not _authorized(state, request):
        return error(state, 401, "You didn't provide a valid API key.")
    ids = ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
    data = [{"id": m, "object": "model", "created": 1715367049, "owned_by": "hedge-mock"} for m in ids]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


def routes() -> list[Route]:
    return [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ]
