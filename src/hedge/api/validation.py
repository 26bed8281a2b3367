"""Checks on client bodies, so bad input gets a clear 400 naming the parameter.

Only the parameters the gateway itself relies on, or whose type OpenAI fixes,
are checked; anything else is passed through untouched to OpenAI-style
upstreams. Hand-written rather than a pydantic model because the body must
stay the client's dict (unknown keys preserved) and this runs on every request.
"""

from __future__ import annotations

from typing import Any

import orjson

from hedge.errors import InvalidRequest

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_TOOL_CHOICES = {"none", "auto", "required"}
_FORMATS = {"text", "json_object", "json_schema"}
MAX_CACHE_TTL_S = 86400


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
    return data


def _type_error(param: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)}.",
        param=param,
        code="invalid_type",
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _missing(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _int(body: dict[str, Any], key: str, minimum: int, maximum: int | None = None) -> None:
    value = body.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(key, "an integer", value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise InvalidRequest(
            f"Invalid value for '{key}': {value}; it must be {bound}.", param=key, code="invalid_value"
        )


def _number(body: dict[str, Any], key: str, minimum: float, maximum: float) -> None:
    value = body.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(key, "a number", value)
    if not minimum <= value <= maximum:
        raise InvalidRequest(
            f"Invalid value for '{key}': {value}; it must be between {minimum:g} and {maximum:g}.",
            param=key,
            code="invalid_value",
        )


def _object(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise _type_error(key, "an object", value)
    return value


def model_of(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise _missing("model")
    if not isinstance(model, str) or not model:
        raise _type_error("model", "a non-empty string", model)
    return model


def validate_chat(body: dict[str, Any]) -> None:
    model_of(body)
    messages = body.get("messages")
    if messages is None:
        raise _missing("messages")
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

    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _type_error("stream", "a boolean", stream)
    if _object(body, "stream_options") is not None and not stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    _int(body, "max_tokens", 1)
    _int(body, "max_completion_tokens", 1)
    _int(body, "n", 1, 128)
    _int(body, "top_logprobs", 0, 20)
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "presence_penalty", -2, 2)
    _number(body, "frequency_penalty", -2, 2)
    _validate_stop(body.get("stop"))
    _validate_tools(body)
    fmt = _object(body, "response_format")
    if fmt is not None and fmt.get("type") not in _FORMATS:
        raise InvalidRequest(
            f"Invalid value for 'response_format.type': {fmt.get('type')!r}; "
            f"expected one of {', '.join(sorted(_FORMATS))}.",
            param="response_format.type",
            code="invalid_value",
        )
    validate_hedge_options(body)


def validate_hedge_options(body: dict[str, Any]) -> None:
    """The ``hedge`` body extension: the gateway's own per-request options."""
    options = _object(body, "hedge")
    if options is None:
        return
    policy = options.get("on_unsupported")
    if policy is not None and policy not in ("drop", "reject"):
        raise InvalidRequest(
            f"Invalid value for 'hedge.on_unsupported': {policy!r}; expected 'drop' or 'reject'.",
            param="hedge.on_unsupported",
            code="invalid_value",
        )
    for key in ("order", "only", "ignore"):
        names = options.get(key)
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise _type_error(f"hedge.{key}", "an array of provider names or provider/model ids", names)
    if options.get("allow_fallbacks") is not None and not isinstance(options["allow_fallbacks"], bool):
        raise _type_error("hedge.allow_fallbacks", "a boolean", options["allow_fallbacks"])
    sort = options.get("sort")
    if sort is not None and sort not in ("price", "latency"):
        raise InvalidRequest(
            f"Invalid value for 'hedge.sort': {sort!r}; expected 'price' or 'latency'.",
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
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise _type_error(where, "an object", message)
    role = message.get("role")
    if role is None:
        raise _missing(f"{where}.role")
    if role not in _ROLES:
        raise InvalidRequest(
            f"Invalid value for '{where}.role': {role!r}; expected one of {', '.join(sorted(_ROLES))}.",
            param=f"{where}.role",
            code="invalid_value",
        )
    content = message.get("content")
    if content is not None and not isinstance(content, str | list):
        raise _type_error(f"{where}.content", "a string or an array of content parts", content)
    if isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise InvalidRequest(
                    f"Invalid '{where}.content[{j}]': expected an object with a 'type'.",
                    param=f"{where}.content[{j}]",
                    code="invalid_type",
                )
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise _type_error(f"{where}.content[{j}].text", "a string", part.get("text"))
    if content is None and role in ("system", "developer", "user", "tool"):
        raise _missing(f"{where}.content")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise _missing(f"{where}.tool_call_id")
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise _type_error(f"{where}.tool_calls", "an array", calls)


def _validate_stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _type_error("stop", "a string or an array of strings", stop)
    if len(stop) > 4:
        raise InvalidRequest(
            f"Invalid 'stop': array too long. Expected at most 4 sequences, got {len(stop)}.",
            param="stop",
            code="array_above_max_length",
        )


def _validate_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _type_error("tools", "an array", tools)
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise _missing(f"tools[{i}].function.name")
    choice = body.get("tool_choice")
    if choice is None or isinstance(choice, dict):
        return
    if choice not in _TOOL_CHOICES:
        raise InvalidRequest(
            f"Invalid value for 'tool_choice': {choice!r}; expected none, auto, required or an object.",
            param="tool_choice",
            code="invalid_value",
        )


def validate_embeddings(body: dict[str, Any]) -> None:
    model_of(body)
    value = body.get("input")
    if value is None:
        raise _missing("input")
    ok = isinstance(value, str) or (
        isinstance(value, list)
        and bool(value)
        and (
            all(isinstance(v, str) for v in value)
            or all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or all(isinstance(v, list) for v in value)
        )
    )
    if not ok:
        raise _type_error("input", "a string or a non-empty array of strings or token arrays", value)
    validate_hedge_options(body)
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise InvalidRequest(
            f"Invalid value for 'encoding_format': {fmt!r}; expected 'float' or 'base64'.",
            param="encoding_format",
            code="invalid_value",
        )
    _int(body, "dimensions", 1)
