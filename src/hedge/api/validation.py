"""Checks on client bodies, so bad input gets a clear 400 naming the parameter, never a 500.

Every field the gateway itself reads (here, in the adapters' request translation,
in routing's ``RouteContext`` and in the body extension ``hedge``) is checked for
its JSON type before anything reads it, so no adapter ever meets, say, a ``role``
that is an array; fields whose type OpenAI fixes are checked too, so every style
of provider refuses the same bodies. Anything else is passed through untouched to
OpenAI-style upstreams. Hand-written rather than a pydantic model because the body
must stay the client's dict (unknown keys preserved) and this runs on every
request: an ordinary body costs a few microseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from hedge.errors import InvalidRequest, invalid_type, missing_parameter

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_TOOL_CHOICES = {"none", "auto", "required"}
_FORMATS = {"text", "json_object", "json_schema"}
MAX_CACHE_TTL_S = 86400
_EMPTY: dict[str, Any] = {}
MAX_JSON_DEPTH = 128
"""Deepest nesting accepted in a body (the top-level object is level 1). Far above any real request
(a tool schema rarely passes 10), and far enough below what orjson can write (254 levels) that the
adapters' own wrapping of a client's values never reaches that limit."""


def _write_limit() -> int:
    """The deepest nesting ``orjson.dumps`` writes, found once rather than assumed from one version."""
    value: list[Any] = []
    depth = 1
    while True:
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError:
            return depth - 1
        value, depth = [value], depth + 1


_WRITE_LIMIT = _write_limit()


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"We could not parse the JSON body of your request: {exc}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    # Each level takes two brackets, so a short body, or one with few brackets, cannot be deep: the
    # common case costs a length check or two byte counts, and only a body with many containers is
    # measured.
    if (
        len(raw) > 2 * MAX_JSON_DEPTH
        and raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH
        and too_deep(data, MAX_JSON_DEPTH)
    ):
        raise InvalidRequest(
            f"The JSON body of your request is nested too deeply: at most {MAX_JSON_DEPTH} levels "
            "of objects and arrays are accepted.",
            code="invalid_json",
        )
    return data


def too_deep(data: Any, limit: int) -> bool:
    """Whether ``data`` nests objects and arrays more than ``limit`` levels (``data`` itself is level 1).

    Measured by orjson itself, which refuses to write more than ``_WRITE_LIMIT`` levels: ``data``
    wrapped in ``_WRITE_LIMIT - limit`` lists is writable exactly when it is at most ``limit`` deep.
    Writing walks the body in C, several times faster than a walk in Python (a 10 kB body with a few
    hundred containers: about 10 us instead of 60), and never recurses on the Python stack.
    """
    if not isinstance(data, dict | list):
        return False
    wrapped: Any = data
    for _ in range(_WRITE_LIMIT - limit):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        return True
    return False


def _type_error(param: str, expected: str, value: Any) -> InvalidRequest:
    return invalid_type(param, expected, value)


def _show(value: Any) -> str:
    """A value for an error message: JSON, and short, whatever the client sent."""
    text = orjson.dumps(value).decode() if value is not None else "null"
    return text if len(text) <= 60 else text[:57] + "..."


def _one_of(param: str, value: Any, allowed: set[str]) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid value for '{param}': {_show(value)}; expected one of {', '.join(sorted(allowed))}.",
        param=param,
        code="invalid_value",
    )


def _int(body: dict[str, Any], key: str, minimum: int, maximum: int | None = None, where: str = "") -> None:
    value = body.get(key)
    if value is None:
        return
    param = where + key
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(param, "an integer", value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise InvalidRequest(
            f"Invalid value for '{param}': {value}; it must be {bound}.", param=param, code="invalid_value"
        )


def _number(body: dict[str, Any], key: str, minimum: float, maximum: float) -> None:
    value = body.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(key, "a number", value)
    if not minimum <= value <= maximum:
        raise InvalidRequest(
            f"Invalid value for '{key}': {_show(value)}; it must be between {minimum:g} and {maximum:g}.",
            param=key,
            code="invalid_value",
        )


def _object(body: dict[str, Any], key: str, where: str = "") -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise _type_error(where + key, "an object", value)
    return value


def _string(body: dict[str, Any], key: str, where: str = "", required: bool = False) -> None:
    value = body.get(key)
    if value is None:
        if required:
            raise missing_parameter(where + key)
    elif not isinstance(value, str):
        raise _type_error(where + key, "a string", value)


def _bool(body: dict[str, Any], key: str, where: str = "") -> None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise _type_error(where + key, "a boolean", value)


def model_of(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise missing_parameter("model")
    if not isinstance(model, str) or not model:
        raise _type_error("model", "a non-empty string", model)
    return model


def validate_chat(body: dict[str, Any], *, stop_limit: int | None = 4) -> None:
    """Check a chat body as OpenAI does; ``stop_limit`` None leaves the number of stop sequences to
    each deployment's capability check (a face whose API allows more than OpenAI's 4)."""
    model_of(body)
    messages = body.get("messages")
    if messages is None:
        raise missing_parameter("messages")
    if not isinstance(messages, list):
        raise _type_error("messages", "an array", messages)
    if not messages:
        raise InvalidRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param="messages",
            code="empty_array",
        )
    for i, message in enumerate(messages):
        _validate_message(i, message)

    # Only the fields present are checked, in the body's order: most bodies carry few of them.
    for key in body:
        check = _CHAT_FIELDS.get(key)
        if key == "stop":
            _validate_stop(body, stop_limit)
        elif check is not None:
            check(body)


def _validate_stream(body: dict[str, Any]) -> None:
    _bool(body, "stream")


def _validate_stream_options(body: dict[str, Any]) -> None:
    options = _object(body, "stream_options")
    if options is None:
        return
    if not body.get("stream"):
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    _bool(options, "include_usage", "stream_options.")


def _validate_logit_bias(body: dict[str, Any]) -> None:
    _object(body, "logit_bias")


def _validate_metadata(body: dict[str, Any]) -> None:
    """``metadata.tags`` routes the request (a comma-separated string or an array of strings)."""
    meta = _object(body, "metadata")
    if meta is None:
        return
    tags = meta.get("tags")
    if tags is None or isinstance(tags, str):
        return
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _type_error("metadata.tags", "a string or an array of strings", tags)


def validate_hedge_options(body: dict[str, Any]) -> None:
    """The ``hedge`` body extension: the gateway's own per-request options."""
    options = _object(body, "hedge")
    if options is None:
        return
    policy = options.get("on_unsupported")
    if policy is not None and policy not in ("drop", "reject"):
        raise InvalidRequest(
            f"Invalid value for 'hedge.on_unsupported': {_show(policy)}; expected 'drop' or 'reject'.",
            param="hedge.on_unsupported",
            code="invalid_value",
        )
    for key in ("order", "only", "ignore"):
        names = options.get(key)
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise _type_error(f"hedge.{key}", "an array of provider names or provider/model ids", names)
    _bool(options, "allow_fallbacks", "hedge.")
    sort = options.get("sort")
    if sort is not None and sort not in ("price", "latency"):
        raise InvalidRequest(
            f"Invalid value for 'hedge.sort': {_show(sort)}; expected 'price' or 'latency'.",
            param="hedge.sort",
            code="invalid_value",
        )
    cache = options.get("cache")
    if cache is not None and not isinstance(cache, bool | int | float):
        raise _type_error("hedge.cache", "true, false or a TTL in seconds", cache)
    if not isinstance(cache, bool) and isinstance(cache, int | float) and not 0 < cache <= MAX_CACHE_TTL_S:
        raise InvalidRequest(
            f"Invalid value for 'hedge.cache': {cache}; a TTL must be within (0, {MAX_CACHE_TTL_S}] s.",
            param="hedge.cache",
            code="invalid_value",
        )
    max_price = options.get("max_price")
    if max_price is not None:
        if not isinstance(max_price, dict):
            raise _type_error("hedge.max_price", "an object with input and output prices", max_price)
        for key in ("input", "output"):
            value = max_price.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise _type_error(f"hedge.max_price.{key}", "a number (USD per million tokens)", value)


def _validate_message(i: int, message: Any) -> None:
    """One message. Paths for errors are built only when raising: this runs for every message."""
    if not isinstance(message, dict):
        raise _type_error(f"messages[{i}]", "an object", message)
    role = message.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        where = f"messages[{i}].role"
        if role is None:
            raise missing_parameter(where)
        if not isinstance(role, str):
            raise _type_error(where, "a string", role)
        raise _one_of(where, role, _ROLES)
    content = message.get("content")
    if isinstance(content, list):
        for j, part in enumerate(content):
            _validate_part(i, j, part)
    elif content is None:
        if role in ("system", "developer", "user", "tool"):
            raise missing_parameter(f"messages[{i}].content")
    elif not isinstance(content, str):
        raise _type_error(f"messages[{i}].content", "a string or an array of content parts", content)
    if len(message) == 2 and "content" in message:
        return  # role and content, nothing else: the common case
    name = message.get("name")
    if name is not None and not isinstance(name, str):
        raise _type_error(f"messages[{i}].name", "a string", name)
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        _string(message, "tool_call_id", f"messages[{i}].", required=True)
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise _type_error(f"messages[{i}].tool_calls", "an array", calls)
        for k, call in enumerate(calls):
            if not isinstance(call, dict):
                raise _type_error(f"messages[{i}].tool_calls[{k}]", "an object", call)
            call_id, kind, function = call.get("id"), call.get("type"), call.get("function")
            if not (call_id is None or isinstance(call_id, str)) or not (
                kind is None or isinstance(kind, str)
            ):
                _string(call, "id", f"messages[{i}].tool_calls[{k}].")
                _string(call, "type", f"messages[{i}].tool_calls[{k}].")
            if function is not None:
                _validate_function_call(function, i, f"tool_calls[{k}].function")
            elif kind in (None, "function"):
                raise missing_parameter(f"messages[{i}].tool_calls[{k}].function")
    legacy = message.get("function_call")
    if legacy is not None:
        _validate_function_call(legacy, i, "function_call")


def _validate_function_call(function: Any, i: int, field: str) -> None:
    """A call the assistant made: a name and its arguments (OpenAI's JSON string, or the object itself)."""
    if not isinstance(function, dict):
        raise _type_error(f"messages[{i}].{field}", "an object", function)
    name, arguments = function.get("name"), function.get("arguments")
    if name is not None and not isinstance(name, str):
        raise _type_error(f"messages[{i}].{field}.name", "a string", name)
    if arguments is not None and not isinstance(arguments, str | dict):
        raise _type_error(f"messages[{i}].{field}.arguments", "a string", arguments)


_PART_TEXT = {"text": "text", "input_text": "text", "refusal": "refusal"}
"""Content part types carrying one string, and its field."""
_PART_OBJECT: dict[str, tuple[tuple[str, bool], ...]] = {
    "image_url": (("url", True), ("detail", False)),
    "input_audio": (("data", True), ("format", False)),
    "file": (("file_data", False), ("file_id", False), ("filename", False)),
}
"""Content part types carrying an object under their own name: its string fields, and which are required.
Other types are passed through (the adapters refuse those they cannot translate)."""


def _validate_part(i: int, j: int, part: Any) -> None:
    if isinstance(part, dict):
        kind = part.get("type")
        text = _PART_TEXT.get(kind) if isinstance(kind, str) else None
        if text is not None and isinstance(part.get(text), str):
            return  # the common case
        if kind == "image_url":
            image = part.get("image_url")
            if isinstance(image, dict) and isinstance(image.get("url"), str) and len(image) == 1:
                return  # the next most common
    where = f"messages[{i}].content[{j}]"
    if not isinstance(part, dict):
        raise _type_error(where, "an object", part)
    if kind is None:
        raise missing_parameter(f"{where}.type")
    if not isinstance(kind, str):
        raise _type_error(f"{where}.type", "a string", kind)
    if text is not None:
        _string(part, text, f"{where}.", required=True)
        return
    fields = _PART_OBJECT.get(kind)
    if fields is None:
        return
    value = _object(part, kind, f"{where}.")
    if value is None:
        raise missing_parameter(f"{where}.{kind}")
    for name, required in fields:
        _string(value, name, f"{where}.{kind}.", required)


def _validate_stop(body: dict[str, Any], limit: int | None = 4) -> None:
    stop = body.get("stop")
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _type_error("stop", "a string or an array of strings", stop)
    if limit is not None and len(stop) > limit:
        raise InvalidRequest(
            f"Invalid 'stop': array too long. Expected at most {limit} sequences, got {len(stop)}.",
            param="stop",
            code="array_above_max_length",
        )


def _validate_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _type_error("tools", "an array", tools)
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if (
            isinstance(fn, dict)
            and isinstance(fn.get("name"), str)
            and isinstance(tool.get("type", ""), str)
            and isinstance(fn.get("description", ""), str)
            and isinstance(fn.get("parameters", _EMPTY), dict)
            and isinstance(fn.get("strict", False), bool | None)
        ):
            continue  # well-formed: say nothing, build nothing
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _type_error(where, "an object", tool)
        _string(tool, "type", f"{where}.")
        fn = _object(tool, "function", f"{where}.")
        if fn is None or fn.get("name") is None:
            raise missing_parameter(f"{where}.function.name")
        _string(fn, "name", f"{where}.function.")
        _string(fn, "description", f"{where}.function.")
        _object(fn, "parameters", f"{where}.function.")
        _bool(fn, "strict", f"{where}.function.")


def _validate_tool_choice(body: dict[str, Any]) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICES:
            raise InvalidRequest(
                f"Invalid value for 'tool_choice': {_show(choice)}; "
                "expected none, auto, required or an object.",
                param="tool_choice",
                code="invalid_value",
            )
        return
    if not isinstance(choice, dict):
        raise _type_error("tool_choice", "a string or an object", choice)
    _string(choice, "type", "tool_choice.")
    fn = _object(choice, "function", "tool_choice.")
    if fn is None:
        if choice.get("type") == "function":
            raise missing_parameter("tool_choice.function")
        return
    _string(fn, "name", "tool_choice.function.", required=True)


def _validate_response_format(body: dict[str, Any]) -> None:
    fmt = _object(body, "response_format")
    if fmt is None:
        return
    kind = fmt.get("type")
    if kind is None:
        raise missing_parameter("response_format.type")
    if not isinstance(kind, str):
        raise _type_error("response_format.type", "a string", kind)
    if kind not in _FORMATS:
        raise _one_of("response_format.type", kind, _FORMATS)
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if spec is None:
            raise missing_parameter("response_format.json_schema")
        if not isinstance(spec, dict):
            raise _type_error("response_format.json_schema", "an object", spec)
        _string(spec, "name", "response_format.json_schema.")
        _string(spec, "description", "response_format.json_schema.")
        _object(spec, "schema", "response_format.json_schema.")
        _bool(spec, "strict", "response_format.json_schema.")


_CHAT_FIELDS: dict[str, Callable[[dict[str, Any]], None]] = {
    "stream": _validate_stream,
    "stream_options": _validate_stream_options,
    "max_tokens": lambda b: _int(b, "max_tokens", 1),
    "max_completion_tokens": lambda b: _int(b, "max_completion_tokens", 1),
    "n": lambda b: _int(b, "n", 1, 128),
    "top_logprobs": lambda b: _int(b, "top_logprobs", 0, 20),
    "seed": lambda b: _int(b, "seed", -(2**63), 2**63 - 1),
    "temperature": lambda b: _number(b, "temperature", 0, 2),
    "top_p": lambda b: _number(b, "top_p", 0, 1),
    "presence_penalty": lambda b: _number(b, "presence_penalty", -2, 2),
    "frequency_penalty": lambda b: _number(b, "frequency_penalty", -2, 2),
    "logprobs": lambda b: _bool(b, "logprobs"),
    "parallel_tool_calls": lambda b: _bool(b, "parallel_tool_calls"),
    "logit_bias": _validate_logit_bias,
    "user": lambda b: _string(b, "user"),
    "safety_identifier": lambda b: _string(b, "safety_identifier"),
    "stop": _validate_stop,
    "tools": _validate_tools,
    "tool_choice": _validate_tool_choice,
    "response_format": _validate_response_format,
    "metadata": _validate_metadata,
    "hedge": validate_hedge_options,
}
"""The checks of a chat body's fields, by name, besides ``model`` and ``messages``."""


def validate_embeddings(body: dict[str, Any]) -> None:
    model_of(body)
    value = body.get("input")
    if value is None:
        raise missing_parameter("input")
    ok = isinstance(value, str) or (
        isinstance(value, list)
        and bool(value)
        and (
            all(isinstance(v, str) for v in value)
            or all(_is_int(v) for v in value)
            or all(isinstance(v, list) and v and all(_is_int(t) for t in v) for v in value)
        )
    )
    if not ok:
        raise _type_error(
            "input", "a string or a non-empty array of strings or of token arrays (integers)", value
        )
    validate_hedge_options(body)
    fmt = body.get("encoding_format")
    if fmt is not None:
        if not isinstance(fmt, str):
            raise _type_error("encoding_format", "a string", fmt)
        if fmt not in ("float", "base64"):
            raise _one_of("encoding_format", fmt, {"float", "base64"})
    _int(body, "dimensions", 1)
    _string(body, "user")
    _validate_metadata(body)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
