"""The openai-style mock's Responses API: ``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}``.

Written from OpenAI's documented API (the ``openai`` SDK's ``types/responses`` are the field-by-field
reference), never from the gateway's own Responses code, so a test of Hedge's pass-through has an
independent witness. It answers the way the chat mock does (:func:`~hedge.mock.behaviour.plan_reply`):
an echo of the last user message, a function call when function tools are offered and the user spoke
last, an object built from the schema for ``text.format`` ``json_schema``, the tool's result quoted after
a ``function_call_output``.

Requests: ``input`` as a string or a list of items (``message`` items with ``input_text``,
``input_image`` and ``input_file`` parts, or ``output_text``/``refusal`` for the assistant;
``function_call``; ``function_call_output``; ``item_reference`` to an item of a stored response; the
other item types OpenAI defines are accepted and ignored), ``instructions`` (not carried over by
``previous_response_id``, as OpenAI documents), function ``tools`` (other tool types are accepted, echoed
and never called), ``tool_choice`` (``none``, ``auto``, ``required``, a function, ``allowed_tools``),
``parallel_tool_calls``, ``text.format``, ``max_output_tokens`` (a cut answer is ``incomplete`` with
``incomplete_details.reason`` ``max_output_tokens``), ``previous_response_id`` and ``store``. The
remaining parameters OpenAI accepts are validated where noted below and echoed in the response object.

Like OpenAI it answers 400 with its error shape and a ``param`` for: an unknown parameter (at the top
level, and in input items and content parts), a missing ``model`` or ``input``, a value of the wrong
type, an input item or content part of a type OpenAI does not have (or an input part in an assistant
message), a missing required field of an item (``call_id``, ``output``, ``name``, ``arguments``...),
``max_output_tokens`` below 16, ``temperature`` outside 0..2, ``top_p`` outside 0..1, ``top_logprobs``
outside 0..20, more than 16 ``metadata`` pairs, a ``text.format`` ``json_schema`` without ``name`` or
``schema``, ``json_object`` without the word "json" in the input, a ``tool_choice`` naming a function
not in ``tools``, a ``function_call_output`` whose ``call_id`` has no call before it, and a function call
left without its output. An unknown ``previous_response_id`` (or one stored with ``store: false``), an
unknown ``conversation`` and an unknown response id for ``GET``/``DELETE`` are 404. Without a bearer key
(or with the wrong one, when the mock requires one) it is 401.

Streams (``stream: true``) are named SSE events with ``sequence_number`` from 0: ``response.created``,
``response.in_progress``, per output item ``response.output_item.added``, then for a message
``response.content_part.added``, one ``response.output_text.delta`` per word, ``response.output_text.done``,
``response.content_part.done``, and for a function call ``response.function_call_arguments.delta`` (two
halves) and ``.done``, then ``response.output_item.done``; last ``response.completed`` (or
``response.incomplete``) with the usage. There is no ``[DONE]``.

Responses with ``store`` (the default) are kept in memory, newest :data:`MAX_STORED_RESPONSES` within
:data:`MAX_STORED_BYTES`, the oldest dropped first; a streamed one is stored when it finishes. Each keeps
its whole conversation (text clipped as the echo is) for ``previous_response_id``, so a chain whose
conversation outgrows the store is no longer kept, and a follow-up to it is 404. ``GET`` answers the
stored object as JSON (never replayed as a stream).

The mock's knobs apply as for chat: latency, injected failures (``status``, ``hang``, and for streams
``disconnect``/``early-disconnect``), the API key. Of the quirks, ``error-as-200``, ``drop-system``
(``instructions`` and system/developer messages are ignored), ``tool-args-object`` (a function call
item's ``arguments`` is an object) and ``no-stream-usage`` (the final stream event's ``usage`` is null)
have a Responses counterpart; the others concern only chat completions.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hedge.mock.behaviour import (
    Reply,
    Tool,
    Turn,
    clip,
    count_tokens,
    cut_depth,
    dumps,
    plan_reply,
    unknown_model,
)
from hedge.mock.openai_style import (
    MAX_CONTENT_CHARS,
    MAX_FUNCTION_NAME,
    MAX_TOOLS,
    _admit,
    _array_max,
    _authorized,
    _decimal,
    _integer,
    _Invalid,
    _string_max,
    _type_error,
    error,
)
from hedge.mock.state import MockState
from hedge.wire.sse import frame_event

CREATE_PARAMS = frozenset(
    {
        "access_programs",
        "background",
        "background_options",
        "context_management",
        "conversation",
        "image",
        "include",
        "input",
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "metadata",
        "model",
        "moderation",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
    }
)
"""Every parameter of ``POST /v1/responses``; any other is refused as unknown."""

ITEM_TYPES = (
    "message",
    "file_search_call",
    "computer_call",
    "computer_call_output",
    "web_search_call",
    "function_call",
    "function_call_output",
    "tool_search_call",
    "tool_search_output",
    "additional_tools",
    "configuration_update",
    "reasoning",
    "compaction",
    "image_generation_call",
    "code_interpreter_call",
    "local_shell_call",
    "local_shell_call_output",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "custom_tool_call_output",
    "custom_tool_call",
    "compaction_trigger",
    "item_reference",
    "program",
    "program_output",
)
"""The input item types OpenAI defines, in the order its "Supported values" lists them."""

TOOL_TYPES = (
    "function",
    "file_search",
    "computer",
    "computer_use_preview",
    "web_search",
    "web_search_2025_08_26",
    "mcp",
    "code_interpreter",
    "programmatic_tool_calling",
    "image_generation",
    "local_shell",
    "shell",
    "custom",
    "namespace",
    "tool_search",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "apply_patch",
)

_MESSAGE_FIELDS = frozenset({"type", "role", "content", "id", "status", "phase"})
_FUNCTION_CALL_FIELDS = frozenset(
    {"type", "call_id", "name", "arguments", "id", "status", "namespace", "caller", "async"}
)
_FUNCTION_OUTPUT_FIELDS = frozenset(
    {"type", "call_id", "output", "id", "status", "name", "namespace", "caller"}
)
_PART_FIELDS: dict[str, frozenset[str]] = {
    "input_text": frozenset({"type", "text", "prompt_cache_breakpoint"}),
    "input_image": frozenset({"type", "detail", "file_id", "image_url", "prompt_cache_breakpoint"}),
    "input_file": frozenset(
        {"type", "detail", "file_data", "file_id", "file_url", "filename", "prompt_cache_breakpoint"}
    ),
    "output_text": frozenset({"type", "text", "annotations", "logprobs"}),
    "refusal": frozenset({"type", "refusal"}),
}
_INPUT_PARTS = ("input_text", "input_image", "input_file")
_ASSISTANT_PARTS = ("output_text", "refusal")
_ROLES = ("user", "assistant", "system", "developer")
_TURN_ROLES: dict[str, Literal["system", "user", "assistant"]] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
}
_TOOL_CHOICES = ("none", "auto", "required")
_TOOL_CHOICE_TYPES = (
    "function",
    "allowed_tools",
    "file_search",
    "web_search_preview",
    "computer",
    "computer_use_preview",
    "computer_use",
    "web_search_preview_2025_03_11",
    "image_generation",
    "code_interpreter",
    "mcp",
    "custom",
    "programmatic_tool_calling",
    "apply_patch",
    "shell",
)
_FORMATS = ("text", "json_schema", "json_object")
_SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast", "ultrafast")

MIN_OUTPUT_TOKENS = 16
"""OpenAI refuses a smaller ``max_output_tokens``."""
MAX_TOP_LOGPROBS = 20
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
IMAGE_TOKENS = 85
"""What an image part costs in input tokens (OpenAI's price of a low-detail image)."""
MAX_STORED_RESPONSES = 1000
MAX_STORED_BYTES = 32 * 1024 * 1024
"""About the most memory stored responses take (their JSON plus the context kept for follow-ups)."""


class _NotFound(Exception):
    """An id OpenAI does not know: answered 404 with its message, ``param`` and ``code``."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code

    def response(self, state: MockState) -> Response:
        body = {
            "error": {
                "message": self.message,
                "type": "invalid_request_error",
                "param": self.param,
                "code": self.code,
            }
        }
        status = 200 if state.quirk("error-as-200") else 404
        return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _missing(param: str) -> _Invalid:
    return _Invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _unknown(param: str) -> _Invalid:
    return _Invalid(f"Unknown parameter: '{param}'.", param, "unknown_parameter")


def _quoted(values: tuple[str, ...]) -> str:
    names = [f"'{v}'" for v in values]
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + ", and " + names[-1]


def _invalid_value(param: str, value: Any, supported: tuple[str, ...]) -> _Invalid:
    shown = value if isinstance(value, str) else dumps(value).decode()
    return _Invalid(
        f"Invalid value: '{clip(shown, 256)}'. Supported values are: {_quoted(supported)}.",
        param,
        "invalid_value",
    )


def _only(prefix: str, obj: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in obj:
        if key not in allowed:
            raise _unknown(f"{prefix}.{clip(key, 256)}")


def _string(name: str, value: Any, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise _missing(name)
        return None
    if not isinstance(value, str):
        raise _type_error(name, "a string", value)
    return value


def _boolean(name: str, value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise _type_error(name, "a boolean", value)
    return value


def _choice(name: str, value: Any, supported: tuple[str, ...]) -> None:
    if value is not None and value not in supported:
        raise _invalid_value(name, value, supported)


def _object(name: str, value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise _type_error(name, "an object", value)
    return value


# -- the conversation -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    """One input or output item, as far as planning a reply needs it (its text clipped)."""

    kind: Literal["message", "function_call", "function_call_output", "other"]
    role: str = ""
    text: str = ""
    tokens: int = 0
    call_id: str = ""
    name: str = ""
    id: str | None = None

    @property
    def size(self) -> int:
        return len(self.text) + len(self.call_id) + len(self.name) + 256  # about what Python holds for one


@dataclass(slots=True)
class _Stored:
    body: bytes
    """The response object's JSON, as ``GET`` answers it."""
    context: list[_Item]
    """Every item of the conversation up to and including the response's output (never instructions)."""
    size: int


class ResponseStore:
    """The responses the mock keeps, bounded by count and by bytes, the oldest dropped first."""

    def __init__(self, max_count: int = MAX_STORED_RESPONSES, max_bytes: int = MAX_STORED_BYTES) -> None:
        self._entries: OrderedDict[str, _Stored] = OrderedDict()
        self._bytes = 0
        self.max_count, self.max_bytes = max_count, max_bytes

    def put(self, response_id: str, body: bytes, context: list[_Item]) -> None:
        size = len(body) + sum(item.size for item in context)
        if size > self.max_bytes:
            return  # larger than the whole store: not kept, as if evicted at once
        self.delete(response_id)
        while self._entries and (len(self._entries) >= self.max_count or self._bytes + size > self.max_bytes):
            _, oldest = self._entries.popitem(last=False)
            self._bytes -= oldest.size
        self._entries[response_id] = _Stored(body, context, size)
        self._bytes += size

    def get(self, response_id: str) -> _Stored | None:
        return self._entries.get(response_id)

    def delete(self, response_id: str) -> bool:
        entry = self._entries.pop(response_id, None)
        if entry is None:
            return False
        self._bytes -= entry.size
        return True

    def find_item(self, item_id: str) -> _Item | None:
        for entry in reversed(self._entries.values()):
            for item in entry.context:
                if item.id == item_id:
                    return item
        return None


def _store(request: Request) -> ResponseStore:
    store: ResponseStore | None = getattr(request.app.state, "openai_responses", None)
    if store is None:
        store = request.app.state.openai_responses = ResponseStore()
    return store


def _parts_text(prefix: str, parts: list[Any], allowed: tuple[str, ...]) -> tuple[str, int]:
    """The text of a list of content parts and the tokens they cost, validated as OpenAI does."""
    texts: list[str] = []
    tokens = 0
    for j, part in enumerate(parts):
        where = f"{prefix}[{j}]"
        if not isinstance(part, dict):
            raise _type_error(where, "an object", part)
        kind = part.get("type")
        if kind is None:
            raise _missing(f"{where}.type")
        if kind not in allowed:
            raise _invalid_value(f"{where}.type", kind, allowed)
        _only(where, part, _PART_FIELDS[kind])
        if kind in ("input_text", "output_text"):
            text = _string(f"{where}.text", part.get("text"), required=True) or ""
            _string_max(f"{where}.text", text, MAX_CONTENT_CHARS)
        elif kind == "refusal":
            text = _string(f"{where}.refusal", part.get("refusal"), required=True) or ""
        elif kind == "input_image":
            _choice(f"{where}.detail", part.get("detail"), ("low", "high", "auto", "original"))
            url = _string(f"{where}.image_url", part.get("image_url"))
            if url is None and _string(f"{where}.file_id", part.get("file_id")) is None:
                raise _missing(f"{where}.image_url")
            tokens += IMAGE_TOKENS
            continue
        else:  # input_file
            for key in ("file_data", "file_id", "file_url", "filename"):
                _string(f"{where}.{key}", part.get(key))
            continue
        tokens += count_tokens(text)
        texts.append(clip(text))
    return clip("".join(texts)), tokens


def _message(where: str, item: dict[str, Any]) -> _Item:
    _only(where, item, _MESSAGE_FIELDS)
    role = item.get("role")
    if role is None:
        raise _missing(f"{where}.role")
    if role not in _ROLES:
        raise _invalid_value(f"{where}.role", role, _ROLES)
    content = item.get("content")
    if content is None:
        raise _missing(f"{where}.content")
    if isinstance(content, str):
        _string_max(f"{where}.content", content, MAX_CONTENT_CHARS)
        text, tokens = clip(content), count_tokens(content)
    elif isinstance(content, list):
        allowed = _ASSISTANT_PARTS if role == "assistant" else _INPUT_PARTS
        text, tokens = _parts_text(f"{where}.content", content, allowed)
    else:
        raise _type_error(f"{where}.content", "a string or an array of content parts", content)
    item_id = item.get("id")
    return _Item("message", role, text, tokens, id=item_id if isinstance(item_id, str) else None)


def _input_item(i: int, item: Any, store: ResponseStore) -> _Item:
    where = f"input[{i}]"
    if not isinstance(item, dict):
        raise _type_error(where, "an object", item)
    kind = item.get("type")
    if kind is None:
        if "role" in item:
            return _message(where, item)
        raise _missing(f"{where}.type")
    if kind not in ITEM_TYPES:
        raise _invalid_value(f"{where}.type", kind, ITEM_TYPES)
    item_id = item.get("id") if isinstance(item.get("id"), str) else None
    if kind == "message":
        return _message(where, item)
    if kind == "function_call":
        _only(where, item, _FUNCTION_CALL_FIELDS)
        call_id = _string(f"{where}.call_id", item.get("call_id"), required=True) or ""
        name = _string(f"{where}.name", item.get("name"), required=True) or ""
        arguments = _string(f"{where}.arguments", item.get("arguments"), required=True) or ""
        tokens = count_tokens(arguments) + 1
        return _Item("function_call", "assistant", clip(arguments), tokens, call_id, name, item_id)
    if kind == "function_call_output":
        _only(where, item, _FUNCTION_OUTPUT_FIELDS)
        call_id = _string(f"{where}.call_id", item.get("call_id"), required=True) or ""
        output = item.get("output")
        if output is None:
            raise _missing(f"{where}.output")
        if isinstance(output, str):
            _string_max(f"{where}.output", output, MAX_CONTENT_CHARS)
            text, tokens = clip(output), count_tokens(output)
        elif isinstance(output, list):
            text, tokens = _parts_text(f"{where}.output", output, _INPUT_PARTS)
        else:
            raise _type_error(f"{where}.output", "a string or an array of content parts", output)
        return _Item("function_call_output", "tool", text, tokens, call_id, id=item_id)
    if kind == "item_reference":
        ref = _string(f"{where}.id", item.get("id"), required=True) or ""
        found = store.find_item(ref)
        if found is None:
            raise _NotFound(f"Item with id '{clip(ref, 256)}' not found.", "input")
        return found
    return _Item("other", id=item_id)  # a type the mock does not model: kept out of the conversation


def _input(raw: Any, store: ResponseStore) -> list[_Item]:
    if raw is None:
        return []
    if isinstance(raw, str):
        _string_max("input", raw, MAX_CONTENT_CHARS)
        return [_Item("message", "user", clip(raw), count_tokens(raw))]
    if not isinstance(raw, list):
        raise _type_error("input", "a string or an array of input items", raw)
    return [_input_item(i, item, store) for i, item in enumerate(raw)]


def _check_pairs(context: list[_Item]) -> None:
    """Every function call answered by its output, and no output without its call before it."""
    called: set[str] = set()
    answered: set[str] = set()
    for item in context:
        if item.kind == "function_call":
            called.add(item.call_id)
        elif item.kind == "function_call_output":
            if item.call_id not in called:
                raise _Invalid(
                    f"No tool call found for function call output with call_id {clip(item.call_id, 256)}.",
                    "input",
                )
            answered.add(item.call_id)
    for item in context:
        if item.kind == "function_call" and item.call_id not in answered:
            raise _Invalid(f"No tool output found for function call {clip(item.call_id, 256)}.", "input")


# -- the request ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    """A validated request and the reply planned for it."""

    body: dict[str, Any]
    model: str
    context: list[_Item]
    """The conversation before the reply: the previous response's context, then this request's input."""
    echo: dict[str, Any]
    """The request's parameters as the response object states them."""
    reply: Reply
    stream: bool
    store: bool
    disconnect: bool
    response_id: str = field(default_factory=lambda: "resp_" + os.urandom(24).hex())
    created_at: int = field(default_factory=lambda: int(time.time()))


def _tools(body: dict[str, Any]) -> tuple[list[Any], list[Tool]]:
    raw = body.get("tools")
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        raise _type_error("tools", "an array", raw)
    _array_max("tools", raw, MAX_TOOLS)
    echo: list[Any] = []
    functions: list[Tool] = []
    for i, tool in enumerate(raw):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _type_error(where, "an object", tool)
        kind = tool.get("type")
        if kind is None:
            raise _missing(f"{where}.type")
        if kind not in TOOL_TYPES:
            raise _invalid_value(f"{where}.type", kind, TOOL_TYPES)
        if kind != "function":
            echo.append(tool)
            continue
        name = _string(f"{where}.name", tool.get("name"), required=True) or ""
        _string_max(f"{where}.name", name, MAX_FUNCTION_NAME)
        parameters = _object(f"{where}.parameters", tool.get("parameters"))
        _string(f"{where}.description", tool.get("description"))
        strict = _boolean(f"{where}.strict", tool.get("strict"))
        echo.append(
            {
                **tool,
                "description": tool.get("description"),
                "parameters": parameters,
                "strict": True if strict is None else strict,
            }
        )
        functions.append(Tool(name, parameters or {}))
    return echo, functions


def _tool_choice(body: dict[str, Any], functions: list[Tool]) -> tuple[Any, list[Tool], str | None]:
    """The ``tool_choice`` to echo, the function tools it leaves and the one it forces (or "none")."""
    raw = body.get("tool_choice")
    if raw is None:
        return "auto", functions, None
    if isinstance(raw, str):
        _choice("tool_choice", raw, _TOOL_CHOICES)
        return raw, functions, "none" if raw == "none" else None
    if not isinstance(raw, dict):
        raise _type_error("tool_choice", "a string or an object", raw)
    kind = raw.get("type")
    if kind is None:
        raise _missing("tool_choice.type")
    if kind not in _TOOL_CHOICE_TYPES:
        raise _invalid_value("tool_choice.type", kind, _TOOL_CHOICE_TYPES)
    if kind == "function":
        name = _string("tool_choice.name", raw.get("name"), required=True)
        if name not in {t.name for t in functions}:
            raise _Invalid("Tool choice 'function' not found in 'tools' parameter.", "tool_choice")
        return raw, functions, name
    if kind == "allowed_tools":
        _choice("tool_choice.mode", raw.get("mode"), ("auto", "required"))
        allowed = raw.get("tools")
        if not isinstance(allowed, list):
            raise _type_error("tool_choice.tools", "an array", allowed)
        names = {
            t["name"]
            for t in allowed
            if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str)
        }
        return raw, [t for t in functions if t.name in names], None
    return raw, functions, None  # a hosted tool: never called by the mock


def _text(body: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
    """The ``text`` config to echo, the format's type and its JSON schema (for ``json_schema``)."""
    text = _object("text", body.get("text")) or {}
    _only("text", text, frozenset({"format", "verbosity"}))
    _choice("text.verbosity", text.get("verbosity"), ("low", "medium", "high"))
    fmt = _object("text.format", text.get("format")) or {"type": "text"}
    kind = fmt.get("type")
    if kind is None:
        raise _missing("text.format.type")
    if kind not in _FORMATS:
        raise _invalid_value("text.format.type", kind, _FORMATS)
    schema: dict[str, Any] | None = None
    if kind == "json_schema":
        _only("text.format", fmt, frozenset({"type", "name", "schema", "description", "strict"}))
        name = _string("text.format.name", fmt.get("name"), required=True) or ""
        _string_max("text.format.name", name, MAX_FUNCTION_NAME)
        schema = _object("text.format.schema", fmt.get("schema"))
        if schema is None:
            raise _missing("text.format.schema")
        _boolean("text.format.strict", fmt.get("strict"))
        _string("text.format.description", fmt.get("description"))
        fmt = {"description": None, "strict": False, **fmt}
    else:
        _only("text.format", fmt, frozenset({"type"}))
    echo = {"format": fmt, "verbosity": text.get("verbosity") or "medium"}
    return echo, kind, schema


def _metadata(value: Any) -> dict[str, str]:
    metadata = _object("metadata", value) or {}
    if len(metadata) > MAX_METADATA_PAIRS:
        raise _Invalid(
            f"Invalid 'metadata': too many properties. Expected an object with at most {MAX_METADATA_PAIRS} "
            f"properties, but got an object with {len(metadata)} properties instead.",
            "metadata",
            "object_above_max_properties",
        )
    for key, item in metadata.items():
        _string_max("metadata", key, MAX_METADATA_KEY)
        if not isinstance(item, str):
            raise _type_error(f"metadata.{clip(key, 64)}", "a string", item)
        _string_max(f"metadata.{clip(key, 64)}", item, MAX_METADATA_VALUE)
    return metadata


def _plan(state: MockState, store: ResponseStore, body: dict[str, Any]) -> _Plan:
    """Validate ``body`` as OpenAI does (or raise :class:`_Invalid`, :class:`_NotFound`); plan the reply."""
    disconnect = bool(body.pop("_mock_disconnect", False))
    for key in body:
        if key not in CREATE_PARAMS:
            raise _unknown(clip(key, 256))
    model = _string("model", body.get("model"), required=True) or ""
    if body.get("input") is None and body.get("prompt") is None:
        raise _missing("input")
    instructions = _string("instructions", body.get("instructions"))
    if instructions is not None:
        _string_max("instructions", instructions, MAX_CONTENT_CHARS)
    max_output = _integer("max_output_tokens", body.get("max_output_tokens"), MIN_OUTPUT_TOKENS)
    _integer("max_tool_calls", body.get("max_tool_calls"), 1)
    _integer("top_logprobs", body.get("top_logprobs"), 0, MAX_TOP_LOGPROBS)
    _decimal("temperature", body.get("temperature"), 0, 2)
    _decimal("top_p", body.get("top_p"), 0, 1)
    stream = bool(_boolean("stream", body.get("stream")))
    keep = _boolean("store", body.get("store"))
    parallel = _boolean("parallel_tool_calls", body.get("parallel_tool_calls"))
    background = _boolean("background", body.get("background"))
    _choice("truncation", body.get("truncation"), ("auto", "disabled"))
    _choice("service_tier", body.get("service_tier"), _SERVICE_TIERS)
    _choice("prompt_cache_retention", body.get("prompt_cache_retention"), ("in_memory", "24h"))
    for name in ("previous_response_id", "prompt_cache_key", "safety_identifier", "user"):
        _string(name, body.get(name))
    metadata = _metadata(body.get("metadata"))
    reasoning = _object("reasoning", body.get("reasoning"))
    text_echo, fmt, schema = _text(body)
    tools_echo, functions = _tools(body)
    choice_echo, offered, forced = _tool_choice(body, functions)
    _object("stream_options", body.get("stream_options"))
    items = _input(body.get("input"), store)

    if unknown_model(model):
        raise _NotFound(
            f"The model `{clip(model, 256)}` does not exist or you do not have access to it.",
            "model",
            "model_not_found",
        )
    previous_id = body.get("previous_response_id")
    context: list[_Item] = []
    if previous_id is not None:
        previous = store.get(previous_id)
        if previous is None:
            raise _NotFound(
                f"Previous response with id '{clip(previous_id, 256)}' not found.",
                "previous_response_id",
                "previous_response_not_found",
            )
        context = list(previous.context)
    conversation = body.get("conversation")
    if conversation is not None:
        conv_id = conversation.get("id") if isinstance(conversation, dict) else conversation
        shown = conv_id if isinstance(conv_id, str) else dumps(conv_id).decode()
        raise _NotFound(f"Conversation with id '{clip(shown, 256)}' not found.", "conversation")
    context.extend(items)
    _check_pairs(context)

    drop_system = state.quirk("drop-system")
    if fmt == "json_object":
        words = [i.text for i in context if i.kind == "message"] + [instructions or ""]
        if not any("json" in w.lower() for w in words):
            raise _Invalid(
                "Response input messages must contain the word 'json' in some form to use 'text.format' "
                "of type 'json_object'.",
                "input",
            )
    turns: list[Turn] = []
    prompt_tokens = 3
    if instructions and not drop_system:
        turns.append(Turn("system", clip(instructions)))
        prompt_tokens += count_tokens(instructions) + 3
    for item in context:
        if item.kind == "other" or (drop_system and item.role in ("system", "developer")):
            continue
        prompt_tokens += item.tokens + 3
        if item.kind == "message":
            turns.append(Turn(_TURN_ROLES[item.role], item.text))
        elif item.kind == "function_call":
            turns.append(Turn("assistant", ""))
        else:
            turns.append(Turn("tool", item.text))
    reply = plan_reply(
        model,
        turns,
        tools=offered or None,
        tool_choice=forced,
        max_tokens=max_output,
        json_mode=fmt in ("json_object", "json_schema"),
        json_schema=schema,
        answer=state.graded_answer(turns),
    )
    reply.prompt_tokens = prompt_tokens
    if parallel is False and len(reply.tool_calls) > 1:
        reply.tool_calls = reply.tool_calls[:1]
        reply.completion_tokens = count_tokens(orjson.dumps(reply.tool_calls[0].arguments).decode()) + 1
    echo = {
        "background": bool(background),
        "instructions": instructions,
        "max_output_tokens": max_output,
        "max_tool_calls": body.get("max_tool_calls"),
        "metadata": metadata,
        "model": model,
        "parallel_tool_calls": parallel is not False,
        "previous_response_id": previous_id,
        "prompt_cache_key": body.get("prompt_cache_key"),
        "prompt_cache_retention": body.get("prompt_cache_retention"),
        "reasoning": reasoning if reasoning is not None else {"effort": None, "summary": None},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default" if body.get("service_tier") in (None, "auto") else body["service_tier"],
        "temperature": 1.0 if body.get("temperature") is None else body["temperature"],
        "text": text_echo,
        "tool_choice": choice_echo,
        "tools": tools_echo,
        "top_logprobs": body.get("top_logprobs") or 0,
        "top_p": 1.0 if body.get("top_p") is None else body["top_p"],
        "truncation": body.get("truncation") or "disabled",
        "user": body.get("user"),
    }
    try:
        orjson.dumps(echo)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (it reads deeper): echoed cut
        echo = cut_depth(echo)
    return _Plan(body, model, context, echo, reply, stream, keep is not False, disconnect)


# -- the answer -------------------------------------------------------------------------------------


def _item_id(prefix: str) -> str:
    return prefix + os.urandom(24).hex()


def _output(state: MockState, plan: _Plan) -> list[dict[str, Any]]:
    """The response's output items, finished."""
    reply = plan.reply
    as_object = state.quirk("tool-args-object")
    if reply.tool_calls:
        return [
            {
                "id": _item_id("fc_"),
                "type": "function_call",
                "status": "completed",
                "arguments": c.arguments if as_object else orjson.dumps(c.arguments).decode(),
                "call_id": c.id,
                "name": c.name,
            }
            for c in reply.tool_calls
        ]
    return [
        {
            "id": _item_id("msg_"),
            "type": "message",
            "status": "incomplete" if reply.finish == "length" else "completed",
            "role": "assistant",
            "content": [_text_part(reply.text)],
        }
    ]


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _usage(reply: Reply) -> dict[str, Any]:
    return {
        "input_tokens": reply.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": reply.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _status(plan: _Plan) -> Literal["completed", "incomplete"]:
    return "incomplete" if plan.reply.finish == "length" else "completed"


def _response(
    plan: _Plan,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    done = status in ("completed", "incomplete")
    return {
        "id": plan.response_id,
        "object": "response",
        "created_at": plan.created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        **plan.echo,
        "output": output,
        "usage": usage if done else None,
    }


def _context_after(plan: _Plan, output: list[dict[str, Any]]) -> list[_Item]:
    """The conversation including the reply, for a follow-up by ``previous_response_id``."""
    items = list(plan.context)
    for item in output:
        if item["type"] == "function_call":
            args = item["arguments"]
            text = args if isinstance(args, str) else orjson.dumps(args).decode()
            tokens = count_tokens(text) + 1
            call = _Item(
                "function_call", "assistant", text, tokens, item["call_id"], item["name"], item["id"]
            )
            items.append(call)
        else:
            text = clip(plan.reply.text)
            items.append(_Item("message", "assistant", text, plan.reply.completion_tokens, id=item["id"]))
    return items


def _keep(store: ResponseStore, plan: _Plan, body: bytes, output: list[dict[str, Any]]) -> None:
    if plan.store:
        store.put(plan.response_id, body, _context_after(plan, output))


async def create(request: Request) -> Response:
    state: MockState = request.app.state.mock
    body, early = await _admit(state, request)
    if early is not None or body is None:
        return early or error(state, 400)
    store = _store(request)
    try:
        plan = _plan(state, store, body)
    except _Invalid as exc:
        return exc.response(state)
    except _NotFound as exc:
        return exc.response(state)
    if plan.stream:
        return StreamingResponse(_stream(state, store, plan), media_type="text/event-stream")
    await state.delay()
    output = _output(state, plan)
    data = _response(plan, _status(plan), output, _usage(plan.reply))
    encoded = orjson.dumps(data)
    _keep(store, plan, encoded, output)
    if state.quirk("error-as-200"):
        encoded = orjson.dumps(
            {"error": {"message": "Mock error reported with status 200.", "type": "server_error"}}
        )
    return Response(encoded, media_type="application/json")


async def _stream(state: MockState, store: ResponseStore, plan: _Plan) -> AsyncIterator[bytes]:
    state.stats.streams_started += 1
    completed = False
    output = _output(state, plan)
    status = _status(plan)
    sequence = 0

    def event(name: str, **fields: Any) -> bytes:
        nonlocal sequence
        data = {"type": name, **fields, "sequence_number": sequence}
        sequence += 1
        return frame_event(name, data)

    def steps() -> list[bytes]:
        """Every event between ``response.in_progress`` and the last one."""
        out: list[bytes] = []
        for index, item in enumerate(output):
            ref = {"item_id": item["id"], "output_index": index}
            if item["type"] == "function_call":
                args = item["arguments"]
                text = args if isinstance(args, str) else orjson.dumps(args).decode()
                out.append(
                    event(
                        "response.output_item.added",
                        output_index=index,
                        item={**item, "status": "in_progress", "arguments": ""},
                    )
                )
                half = len(text) // 2
                for delta in (text[:half], text[half:]):
                    out.append(event("response.function_call_arguments.delta", **ref, delta=delta))
                out.append(event("response.function_call_arguments.done", **ref, arguments=text))
            else:
                out.append(
                    event(
                        "response.output_item.added",
                        output_index=index,
                        item={**item, "status": "in_progress", "content": []},
                    )
                )
                part = {**ref, "content_index": 0}
                out.append(event("response.content_part.added", **part, part=_text_part("")))
                for piece in plan.reply.pieces:
                    out.append(event("response.output_text.delta", **part, delta=piece, logprobs=[]))
                text = plan.reply.text
                out.append(event("response.output_text.done", **part, text=text, logprobs=[]))
                out.append(event("response.content_part.done", **part, part=_text_part(text)))
            out.append(event("response.output_item.done", output_index=index, item=item))
        return out

    try:
        opening = _response(plan, "in_progress", [], None)
        head = [
            event("response.created", response=opening),
            event("response.in_progress", response=opening),
        ]
        middle = steps()
        disconnect_at = -1
        if plan.disconnect:
            disconnect_at = 0 if state.knobs.fail_mode == "early-disconnect" else max(1, len(middle) // 2)
        total = len(middle) + 2
        await state.delay(1 / total)
        yield b"".join(head)
        for k, frame in enumerate(middle):
            if k == disconnect_at:
                raise ConnectionAbortedError("mock: injected mid-stream disconnect")
            await state.delay(1 / total)
            yield frame
        usage = None if state.quirk("no-stream-usage") else _usage(plan.reply)
        final = _response(plan, status, output, usage)
        if plan.store:
            stored = final if usage is not None else {**final, "usage": _usage(plan.reply)}
            _keep(store, plan, orjson.dumps(stored), output)
        await state.delay(1 / total)
        yield event(f"response.{status}", response=final)
        completed = True
    finally:
        if completed:
            state.stats.streams_completed += 1
        else:
            state.stats.streams_cancelled += 1


async def retrieve(request: Request) -> Response:
    state: MockState = request.app.state.mock
    if not _authorized(state, request):
        return error(state, 401, "You didn't provide a valid API key.")
    response_id = request.path_params["response_id"]
    entry = _store(request).get(response_id)
    if entry is None:
        return _NotFound(f"Response with id '{clip(response_id, 256)}' not found.").response(state)
    await state.delay()
    return Response(entry.body, media_type="application/json")


async def delete(request: Request) -> Response:
    state: MockState = request.app.state.mock
    if not _authorized(state, request):
        return error(state, 401, "You didn't provide a valid API key.")
    response_id = request.path_params["response_id"]
    if not _store(request).delete(response_id):
        return _NotFound(f"Response with id '{clip(response_id, 256)}' not found.").response(state)
    await state.delay()
    body = {"id": response_id, "object": "response", "deleted": True}
    return Response(orjson.dumps(body), media_type="application/json")


def routes() -> list[Route]:
    return [
        Route("/v1/responses", create, methods=["POST"]),
        Route("/v1/responses/{response_id}", retrieve, methods=["GET"]),
        Route("/v1/responses/{response_id}", delete, methods=["DELETE"]),
    ]
