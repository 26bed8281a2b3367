"""Inbound OpenAI Responses API: ``POST /v1/responses`` served by translating to chat completions.

A Responses request becomes an OpenAI chat body (:func:`to_chat`), so it is routed, failed over,
priced and recorded like any chat request and any provider style can serve it; the chat answer
becomes a Response object (:func:`to_response`), and a chat stream becomes the Responses event
sequence (:class:`ResponsesEvents`). Pure translation: no I/O. Conversation state
(``previous_response_id``) is the caller's business: the face loads the earlier response's
items and passes them in as ``previous``.

What is translated:

* ``input``: a string, or items: messages (``user``/``system``/``developer`` with ``input_text``,
  ``input_image`` given as ``image_url`` and ``input_file`` given as ``file_data``; ``assistant``
  with ``output_text`` and ``refusal``), ``function_call`` and ``function_call_output`` items;
  ``instructions`` become the first (system) message;
* function ``tools``, ``tool_choice`` (``auto``/``none``/``required``/one function),
  ``parallel_tool_calls``; ``text.format`` (``text``/``json_object``/``json_schema``) becomes
  ``response_format`` and ``text.verbosity`` becomes ``verbosity``; ``reasoning.effort`` becomes
  ``reasoning_effort``; ``max_output_tokens`` becomes ``max_completion_tokens``; ``temperature``,
  ``top_p``, ``user``, ``safety_identifier``, ``prompt_cache_key``, ``prompt_cache_retention``,
  ``service_tier`` pass as they are; ``include: ["message.output_text.logprobs"]`` (with
  ``top_logprobs``) asks for logprobs;
* ``metadata``, ``store``, ``previous_response_id``, ``max_tool_calls`` and ``truncation:
  "disabled"`` are kept on the response and not sent; ``stream_options``, ``prompt_cache_options``,
  ``image`` and the other ``include`` values (they concern hosted tools or reasoning items, which
  this translation never produces) are accepted and have no effect.

What is refused, with a 400 naming the parameter (never silently dropped): hosted tools
(``web_search``, ``file_search``, ``computer_use_preview``, ``code_interpreter``, ``mcp``,
``image_generation``, custom tools ...), ``tool_choice`` other than functions, ``file_id`` and
``file_url`` inputs (there is no Files API behind the gateway), ``item_reference`` and
``reasoning`` input items, ``truncation: "auto"`` (the gateway does not know the serving
model's context window, so it cannot drop the oldest items honestly), ``background``,
``conversation``, ``prompt``, ``context_management``, ``moderation``, and every unknown
parameter (as OpenAI does).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from hedge.errors import InvalidRequest, invalid_type, missing_parameter
from hedge.providers.sse import frame_event
from hedge.wire.sse import chunks

IdMaker = Callable[[str], str]


def new_id(prefix: str) -> str:
    """An OpenAI-style object id: ``resp_...``, ``msg_...``, ``fc_...``."""
    return f"{prefix}_{os.urandom(24).hex()}"


# -- validation -----------------------------------------------------------------------------------------

_PASS_THROUGH = ("user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "service_tier")
"""String parameters chat completions has under the same name: sent as they are."""
_KEPT = ("metadata", "store", "previous_response_id", "max_tool_calls", "truncation")
_IGNORED = ("stream_options", "prompt_cache_options", "image")
_REFUSED = {
    "conversation": "the Conversations API is not served by this gateway; use previous_response_id",
    "prompt": "stored prompt templates live at OpenAI; send the instructions and input instead",
    "context_management": "server-side compaction is not available when translating to chat completions",
    "moderation": "moderated responses are not available when translating to chat completions",
    "access_programs": "access programs are OpenAI account features",
    "background_options": "background responses are not supported",
}
_HANDLED = {
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "reasoning",
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_logprobs",
    "include",
    "stream",
    "background",
    "hedge",
}
KNOWN_PARAMS = frozenset({*_HANDLED, *_PASS_THROUGH, *_KEPT, *_IGNORED, *_REFUSED})

_INCLUDABLE = {
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
}
LOGPROBS = "message.output_text.logprobs"
MIN_OUTPUT_TOKENS = 16
"""OpenAI's lower bound for ``max_output_tokens``."""


def _wrong_type(param: str, expected: str, value: Any) -> InvalidRequest:
    return invalid_type(param, expected, value, instead=True)


def _bad_value(param: str, value: Any, allowed: Sequence[str]) -> InvalidRequest:
    listed = ", ".join(f"'{a}'" for a in allowed)
    return InvalidRequest(
        f"Invalid value: {value!r}. Supported values are: {listed}.", param=param, code="invalid_value"
    )


def unsupported(param: str, why: str) -> InvalidRequest:
    """A parameter OpenAI knows but this gateway cannot honour."""
    return InvalidRequest(
        f"'{param}' is not supported by this gateway: {why}.", param=param, code="unsupported_parameter"
    )


def _get(obj: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...], expected: str) -> Any:
    """``obj[key]`` if absent, null or of the JSON type ``kind`` (booleans are never numbers)."""
    value = obj.get(key)
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise _wrong_type(where + key, expected, value)
    return value


def _string(obj: dict[str, Any], key: str, where: str = "", required: bool = False) -> str | None:
    value: str | None = _get(obj, key, where, str, "a string")
    if value is None and required:
        raise missing_parameter(where + key)
    return value


def _integer(body: dict[str, Any], key: str, minimum: int, maximum: int | None = None) -> int | None:
    value: int | None = _get(body, key, "", int, "an integer")
    if value is None:
        return None
    if value < minimum:
        raise InvalidRequest(
            f"Invalid '{key}': integer below minimum value. Expected a value >= {minimum}, but got {value} "
            "instead.",
            param=key,
            code="integer_below_min_value",
        )
    if maximum is not None and value > maximum:
        raise InvalidRequest(
            f"Invalid '{key}': integer above maximum value. Expected a value <= {maximum}, but got {value} "
            "instead.",
            param=key,
            code="integer_above_max_value",
        )
    return value


def validate_request(body: dict[str, Any]) -> None:
    """The top level of a Responses request: unknown and refused parameters, and the scalar types."""
    unknown = [k for k in body if k not in KNOWN_PARAMS]
    if unknown:
        raise InvalidRequest(
            f"Unknown parameter: '{unknown[0]}'.", param=unknown[0], code="unknown_parameter"
        )
    for name, why in _REFUSED.items():
        if body.get(name) is not None:
            raise unsupported(name, why)
    model = body.get("model")
    if model is None:
        raise missing_parameter("model")
    if not isinstance(model, str) or not model:
        raise _wrong_type("model", "a non-empty string", model)
    if _get(body, "background", "", bool, "a boolean"):
        raise unsupported("background", "responses are answered while the request is open")
    _string(body, "instructions")
    _get(body, "stream", "", bool, "a boolean")
    _get(body, "store", "", bool, "a boolean")
    _get(body, "parallel_tool_calls", "", bool, "a boolean")
    _string(body, "previous_response_id")
    for name in _PASS_THROUGH:
        _string(body, name)
    _integer(body, "max_output_tokens", MIN_OUTPUT_TOKENS)
    _integer(body, "max_tool_calls", 1)
    _integer(body, "top_logprobs", 0, 20)
    for name in ("temperature", "top_p"):
        _get(body, name, "", (int, float), "a number")
    truncation = body.get("truncation")
    if truncation == "auto":
        raise unsupported(
            "truncation",
            "'auto' would need the serving model's context window, which the gateway does not know; "
            "send truncation 'disabled' (the default) and trim the input yourself",
        )
    if truncation is not None and truncation != "disabled":
        raise _bad_value("truncation", truncation, ("auto", "disabled"))
    metadata = _get(body, "metadata", "", dict, "an object")
    if metadata is not None:
        if len(metadata) > 16:
            raise InvalidRequest(
                "Invalid 'metadata': too many properties. Expected an object with at most 16 properties.",
                param="metadata",
                code="object_above_max_properties",
            )
        for key, value in metadata.items():
            if len(key) > 64:
                raise InvalidRequest(
                    "Invalid 'metadata': keys must be at most 64 characters long.", param="metadata"
                )
            if not isinstance(value, str):
                raise _wrong_type(f"metadata.{key}", "a string", value)
            if len(value) > 512:
                raise InvalidRequest(
                    f"Invalid 'metadata.{key}': string too long. Expected a string with maximum length 512.",
                    param=f"metadata.{key}",
                    code="string_above_max_length",
                )
    include = _get(body, "include", "", list, "an array of strings")
    for i, value in enumerate(include or ()):
        if not isinstance(value, str):
            raise _wrong_type(f"include[{i}]", "a string", value)
        if value not in _INCLUDABLE:
            raise _bad_value(f"include[{i}]", value, sorted(_INCLUDABLE))
    _get(body, "stream_options", "", dict, "an object")
    _get(body, "hedge", "", dict, "an object")


# -- input items ----------------------------------------------------------------------------------------

_INPUT_ROLES = ("user", "assistant", "system", "developer")


def input_items(body: dict[str, Any], ids: IdMaker = new_id) -> list[dict[str, Any]]:
    """The request's ``input`` as a list of items in OpenAI's stored form (each with an ``id``).

    A string is one user message; each item is checked and given the fields OpenAI lists for it
    (``GET /v1/responses/{id}/input_items``), so these items can be stored, listed and sent again.
    """
    value = body.get("input")
    if value is None:
        raise missing_parameter("input")
    if isinstance(value, str):
        return [_message_item(ids, "user", [{"type": "input_text", "text": value}])]
    if not isinstance(value, list):
        raise _wrong_type("input", "a string or an array of input items", value)
    return [_input_item(item, f"input[{i}]", ids) for i, item in enumerate(value)]


def _message_item(
    ids: IdMaker, role: str, content: list[dict[str, Any]], item_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": item_id or ids("msg"),
        "type": "message",
        "role": role,
        "content": content,
        "status": "completed",
    }


def _input_item(item: Any, where: str, ids: IdMaker) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _wrong_type(where, "an object", item)
    kind = item.get("type")
    if kind is None and "role" in item:
        kind = "message"
    if not isinstance(kind, str):
        raise (
            missing_parameter(f"{where}.type")
            if kind is None
            else _wrong_type(f"{where}.type", "a string", kind)
        )
    if kind == "message":
        role = item.get("role")
        if role is None:
            raise missing_parameter(f"{where}.role")
        if role not in _INPUT_ROLES:
            raise _bad_value(f"{where}.role", role, _INPUT_ROLES)
        content = item.get("content")
        if content is None:
            raise missing_parameter(f"{where}.content")
        item_id = _string(item, "id", f"{where}.")
        if role == "assistant":
            parts = _assistant_parts(content, f"{where}.content")
        else:
            parts = _input_parts(content, f"{where}.content")
        return _message_item(ids, role, parts, item_id)
    if kind == "function_call":
        call_id = _string(item, "call_id", f"{where}.", required=True)
        name = _string(item, "name", f"{where}.", required=True)
        arguments = _string(item, "arguments", f"{where}.", required=True)
        return {
            "id": _string(item, "id", f"{where}.") or ids("fc"),
            "type": "function_call",
            "status": "completed",
            "call_id": call_id,
            "name": name,
            "arguments": arguments,
        }
    if kind == "function_call_output":
        call_id = _string(item, "call_id", f"{where}.", required=True)
        output = item.get("output")
        if output is None:
            raise missing_parameter(f"{where}.output")
        if isinstance(output, list):
            output = _input_parts(output, f"{where}.output")
        elif not isinstance(output, str):
            raise _wrong_type(f"{where}.output", "a string or an array of content parts", output)
        return {
            "id": _string(item, "id", f"{where}.") or ids("fco"),
            "type": "function_call_output",
            "status": "completed",
            "call_id": call_id,
            "output": output,
        }
    if kind == "item_reference":
        raise unsupported(
            f"{where}.type", "item references are not resolved; use previous_response_id or send the items"
        )
    if kind == "reasoning":
        raise unsupported(f"{where}.type", "reasoning items cannot be sent to chat completions")
    raise unsupported(
        f"{where}.type",
        f"input items of type {kind!r} are not translated (supported: message, function_call, "
        "function_call_output)",
    )


def _input_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    if not isinstance(content, list):
        raise _wrong_type(where, "a string or an array of content parts", content)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise _wrong_type(at, "an object", part)
        kind = part.get("type")
        if kind == "input_text":
            parts.append({"type": "input_text", "text": _string(part, "text", f"{at}.", required=True)})
        elif kind == "input_image":
            if part.get("file_id") is not None:
                raise unsupported(
                    f"{at}.file_id",
                    "there is no Files API behind the gateway; send the image as image_url "
                    "(an https: or data: URL)",
                )
            url = _string(part, "image_url", f"{at}.", required=True)
            detail = _string(part, "detail", f"{at}.") or "auto"
            parts.append({"type": "input_image", "image_url": url, "detail": detail})
        elif kind == "input_file":
            for field in ("file_id", "file_url"):
                if part.get(field) is not None:
                    raise unsupported(
                        f"{at}.{field}",
                        "there is no Files API behind the gateway; send the file inline as file_data "
                        "(a data: URL) with its filename",
                    )
            data = _string(part, "file_data", f"{at}.", required=True)
            out = {"type": "input_file", "file_data": data}
            filename = _string(part, "filename", f"{at}.")
            if filename is not None:
                out["filename"] = filename
            parts.append(out)
        elif kind is None:
            raise missing_parameter(f"{at}.type")
        else:
            raise _bad_value(f"{at}.type", kind, ("input_text", "input_image", "input_file"))
    return parts


def _assistant_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "output_text", "text": content, "annotations": []}]
    if not isinstance(content, list):
        raise _wrong_type(where, "a string or an array of content parts", content)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise _wrong_type(at, "an object", part)
        kind = part.get("type")
        if kind == "output_text":
            text = _string(part, "text", f"{at}.", required=True)
            parts.append({"type": "output_text", "text": text, "annotations": []})
        elif kind == "refusal":
            parts.append({"type": "refusal", "refusal": _string(part, "refusal", f"{at}.", required=True)})
        elif kind is None:
            raise missing_parameter(f"{at}.type")
        else:
            raise _bad_value(f"{at}.type", kind, ("output_text", "refusal"))
    return parts


def items_to_messages(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored-form items (see :func:`input_items`, and a response's ``output``) as chat messages.

    An assistant's message and the function calls right after it are one chat turn: one assistant
    message with ``tool_calls``; each function call output is a ``tool`` message.
    """
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            role = item["role"]
            if role == "assistant":
                text = "".join(
                    p.get("text", "") if p.get("type") == "output_text" else p.get("refusal", "")
                    for p in item["content"]
                )
                messages.append({"role": "assistant", "content": text})
            else:
                messages.append({"role": role, "content": _chat_content(item["content"], role)})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                if not last.get("content"):
                    last["content"] = None
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item["output"]
            if isinstance(output, list):
                if any(p["type"] != "input_text" for p in output):
                    raise unsupported(
                        "input",
                        "a function_call_output with images or files cannot be sent to chat completions "
                        "(tool results are text there)",
                    )
                output = "".join(p["text"] for p in output)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
    return messages


def _chat_content(parts: list[dict[str, Any]], role: str) -> str | list[dict[str, Any]]:
    if all(p["type"] == "input_text" for p in parts):
        return "".join(p["text"] for p in parts)
    if role != "user":
        raise unsupported("input", f"{role} messages can only hold text in chat completions")
    out: list[dict[str, Any]] = []
    for p in parts:
        if p["type"] == "input_text":
            out.append({"type": "text", "text": p["text"]})
        elif p["type"] == "input_image":
            out.append({"type": "image_url", "image_url": {"url": p["image_url"], "detail": p["detail"]}})
        else:
            file: dict[str, Any] = {"file_data": p["file_data"]}
            if "filename" in p:
                file["filename"] = p["filename"]
            out.append({"type": "file", "file": file})
    return out


# -- tools, formats and the chat body -------------------------------------------------------------------


def function_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's tools in the form a Response echoes them; anything but a function tool is a 400."""
    tools = _get(body, "tools", "", list, "an array")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools or ()):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _wrong_type(where, "an object", tool)
        kind = tool.get("type")
        if kind is None:
            raise missing_parameter(f"{where}.type")
        if kind != "function":
            raise unsupported(
                f"{where}.type",
                f"tools of type {kind!r} are hosted by OpenAI; only function tools are translated "
                "to chat completions",
            )
        name = _string(tool, "name", f"{where}.", required=True)
        description = _string(tool, "description", f"{where}.")
        parameters = _get(tool, "parameters", f"{where}.", dict, "an object")
        strict = _get(tool, "strict", f"{where}.", bool, "a boolean")
        extra = [k for k in tool if k not in ("type", "name", "description", "parameters", "strict")]
        if extra:
            raise unsupported(f"{where}.{extra[0]}", "chat completions function tools have no such field")
        out.append(
            {
                "type": "function",
                "name": name,
                "description": description,
                "parameters": parameters,
                "strict": strict,
            }
        )
    return out


def _chat_tool(tool: dict[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool["name"]}
    for key in ("description", "parameters", "strict"):
        if tool[key] is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, str):
        raise _bad_value("tool_choice", choice, ("auto", "none", "required"))
    if not isinstance(choice, dict):
        raise _wrong_type("tool_choice", "a string or an object", choice)
    kind = choice.get("type")
    if kind == "function":
        name = _string(choice, "name", "tool_choice.", required=True)
        return {"type": "function", "function": {"name": name}}
    raise unsupported(
        "tool_choice",
        f"tool_choice of type {kind!r} is not translated (use auto, none, required or a function)",
    )


def _response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    if text is None:
        return None
    fmt = _get(text, "format", "text.", dict, "an object")
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind is None:
        raise missing_parameter("text.format.type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        name = _string(fmt, "name", "text.format.", required=True)
        schema = _get(fmt, "schema", "text.format.", dict, "an object")
        if schema is None:
            raise missing_parameter("text.format.schema")
        spec: dict[str, Any] = {"name": name, "schema": schema}
        description = _string(fmt, "description", "text.format.")
        if description is not None:
            spec["description"] = description
        strict = _get(fmt, "strict", "text.format.", bool, "a boolean")
        if strict is not None:
            spec["strict"] = strict
        return {"type": "json_schema", "json_schema": spec}
    raise _bad_value("text.format.type", kind, ("text", "json_object", "json_schema"))


def to_chat(
    body: dict[str, Any], previous: Sequence[dict[str, Any]] = (), ids: IdMaker = new_id
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A Responses request as an OpenAI chat body, and its input items in stored form.

    ``previous`` are the items of the conversation so far (the earlier response's input and
    output items, when the request names a ``previous_response_id``): they come first. The
    earlier response's ``instructions`` are not carried over, as OpenAI documents.
    """
    validate_request(body)
    items = input_items(body, ids)
    tools = function_tools(body)
    choice = _tool_choice(body.get("tool_choice"))
    text = _get(body, "text", "", dict, "an object")
    response_format = _response_format(text)
    reasoning = _get(body, "reasoning", "", dict, "an object")

    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    messages += items_to_messages([*previous, *items])
    if not any(m["role"] != "system" for m in messages):
        raise InvalidRequest(
            "Invalid 'input': expected at least one message or item.", param="input", code="empty_array"
        )

    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    if tools:
        chat["tools"] = [_chat_tool(t) for t in tools]
    if choice is not None:
        chat["tool_choice"] = choice
    if body.get("parallel_tool_calls") is not None:
        chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    if response_format is not None:
        chat["response_format"] = response_format
    verbosity = _string(text, "verbosity", "text.") if text else None
    if verbosity is not None:
        chat["verbosity"] = verbosity
    effort = _string(reasoning, "effort", "reasoning.") if reasoning else None
    if effort is not None:
        chat["reasoning_effort"] = effort
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", *_PASS_THROUGH):
        if body.get(name) is not None:
            chat[name] = body[name]
    if LOGPROBS in (body.get("include") or ()):
        chat["logprobs"] = True
        if body.get("top_logprobs"):
            chat["top_logprobs"] = body["top_logprobs"]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    if body.get("hedge") is not None:
        chat["hedge"] = body["hedge"]
    return chat, items


# -- the Response object ---------------------------------------------------------------------------------


def usage(chat_usage: dict[str, Any] | None) -> dict[str, Any]:
    """A chat ``usage`` object in the Responses API's terms (Hedge's ``hedge_cost_usd`` kept)."""
    chat_usage = chat_usage or {}
    prompt = int(chat_usage.get("prompt_tokens") or 0)
    completion = int(chat_usage.get("completion_tokens") or 0)
    cached = int((chat_usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((chat_usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    out: dict[str, Any] = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": int(chat_usage.get("total_tokens") or prompt + completion),
    }
    for key in ("hedge_cost_usd", "hedge_usage_missing"):
        if key in chat_usage:
            out[key] = chat_usage[key]
    return out


def _status(finish: str | None) -> tuple[str, dict[str, Any] | None]:
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def response_object(
    body: dict[str, Any],
    *,
    response_id: str,
    created_at: int,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    incomplete_details: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    completed_at: int | None = None,
) -> dict[str, Any]:
    """A Response in OpenAI's shape: what happened, and the request's settings echoed."""
    reasoning = body.get("reasoning") or {}
    text = body.get("text") or {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": completed_at,
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": body.get("service_tier"),
        "store": body.get("store") is not False,
        "temperature": body.get("temperature"),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity")},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": function_tools(body),
        "top_logprobs": body.get("top_logprobs"),
        "top_p": body.get("top_p"),
        "truncation": body.get("truncation") or "disabled",
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _logprobs(choice: dict[str, Any]) -> list[dict[str, Any]]:
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return [entry for entry in content or () if isinstance(entry, dict)]


def output_items(
    message: dict[str, Any], status: str, logprobs: list[dict[str, Any]], ids: IdMaker = new_id
) -> list[dict[str, Any]]:
    """A chat assistant message as Response output items: a message, then one item per tool call."""
    items: list[dict[str, Any]] = []
    content, refusal, calls = message.get("content"), message.get("refusal"), message.get("tool_calls") or []
    item_status = "incomplete" if status == "incomplete" else "completed"
    if content or refusal or not calls:
        parts: list[dict[str, Any]] = []
        if content or not refusal:
            parts.append(
                {"type": "output_text", "text": content or "", "annotations": [], "logprobs": logprobs}
            )
        if refusal:
            parts.append({"type": "refusal", "refusal": refusal})
        items.append(
            {
                "id": ids("msg"),
                "type": "message",
                "status": item_status,
                "role": "assistant",
                "content": parts,
            }
        )
    for call in calls:
        fn = call.get("function") or {}
        items.append(
            {
                "id": ids("fc"),
                "type": "function_call",
                "status": item_status,
                "call_id": call.get("id") or ids("call"),
                "name": fn.get("name") or "",
                "arguments": arguments_text(fn.get("arguments")),
            }
        )
    return items


def arguments_text(value: Any) -> str:
    """A tool call's arguments as the Responses API types them, a string; an upstream that sent an
    object (a known chat-completions bug) gets it serialized rather than a crash mid-answer."""
    if isinstance(value, str):
        return value
    return "" if value is None else orjson.dumps(value).decode()


def to_response(
    completion: dict[str, Any],
    body: dict[str, Any],
    *,
    response_id: str,
    created_at: int,
    completed_at: int,
    ids: IdMaker = new_id,
) -> dict[str, Any]:
    """A chat completion, answering the Responses request ``body``, as a Response object."""
    choice = (completion.get("choices") or [{}])[0]
    status, incomplete = _status(choice.get("finish_reason"))
    output = output_items(choice.get("message") or {}, status, _logprobs(choice), ids)
    out = response_object(
        body,
        response_id=response_id,
        created_at=created_at,
        model=str(completion.get("model") or body["model"]),
        status=status,
        output=output,
        usage=usage(completion.get("usage")),
        incomplete_details=incomplete,
        completed_at=completed_at if status == "completed" else None,
    )
    if completion.get("service_tier"):
        out["service_tier"] = completion["service_tier"]
    return out


# -- streaming -------------------------------------------------------------------------------------------


class ResponsesEvents:
    """Turns OpenAI chat stream chunks into the Responses API's stream events, numbered in order.

    ``response.created`` and ``response.in_progress`` come with the first chunk; then each output
    item is added, streamed and done in turn (a message with one ``output_text`` part, or a
    function call); :meth:`finish` ends with ``response.completed`` (``response.incomplete`` when
    the answer was cut by ``max_output_tokens``), :meth:`fail` with ``response.failed``. Either way
    :attr:`response` is then the final Response object, as a retrieve would return it.
    """

    def __init__(
        self, body: dict[str, Any], *, response_id: str, created_at: int, ids: IdMaker = new_id
    ) -> None:
        self.body = body
        self.response_id = response_id
        self.created_at = created_at
        self.ids = ids
        self.model = str(body.get("model") or "")
        self.seq = 0
        self.started = False
        self.output: list[dict[str, Any]] = []
        self.open: list[int] = []
        """Output indexes of the items not yet done, in order."""
        self.message: int | None = None
        """Output index of the message item text is streaming into."""
        self.part: dict[str, Any] | None = None
        self.calls: dict[int, int] = {}
        """Chat tool call index -> output index."""
        self.finish_reason: str | None = None
        self.response: dict[str, Any] | None = None
        """The final Response, once :meth:`finish` or :meth:`fail` ran."""

    def _event(self, kind: str, **fields: Any) -> bytes:
        """One event, encoded now: items and parts keep growing after it is sent."""
        payload = {"type": kind, **fields, "sequence_number": self.seq}
        self.seq += 1
        return frame_event(kind, payload)

    def snapshot(self, status: str, **extra: Any) -> dict[str, Any]:
        return response_object(
            self.body,
            response_id=self.response_id,
            created_at=self.created_at,
            model=self.model,
            status=status,
            output=self.output,
            **extra,
        )

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        self.started = True
        if chunk.get("model"):
            self.model = str(chunk["model"])
        return [
            self._event("response.created", response=self.snapshot("in_progress")),
            self._event("response.in_progress", response=self.snapshot("in_progress")),
        ]

    def _add(self, item: dict[str, Any]) -> tuple[int, list[bytes]]:
        out = self._close_all()
        index = len(self.output)
        self.output.append(item)
        self.open.append(index)
        out.append(self._event("response.output_item.added", output_index=index, item=item))
        return index, out

    def _close(self, index: int, status: str = "completed") -> list[bytes]:
        item = self.output[index]
        out: list[bytes] = []
        if item["type"] == "message":
            for content_index, part in enumerate(item["content"]):
                fields = {"item_id": item["id"], "output_index": index, "content_index": content_index}
                if part["type"] == "output_text":
                    out.append(
                        self._event(
                            "response.output_text.done",
                            **fields,
                            text=part["text"],
                            logprobs=part["logprobs"],
                        )
                    )
                else:
                    out.append(self._event("response.refusal.done", **fields, refusal=part["refusal"]))
                out.append(self._event("response.content_part.done", **fields, part=part))
            if self.message == index:
                self.message, self.part = None, None
        else:
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=item["arguments"],
                )
            )
        item["status"] = status
        self.open.remove(index)
        out.append(self._event("response.output_item.done", output_index=index, item=item))
        return out

    def _close_all(self, status: str = "completed") -> list[bytes]:
        out: list[bytes] = []
        for index in list(self.open):
            out += self._close(index, status)
        return out

    def _text(self, kind: str, text: str, logprobs: list[dict[str, Any]]) -> list[bytes]:
        out: list[bytes] = []
        if self.message is None:
            item: dict[str, Any] = {
                "id": self.ids("msg"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            self.message, out = self._add(item)
        item = self.output[self.message]
        if self.part is None or self.part["type"] != kind:
            part: dict[str, Any] = (
                {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                if kind == "output_text"
                else {"type": "refusal", "refusal": ""}
            )
            item["content"].append(part)
            self.part = part
            fields = {
                "item_id": item["id"],
                "output_index": self.message,
                "content_index": len(item["content"]) - 1,
            }
            out.append(self._event("response.content_part.added", **fields, part=part))
        part = self.part
        fields = {
            "item_id": item["id"],
            "output_index": self.message,
            "content_index": len(item["content"]) - 1,
        }
        if kind == "output_text":
            part["text"] += text
            part["logprobs"] += logprobs
            out.append(self._event("response.output_text.delta", **fields, delta=text, logprobs=logprobs))
        else:
            part["refusal"] += text
            out.append(self._event("response.refusal.delta", **fields, delta=text))
        return out

    def frames(self, events: list[bytes]) -> list[bytes]:
        """A batch of the pipeline's OpenAI chat ``data:`` events, as Responses events."""
        out: list[bytes] = []
        for chunk in chunks(events):
            out += self.chunk(chunk)
        return out

    def chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        """The events for one chat chunk (the usage chunk gives none: :meth:`finish` takes the usage)."""
        out = [] if self.started else self._start(chunk)
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out += self._text("output_text", delta["content"], _logprobs(choice))
            if delta.get("refusal"):
                out += self._text("refusal", delta["refusal"], [])
            for call in delta.get("tool_calls") or ():
                index = int(call.get("index", 0))
                fn = call.get("function") or {}
                if index not in self.calls:
                    item: dict[str, Any] = {
                        "id": self.ids("fc"),
                        "type": "function_call",
                        "status": "in_progress",
                        "call_id": call.get("id") or self.ids("call"),
                        "name": fn.get("name") or "",
                        "arguments": "",
                    }
                    self.calls[index], added = self._add(item)
                    out += added
                arguments = arguments_text(fn.get("arguments"))
                if arguments:
                    position = self.calls[index]
                    self.output[position]["arguments"] += arguments
                    item_id = self.output[position]["id"]
                    out.append(
                        self._event(
                            "response.function_call_arguments.delta",
                            item_id=item_id,
                            output_index=position,
                            delta=arguments,
                        )
                    )
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def finish(self, chat_usage: dict[str, Any] | None, completed_at: int) -> list[bytes]:
        """The end of a stream that finished: open items done, then the final response event."""
        if self.response is not None:
            return []
        status, incomplete = _status(self.finish_reason)
        out = self._close_all("incomplete" if status == "incomplete" else "completed")
        self.response = self.snapshot(
            status,
            usage=usage(chat_usage),
            incomplete_details=incomplete,
            completed_at=completed_at if status == "completed" else None,
        )
        kind = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._event(kind, response=self.response))
        return out

    def fail(self, message: str, code: str = "server_error") -> list[bytes]:
        """The end of a stream whose upstream failed part-way: ``response.failed``, with what came."""
        if self.response is not None:
            return []
        out = [] if self.started else self._start({})
        for index in self.open:
            self.output[index]["status"] = "incomplete"
        self.open = []
        self.response = self.snapshot("failed", error={"code": code, "message": message})
        out.append(self._event("response.failed", response=self.response))
        return out
