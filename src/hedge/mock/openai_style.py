"""Mock upstream speaking the OpenAI wire format (chat completions, embeddings, models).

Faithful enough for the official ``openai`` SDK: the same field names and
object types, ``data: [DONE]``, a usage-only final chunk under
``stream_options.include_usage`` (and ``"usage": null`` on every other chunk),
OpenAI-shaped error bodies and ``Retry-After`` on 429. An unknown model (see
:func:`~hedge.mock.behaviour.unknown_model`) is 404.

Like OpenAI it answers 400, with OpenAI's messages and codes, for an integer
parameter that is not an integer or is out of range (``max_tokens`` and
``max_completion_tokens`` below 1, ``n`` outside 1..128; ``temperature``
outside 0..2), more than 4 ``stop`` sequences, more than 128 ``tools`` or a
function name over 64 characters, a message ``content`` over 10,485,760
characters, ``max_tokens`` on a reasoning model (o-series, gpt-5: "Use
'max_completion_tokens' instead"), ``top_k`` or ``thinking`` ("Unrecognized
request argument supplied"), and on embeddings: an invalid ``input``, more than 2048 inputs, an
input over 8192 tokens or more than 300,000 in all, and ``dimensions`` below 1,
above the model's size (1536 for ``text-embedding-3-small``, 3072 for
``-large`` and for names OpenAI does not have) or given at all for
``text-embedding-ada-002``. A body over the ``max_body_bytes`` knob is 413.
Reasoning models report ``reasoning_tokens`` (unless ``reasoning_effort`` is
``none``). A ``max_tokens`` OpenAI would accept is clamped (see :mod:`hedge.mock.behaviour`),
and a large embeddings answer is written one vector at a time, so the mock's
memory stays small whatever the request.

Quirks (``--quirk``, repeatable) reproduce incompatibilities of real
"OpenAI-compatible" servers; ``hedge check`` catches each of them:
``ignore-stop`` (``stop`` is ignored), ``stop-included`` (the matched stop
sequence stays in the text), ``no-stream-usage`` (no usage chunk despite
``stream_options.include_usage``), ``tool-args-object`` (tool call
``arguments`` as a JSON object instead of a string), ``drop-system`` (system
messages are ignored), ``no-role-in-first-chunk`` (the first stream chunk has
no ``role``) and ``error-as-200`` (errors, and every completion, are an error
body with status 200).

``service_tier`` must be one of OpenAI's values; the answer names the tier it ran in (``flex`` and
``priority`` as asked, else ``default``). ``reasoning_effort`` ``low``/``medium``/``high`` adds 16/32/64
reasoning tokens to ``completion_tokens`` (``completion_tokens_details.reasoning_tokens``), as reasoning
models report them.
"""

from __future__ import annotations

import base64
import re
import struct
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hedge.mock.behaviour import (
    Reply,
    Tool,
    Turn,
    count_tokens,
    digest,
    embedding_vector,
    plan_reply,
    text_of,
    unknown_model,
)
from hedge.mock.state import BodyTooLarge, MockState
from hedge.wire.sse import DONE, frame

_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "Invalid request.", None),
    401: ("invalid_request_error", "Incorrect API key provided.", "invalid_api_key"),
    403: ("invalid_request_error", "You are not allowed to access this resource.", None),
    404: (
        "invalid_request_error",
        "The model does not exist or you do not have access to it.",
        "model_not_found",
    ),
    413: ("invalid_request_error", "The request body is too large.", "request_too_large"),
    429: ("requests", "Rate limit reached for requests. Please try again later.", "rate_limit_exceeded"),
    500: ("server_error", "The server had an error while processing your request. Sorry about that!", None),
    502: ("server_error", "Bad gateway.", None),
    503: ("server_error", "The server is overloaded or not ready yet.", None),
    504: ("server_error", "The server timed out.", None),
}

MAX_N = 128
MAX_STOP = 4
MAX_TOOLS = 128
MAX_FUNCTION_NAME = 64
MAX_TOOL_CALL_ID = 40
MAX_CONTENT_CHARS = 10_485_760
MAX_EMBEDDING_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000
DEFAULT_DIMENSIONS = 8
"""The mock's vectors are short unless ``dimensions`` asks for more (real models default to their size)."""
EMBEDDING_DIMENSIONS: dict[str, int | None] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": None,  # a fixed size: ``dimensions`` is refused
}
MAX_DIMENSIONS = 3072
"""The limit for model names OpenAI does not have: its largest embedding size."""
_INLINE_FLOATS = 1 << 16
"""Embedding answers up to this many numbers are one body; larger ones are written a vector at a time."""
_INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
)


def error_body(
    status: int,
    message: str | None = None,
    param: str | None = None,
    *,
    code: str | None = None,
    etype: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error object for ``status`` (the defaults are OpenAI's own words)."""
    default_type, default, default_code = _ERRORS.get(
        status, ("server_error", f"Mock failure {status}.", None)
    )
    return {
        "error": {
            "message": message or default,
            "type": etype or default_type,
            "param": param,
            "code": code or default_code,
        }
    }


def error(
    state: MockState,
    status: int,
    message: str | None = None,
    param: str | None = None,
    *,
    code: str | None = None,
    etype: str | None = None,
) -> Response:
    body = error_body(status, message, param, code=code, etype=etype)
    after = state.knobs.retry_after  # a string is sent verbatim: "inf", an HTTP date, garbage
    headers = {"retry-after": after if isinstance(after, str) else f"{after:g}"} if status == 429 else None
    if state.quirk("error-as-200"):
        status = 200
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


class _Invalid(Exception):
    """A parameter OpenAI rejects with 400: its message, ``param`` and ``code`` (and ``type``)."""

    def __init__(
        self, message: str, param: str | None, code: str | None = None, etype: str | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.etype = message, param, code, etype

    def response(self, state: MockState) -> Response:
        return error(state, 400, self.message, self.param, code=self.code, etype=self.etype)

    def body(self) -> dict[str, Any]:
        return error_body(400, self.message, self.param, code=self.code, etype=self.etype)


def _kind(value: Any) -> str:
    """How OpenAI names a JSON value's type in an "Invalid type" message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _type_error(name: str, expected: str, value: Any) -> _Invalid:
    return _Invalid(
        f"Invalid type for '{name}': expected {expected}, but got {_kind(value)} instead.",
        name,
        "invalid_type",
    )


def _integer(name: str, value: Any, low: int, high: int | None = None) -> int | None:
    """``value`` if it is an integer within [low, high]; None if absent; else OpenAI's 400."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(name, "an integer", value)
    if value < low:
        raise _Invalid(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
            f"but got {value} instead.",
            name,
            "integer_below_min_value",
        )
    if high is not None and value > high:
        raise _Invalid(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, "
            f"but got {value} instead.",
            name,
            "integer_above_max_value",
        )
    return value


def _decimal(name: str, value: Any, low: float, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(name, "a decimal", value)
    if value < low:
        word, bound, code = "below minimum", f">= {low:g}", "decimal_below_min_value"
    elif value > high:
        word, bound, code = "above maximum", f"<= {high:g}", "decimal_above_max_value"
    else:
        return
    raise _Invalid(
        f"Invalid '{name}': decimal {word} value. Expected a value {bound}, but got {value} instead.",
        name,
        code,
    )


def _array_max(name: str, value: list[Any], high: int) -> None:
    if len(value) > high:
        raise _Invalid(
            f"Invalid '{name}': array too long. Expected an array with maximum length {high}, "
            f"but got an array with length {len(value)} instead.",
            name,
            "array_above_max_length",
        )


def _string_max(name: str, value: str, high: int) -> None:
    if len(value) > high:
        raise _Invalid(
            f"Invalid '{name}': string too long. Expected a string with maximum length {high}, "
            f"but got a string with length {len(value)} instead.",
            name,
            "string_above_max_length",
        )


def _authorized(state: MockState, request: Request) -> bool:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return False
    return state.knobs.api_key is None or key.strip() == state.knobs.api_key


async def _admit(state: MockState, request: Request) -> tuple[dict[str, Any] | None, Response | None]:
    """Common entry: parse, record, authenticate, inject faults. Returns (body, early_response)."""
    try:
        body = await state.read(request)
    except BodyTooLarge as exc:
        return None, error(state, 413, f"The request body is larger than the limit of {exc.limit} bytes.")
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


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _plan(state: MockState, body: dict[str, Any]) -> Reply:
    tools = [
        Tool(t["function"]["name"], _object(t["function"].get("parameters")))
        for t in body.get("tools") or []  # validated by _check_chat
    ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        choice = _object(choice.get("function")).get("name")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    response_format = _object(body.get("response_format"))
    fmt = response_format.get("type")
    schema = _object(response_format.get("json_schema")).get("schema")
    turns = turns_of(body.get("messages") or [], drop_system=state.quirk("drop-system"))
    reply = plan_reply(
        str(body.get("model")),
        turns,
        tools=tools or None,
        tool_choice=choice if isinstance(choice, str) else None,
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        stop=None if state.quirk("ignore-stop") else stops,
        json_mode=fmt in ("json_object", "json_schema"),
        json_schema=schema if fmt == "json_schema" and isinstance(schema, dict) else None,
        answer=state.graded_answer(turns),
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


_SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority")
_REASONING_TOKENS = {"low": 16, "medium": 32, "high": 64}
REASONING_TOKENS = 16
"""What a reasoning model of the mock reports in ``completion_tokens_details.reasoning_tokens``
when asked for no particular effort (more for ``medium`` and ``high``)."""


def _served_tier(body: dict[str, Any]) -> str:
    tier = body.get("service_tier")
    return tier if tier in ("flex", "priority") else "default"


def _reasoning_model(model: str) -> bool:
    return _REASONING.search(model) is not None and "-chat" not in model


def _usage(reply: Reply, n: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
    effort = (body or {}).get("reasoning_effort")
    thinks = (
        body is not None
        and effort != "none"
        and (_reasoning_model(str(body.get("model"))) or effort in _REASONING_TOKENS)
    )
    per_choice = (
        _REASONING_TOKENS.get(effort, REASONING_TOKENS) if isinstance(effort, str) else REASONING_TOKENS
    )
    reasoning = per_choice * n if thinks else 0
    completion = reply.completion_tokens * n + reasoning
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": reply.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
    }


def _completion_id(body: dict[str, Any]) -> str:
    return "chatcmpl-" + digest(body)[:29]


async def chat(request: Request) -> Response:
    state: MockState = request.app.state.mock
    body, early = await _admit(state, request)
    if early is not None or body is None:
        return early or error(state, 400)
    refused = _refusal(body)
    if refused is not None:
        status, data = refused
        e = data["error"]
        return error(state, status, e["message"], e["param"], code=e["code"], etype=e["type"])
    if body.get("stream"):
        reply = _plan(state, body)
        n = body.get("n") or 1
        return StreamingResponse(_stream(state, body, reply, n), media_type="text/event-stream")
    await state.delay()
    data = _completion(state, body)
    if state.quirk("error-as-200"):
        data = {"error": {"message": "Mock error reported with status 200.", "type": "server_error"}}
    return Response(orjson.dumps(data), media_type="application/json")


def completion(state: MockState, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """What ``POST /v1/chat/completions`` answers a non-streaming ``body``: (status, JSON body).

    The batch API runs each line through this, so a line fails exactly as the request would.
    """
    refused = _refusal(body)
    return refused if refused is not None else (200, _completion(state, body))


def _refusal(body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """The 400 or 404 OpenAI answers this chat body with, if any."""
    if (
        not isinstance(body.get("model"), str)
        or not isinstance(body.get("messages"), list)
        or not body["messages"]
    ):
        return 400, error_body(400, "'model' and a non-empty 'messages' array are required.", "messages")
    if unknown_model(body["model"]):
        missing = f"The model `{body['model']}` does not exist or you do not have access to it."
        return 404, error_body(404, missing, "model")
    try:
        _check_chat(body)
    except _Invalid as exc:
        return 400, exc.body()
    return None


def _completion(state: MockState, body: dict[str, Any]) -> dict[str, Any]:
    """The chat completion for a valid, non-streaming body."""
    reply = _plan(state, body)
    n = body.get("n") or 1
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text if reply.pieces else None,
        "refusal": None,
    }
    if reply.tool_calls:
        message["tool_calls"] = _tool_call_json(state, reply)
    return {
        "id": _completion_id(body),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {"index": i, "message": message, "logprobs": None, "finish_reason": reply.finish}
            for i in range(n)
        ],
        "usage": _usage(reply, n, body),
        "service_tier": _served_tier(body),
        "system_fingerprint": "fp_hedge_mock",
    }


_REASONING = re.compile(r"(?:^|/)(?:o\d+(?:-|$)|gpt-5)")
_NOT_OPENAI = ("top_k", "thinking")
"""Parameters other servers take but OpenAI's own API refuses ("Unrecognized request argument")."""


def _check_chat(body: dict[str, Any]) -> None:
    """Raise :class:`_Invalid` for the first parameter OpenAI would reject, as OpenAI words it."""
    for extra in _NOT_OPENAI:
        if extra in body:
            raise _Invalid(f"Unrecognized request argument supplied: {extra}", None)
    if body.get("max_tokens") is not None and _reasoning_model(str(body.get("model"))):
        # What OpenAI's reasoning models (o-series, gpt-5) answer to max_tokens.
        raise _Invalid(
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        )
    _integer("max_tokens", body.get("max_tokens"), 1)
    _integer("max_completion_tokens", body.get("max_completion_tokens"), 1)
    _integer("n", body.get("n"), 1, MAX_N)
    _decimal("temperature", body.get("temperature"), 0, 2)
    for i, message in enumerate(body["messages"]):
        if not isinstance(message, dict):
            raise _type_error(f"messages[{i}]", "an object", message)
        content = message.get("content")
        if isinstance(content, str):
            _string_max(f"messages[{i}].content", content, MAX_CONTENT_CHARS)
        _check_tool_ids(message, i)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str):
        if not isinstance(stop, list):
            raise _type_error("stop", "a string or an array of strings", stop)
        _array_max("stop", stop, MAX_STOP)
        for i, item in enumerate(stop):
            if not isinstance(item, str):
                raise _type_error(f"stop[{i}]", "a string", item)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _type_error("tools", "an array", tools)
        _array_max("tools", tools, MAX_TOOLS)
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict):
                raise _type_error(f"tools[{i}].function", "an object", function)
            name = function.get("name")
            if not isinstance(name, str):
                raise _type_error(f"tools[{i}].function.name", "a string", name)
            _string_max(f"tools[{i}].function.name", name, MAX_FUNCTION_NAME)
    fmt = body.get("response_format")
    if fmt is not None and not isinstance(fmt, dict):
        raise _type_error("response_format", "an object", fmt)
    tier = body.get("service_tier")
    if tier is not None and tier not in _SERVICE_TIERS:
        raise _Invalid(
            f"Invalid value for 'service_tier': expected one of {', '.join(_SERVICE_TIERS)}.", "service_tier"
        )


def _check_tool_ids(message: dict[str, Any], i: int) -> None:
    """OpenAI refuses tool call ids (and the ``tool_call_id`` answering one) over 40 characters."""
    answered = message.get("tool_call_id")
    if isinstance(answered, str):
        _string_max(f"messages[{i}].tool_call_id", answered, MAX_TOOL_CALL_ID)
    calls = message.get("tool_calls")
    for k, call in enumerate(calls if isinstance(calls, list) else ()):
        call_id = call.get("id") if isinstance(call, dict) else None
        if isinstance(call_id, str):
            _string_max(f"messages[{i}].tool_calls[{k}].id", call_id, MAX_TOOL_CALL_ID)


async def _stream(state: MockState, body: dict[str, Any], reply: Reply, n: int) -> AsyncIterator[bytes]:
    state.stats.streams_started += 1
    completed = False
    include_usage = bool(_object(body.get("stream_options")).get("include_usage")) and not state.quirk(
        "no-stream-usage"
    )
    base = {
        "id": _completion_id(body),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
        "service_tier": _served_tier(body),
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
            yield frame({**base, "choices": [], "usage": _usage(reply, n, body)})
        yield DONE
        completed = True
    finally:
        if completed:
            state.stats.streams_completed += 1
        else:
            state.stats.streams_cancelled += 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _embedding_inputs(raw: Any) -> list[str | list[int]]:
    """The inputs of an embeddings request (texts or token arrays), as OpenAI accepts them."""
    if isinstance(raw, str):
        inputs: list[Any] = [raw]
    elif isinstance(raw, list) and raw and all(_is_int(t) for t in raw):
        inputs = [raw]  # one token array
    elif isinstance(raw, list) and raw:
        inputs = raw
    else:
        raise _Invalid(_INVALID_INPUT, None)
    for item in inputs:
        text = isinstance(item, str) and item != ""
        tokens = isinstance(item, list) and len(item) > 0 and all(_is_int(t) for t in item)
        if not (text or tokens):
            raise _Invalid(_INVALID_INPUT, None)
    _array_max("input", inputs, MAX_EMBEDDING_INPUTS)
    return inputs


def _dimensions(model: str, value: Any) -> int:
    if value is None:
        return DEFAULT_DIMENSIONS
    if model in EMBEDDING_DIMENSIONS and EMBEDDING_DIMENSIONS[model] is None:
        raise _Invalid("This model does not support specifying dimensions.", None)
    dims = _integer("dimensions", value, 1, EMBEDDING_DIMENSIONS.get(model) or MAX_DIMENSIONS)
    assert dims is not None
    return dims


async def embeddings(request: Request) -> Response:
    state: MockState = request.app.state.mock
    body, early = await _admit(state, request)
    if early is not None or body is None:
        return early or error(state, 400)
    if body.get("input") is None or not isinstance(body.get("model"), str):
        return error(state, 400, "'model' and 'input' are required.", "input")
    try:
        inputs = _embedding_inputs(body["input"])
        dims = _dimensions(body["model"], body.get("dimensions"))
        counts = [count_tokens(item) if isinstance(item, str) else len(item) for item in inputs]
        for i, count in enumerate(counts):
            if count > MAX_INPUT_TOKENS:
                raise _Invalid(
                    f"Invalid 'input[{i}]': maximum input length is {MAX_INPUT_TOKENS} tokens.", "input"
                )
        if sum(counts) > MAX_REQUEST_TOKENS:
            kind = "max_tokens_per_request"
            message = f"Requested {sum(counts)} tokens, max {MAX_REQUEST_TOKENS} tokens per request"
            raise _Invalid(message, None, kind, kind)
    except _Invalid as exc:
        return exc.response(state)
    await state.delay()
    usage = {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}
    parts = _embedding_body(inputs, dims, body.get("encoding_format") == "base64", body["model"], usage)
    if len(inputs) * dims <= _INLINE_FLOATS:
        return Response(b"".join(parts), media_type="application/json")
    return StreamingResponse(_batched(parts), media_type="application/json")


def _embedding_body(
    inputs: list[str | list[int]], dims: int, as_base64: bool, model: str, usage: dict[str, int]
) -> Iterator[bytes]:
    """The embeddings answer as pieces of JSON, one vector each: never all the numbers at once."""
    yield b'{"object":"list","data":['
    for i, item in enumerate(inputs):
        vec = embedding_vector(item if isinstance(item, str) else " ".join(map(str, item)), dims)
        emb: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if as_base64 else vec
        yield (b"," if i else b"") + orjson.dumps({"object": "embedding", "index": i, "embedding": emb})
    yield b'],"model":' + orjson.dumps(model) + b',"usage":' + orjson.dumps(usage) + b"}"


async def _batched(parts: Iterator[bytes], size: int = 1 << 20) -> AsyncIterator[bytes]:
    """``parts`` regrouped into writes of about ``size`` bytes (the loop is free between them)."""
    buffer: list[bytes] = []
    held = 0
    for part in parts:
        buffer.append(part)
        held += len(part)
        if held >= size:
            yield b"".join(buffer)
            buffer, held = [], 0
    if buffer:
        yield b"".join(buffer)


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
