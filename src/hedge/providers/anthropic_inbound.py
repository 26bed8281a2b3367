"""Inbound Anthropic Messages: clients speaking Anthropic's API, routed like any OpenAI request.

The reverse of ``anthropic.py``: an Anthropic ``POST /v1/messages`` body becomes
an OpenAI chat body (so routing, failover and cost work unchanged and any
provider can serve it), and the OpenAI answer, whole or streamed, becomes an
Anthropic message or event stream.

Before anything is translated, :func:`validate_messages` checks the type of every
field translation reads and answers a malformed body with Anthropic's kind of 400
(``system.0.text: Input should be a valid string``), so translation only ever
meets well-typed values and bad input is never a 500.
"""

from __future__ import annotations

from typing import Any

import orjson

from hedge.errors import InvalidRequest
from hedge.providers.ids import REASONING_FORMAT
from hedge.providers.sse import frame_event
from hedge.wire.anthropic import ERROR_TYPES, STOP_BY_FINISH

_FINISH = STOP_BY_FINISH
_ERROR_TYPES = {**ERROR_TYPES, 503: "overloaded_error"}
"""Anthropic's error types, and the gateway's own 503 (nothing available) read as overloaded."""


def error_type(status: int) -> str:
    """Anthropic's ``error.type`` for an HTTP status: its table, else ``invalid_request_error`` for any
    other 4xx (as its errors page says it does) and ``api_error`` for the rest."""
    known = _ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _system_text(system: Any) -> str:
    """System text blocks flattened with a blank line between them, as the Anthropic adapter joins
    system messages (glued together, "Be terse." and "Answer in French." would read as one)."""
    if isinstance(system, list):
        return "\n\n".join(b["text"] for b in system if isinstance(b, dict) and b.get("text"))
    return _text_of(system)


def _document_part(block: dict[str, Any]) -> dict[str, Any]:
    """A ``document`` block as an OpenAI part: a base64 PDF as a ``file`` part (which the Gemini
    adapter sends as inline data and the Anthropic adapter as a document again), plain text as text."""
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type") or "application/pdf"
        filename = block.get("title") if isinstance(block.get("title"), str) else None
        return {
            "type": "file",
            "file": {
                "filename": filename or "document.pdf",
                "file_data": f"data:{media_type};base64,{source['data']}",
            },
        }
    if kind == "text":
        title = block.get("title")
        text = str(source.get("data") or "")
        return {"type": "text", "text": f"{title}\n\n{text}" if isinstance(title, str) and title else text}
    raise InvalidRequest(
        f"Document source type {kind!r} cannot be translated for every provider: send the PDF inline "
        "(source.type 'base64') or as plain text (source.type 'text').",
        param="messages",
    )


def _image_part(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type') or 'image/png'};base64,{source['data']}"
    elif source.get("type") == "url":
        url = source["url"]
    else:
        raise InvalidRequest("Unsupported image source type.", param="messages")
    return {"type": "image_url", "image_url": {"url": url}}


# -- validation: Anthropic's shapes, checked before anything is translated -------------------------------

_EXPECTED = {
    str: "a valid string",
    dict: "a valid dictionary",
    list: "a valid list",
    bool: "a valid boolean",
    int: "a valid integer",
    float: "a valid number",
}


def _bad(path: str, problem: str) -> InvalidRequest:
    """Anthropic's 400 wording: the dotted path of the field, then what is wrong with it."""
    return InvalidRequest(f"{path}: {problem}", param=path)


def _field(obj: dict[str, Any], key: str, path: str, kind: type, required: bool = False) -> Any:
    """``obj[key]`` if it has the JSON type ``kind`` (``float`` meaning any number), None if absent."""
    value = obj.get(key)
    where = f"{path}{key}"
    if value is None:
        if required:
            raise _bad(where, "Field required")
        return None
    if isinstance(value, bool) and kind is not bool:
        ok = False
    elif kind is float:
        ok = isinstance(value, int | float)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise _bad(where, f"Input should be {_EXPECTED[kind]}")
    return value


def _one_of(value: Any, where: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        names = [f"'{a}'" for a in allowed]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" or {names[-1]}"
        raise _bad(where, f"Input should be {listed}")


COUNT_REFUSES = (
    "max_tokens",
    "stream",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "metadata",
    "service_tier",
)
"""Messages fields that the token counting API (``/v1/messages/count_tokens``) refuses: its body is
a Messages body without the generation settings, and an extra field is a 400 there
(``max_tokens: Extra inputs are not permitted``)."""


def validate_messages(body: dict[str, Any], *, counting: bool = False) -> None:
    """Type-check every field of a Messages request that translation reads, as Anthropic would.

    The client gets Anthropic's kind of 400 naming the field (``messages.0.content.1.source:
    Field required``) instead of a translation that trips over, say, a text block whose
    ``text`` is a number. ``counting``: the body of a token counting request, which has no
    ``max_tokens`` and refuses the generation settings (:data:`COUNT_REFUSES`).
    """
    model = _field(body, "model", "", str, required=True)
    if not model:
        raise _bad("model", "String should have at least 1 character")
    if counting:
        extra = next((name for name in COUNT_REFUSES if name in body), None)
        if extra is not None:
            raise _bad(extra, "Extra inputs are not permitted")
    else:
        max_tokens = _field(body, "max_tokens", "", int, required=True)
        if max_tokens < 1:
            raise _bad("max_tokens", "Input should be greater than or equal to 1")
    messages = _field(body, "messages", "", list, required=True)
    if not messages:
        raise _bad("messages", "List should have at least 1 item")
    system = body.get("system")
    if isinstance(system, list):
        for i, block in enumerate(system):
            _text_block(block, f"system.{i}")
    elif system is not None and not isinstance(system, str):
        raise _bad("system", "Input should be a valid string or a list of text blocks")
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise _bad(where, "Input should be a valid dictionary")
        role = _field(message, "role", f"{where}.", str, required=True)
        _one_of(role, f"{where}.role", ("user", "assistant", "system"))
        content = message.get("content")
        if isinstance(content, list) and role == "system":
            for j, block in enumerate(content):
                _text_block(block, f"{where}.content.{j}")
        elif isinstance(content, list):
            for j, block in enumerate(content):
                _content_block(block, f"{where}.content.{j}")
        elif content is None:
            raise _bad(f"{where}.content", "Field required")
        elif not isinstance(content, str):
            raise _bad(f"{where}.content", "Input should be a valid string or a list of content blocks")

    _field(body, "stream", "", bool)
    _field(body, "temperature", "", float)
    _field(body, "top_p", "", float)
    _field(body, "top_k", "", int)
    stops = _field(body, "stop_sequences", "", list)
    for i, stop in enumerate(stops or ()):
        if not isinstance(stop, str):
            raise _bad(f"stop_sequences.{i}", "Input should be a valid string")
    metadata = _field(body, "metadata", "", dict)
    if metadata is not None:
        _field(metadata, "user_id", "metadata.", str)
    for i, tool in enumerate(_field(body, "tools", "", list) or ()):
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _bad(where, "Input should be a valid dictionary")
        _field(tool, "name", f"{where}.", str, required=True)
        _field(tool, "description", f"{where}.", str)
        _field(tool, "input_schema", f"{where}.", dict)
    thinking = _field(body, "thinking", "", dict)
    if thinking is not None:
        kind = _field(thinking, "type", "thinking.", str, required=True)
        _one_of(kind, "thinking.type", ("enabled", "disabled", "adaptive"))
        if kind == "enabled":
            budget = _field(thinking, "budget_tokens", "thinking.enabled.", int, required=True)
            if budget < 1024:
                raise _bad("thinking.enabled.budget_tokens", "Input should be greater than or equal to 1024")
    config = _field(body, "output_config", "", dict)
    if config is not None:
        effort = _field(config, "effort", "output_config.", str)
        if effort is not None:
            _one_of(effort, "output_config.effort", ("low", "medium", "high", "xhigh", "max"))
        fmt = _field(config, "format", "output_config.", dict)
        if fmt is not None:
            _one_of(
                _field(fmt, "type", "output_config.format.", str, required=True),
                "output_config.format.type",
                ("json_schema",),
            )
            _field(fmt, "schema", "output_config.format.", dict, required=True)
    choice = _field(body, "tool_choice", "", dict)
    if choice is not None:
        kind = _field(choice, "type", "tool_choice.", str, required=True)
        _one_of(kind, "tool_choice.type", ("auto", "any", "tool", "none"))
        _field(choice, "name", "tool_choice.", str, required=kind == "tool")
        _field(choice, "disable_parallel_tool_use", "tool_choice.", bool)


def _block_type(block: Any, where: str) -> str:
    if not isinstance(block, dict):
        raise _bad(where, "Input should be a valid dictionary")
    kind: str = _field(block, "type", f"{where}.", str, required=True)
    return kind


def _text_block(block: Any, where: str) -> None:
    kind = _block_type(block, where)
    _one_of(kind, f"{where}.type", ("text",))
    _field(block, "text", f"{where}.", str, required=True)


def _content_block(block: Any, where: str, nested: bool = False) -> None:
    kind = _block_type(block, where)
    if kind == "text":
        _field(block, "text", f"{where}.", str, required=True)
    elif kind == "image":
        source = _field(block, "source", f"{where}.", dict, required=True)
        source_type = _field(source, "type", f"{where}.source.", str, required=True)
        _one_of(source_type, f"{where}.source.type", ("base64", "url"))
        if source_type == "base64":
            _field(source, "media_type", f"{where}.source.", str)
            _field(source, "data", f"{where}.source.", str, required=True)
        else:
            _field(source, "url", f"{where}.source.", str, required=True)
    elif kind == "document":
        source = _field(block, "source", f"{where}.", dict, required=True)
        source_type = _field(source, "type", f"{where}.source.", str, required=True)
        _one_of(source_type, f"{where}.source.type", ("base64", "text", "url", "content", "file"))
        if source_type in ("base64", "text"):
            _field(source, "media_type", f"{where}.source.", str)
            _field(source, "data", f"{where}.source.", str, required=True)
        _field(block, "title", f"{where}.", str)
    elif kind == "thinking" and not nested:
        _field(block, "thinking", f"{where}.", str, required=True)
        _field(block, "signature", f"{where}.", str, required=True)
    elif kind == "redacted_thinking" and not nested:
        _field(block, "data", f"{where}.", str, required=True)
    elif kind == "tool_use" and not nested:
        _field(block, "id", f"{where}.", str, required=True)
        _field(block, "name", f"{where}.", str, required=True)
        _field(block, "input", f"{where}.", dict)
    elif kind == "tool_result" and not nested:
        _field(block, "tool_use_id", f"{where}.", str, required=True)
        _field(block, "is_error", f"{where}.", bool)
        content = block.get("content")
        if isinstance(content, list):
            for k, inner in enumerate(content):
                _content_block(inner, f"{where}.content.{k}", nested=True)
        elif content is not None and not isinstance(content, str):
            raise _bad(f"{where}.content", "Input should be a valid string or a list of content blocks")


# -- translation ------------------------------------------------------------------------------------------


def to_openai(body: dict[str, Any], *, counting: bool = False) -> dict[str, Any]:
    """Translate an Anthropic Messages request body into an OpenAI chat completions body.

    ``counting``: the body of a token counting request (no ``max_tokens``, see
    :func:`validate_messages`); its translation has no ``max_tokens`` either.
    """
    validate_messages(body, counting=counting)
    model = body["model"]
    messages_in = body["messages"]

    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, list) and any(isinstance(b, dict) and "cache_control" in b for b in system):
        # Each block stays a part, so its prompt-cache breakpoint reaches an Anthropic upstream.
        messages.append({"role": "system", "content": [_text_part(b) for b in system]})
    elif system:
        messages.append({"role": "system", "content": _system_text(system)})
    for message in messages_in:
        content = message["content"]
        if message["role"] == "assistant":
            messages.append(_assistant(content))
        elif message["role"] == "system":
            # A system message mid-conversation (the SDK's SystemMessageParam) stays where it is.
            messages.append({"role": "system", "content": _system_text(content)})
        else:
            messages.extend(_user(content))

    out: dict[str, Any] = {"model": model, "messages": messages}
    if not counting:
        out["max_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    _reasoning(body, out)
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        out["user"] = user
    tools = body.get("tools")
    if tools:
        out["tools"] = [_tool(t) for t in tools]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "any":
            out["tool_choice"] = "required"
        elif kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        elif kind in ("auto", "none"):
            out["tool_choice"] = kind
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    return out


_EFFORT = {"low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "xhigh"}
"""``output_config.effort`` as OpenAI's ``reasoning_effort`` (``max`` has no equal: the highest)."""


def _reasoning(body: dict[str, Any], out: dict[str, Any]) -> None:
    """``thinking`` and ``output_config`` in the OpenAI body: ``effort`` as ``reasoning_effort``, a
    ``format`` as a strict ``json_schema`` response format, both also as they are (the Anthropic
    adapter sends them back verbatim, the others drop ``output_config``), and ``thinking`` (the adapters
    translate it: Anthropic sends it back verbatim, OpenAI reasoning models get ``reasoning_effort``,
    Gemini ``thinkingConfig``; elsewhere the capability check applies its policy)."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        out["thinking"] = thinking
    config = body.get("output_config")
    if not isinstance(config, dict):
        return
    out["output_config"] = config  # verbatim for an Anthropic upstream; translated below for the rest
    effort = config.get("effort")
    if isinstance(effort, str) and effort in _EFFORT:
        out["reasoning_effort"] = _EFFORT[effort]
    fmt = config.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt["schema"], "strict": True},
        }


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic tool as an OpenAI function tool; its prompt-cache marker rides along for an
    Anthropic upstream (OpenAI's own API is sent the tool without it)."""
    out: dict[str, Any] = {
        "type": "function",
        "function": {
            "name": tool["name"],
            "description": tool.get("description") or "",
            "parameters": tool.get("input_schema") or {"type": "object"},
        },
    }
    if isinstance(tool.get("cache_control"), dict):
        out["cache_control"] = tool["cache_control"]
    return out


def _text_part(block: dict[str, Any]) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "text", "text": block.get("text", "")}
    if isinstance(block.get("cache_control"), dict):
        part["cache_control"] = block["cache_control"]
    return part


def _assistant(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    for block in content or []:
        if block.get("type") in ("thinking", "redacted_thinking"):
            details.append(_reasoning_detail(block, len(details)))
        elif block.get("type") == "text":
            text.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    if details:
        # Claude's thinking blocks as the Anthropic adapter reads them back (other adapters drop them).
        message["reasoning_details"] = details
    return message


def _reasoning_detail(block: dict[str, Any], index: int) -> dict[str, Any]:
    if block["type"] == "thinking":
        entry = {"type": "reasoning.text", "text": block["thinking"], "signature": block["signature"]}
    else:
        entry = {"type": "reasoning.encrypted", "data": block["data"]}
    return {**entry, "format": REASONING_FORMAT, "index": index}


def claude_thinking(details: Any) -> list[dict[str, Any]]:
    """Claude's thinking blocks from a message's ``reasoning_details`` (pieces of one ``index``
    joined), in Anthropic's shape. Only Claude's own, signed: a ``thinking`` block needs the
    ``signature`` Claude issued, so another provider's reasoning text is left out rather than
    given a made-up one."""
    blocks: dict[Any, dict[str, Any]] = {}
    for k, detail in enumerate(details if isinstance(details, list) else ()):
        if not isinstance(detail, dict) or detail.get("format") != REASONING_FORMAT:
            continue
        key = detail.get("index", f"#{k}")
        if detail.get("type") == "reasoning.text":
            block = blocks.setdefault(key, {"type": "thinking", "thinking": "", "signature": ""})
            if block["type"] == "thinking":
                block["thinking"] += detail["text"] if isinstance(detail.get("text"), str) else ""
                block["signature"] += detail["signature"] if isinstance(detail.get("signature"), str) else ""
        elif detail.get("type") == "reasoning.encrypted" and isinstance(detail.get("data"), str):
            blocks.setdefault(key, {"type": "redacted_thinking", "data": detail["data"]})
    return [b for b in blocks.values() if b["type"] == "redacted_thinking" or b["signature"]]


def _user(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content or []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            result: dict[str, Any] = {
                "role": "tool",
                "tool_call_id": block.get("tool_use_id"),
                "content": _text_of(block.get("content")),
            }
            if isinstance(block.get("cache_control"), dict):
                result["content"] = [
                    {**_text_part({"text": result["content"]}), "cache_control": block["cache_control"]}
                ]
            if block.get("is_error") is True:
                result["is_error"] = True  # kept for an Anthropic upstream; the others say it in words
            results.append(result)
        elif kind == "text":
            parts.append(_text_part(block))
        elif kind == "image":
            image = _image_part(block)
            if isinstance(block.get("cache_control"), dict):
                image["cache_control"] = block["cache_control"]
            parts.append(image)
        elif kind == "document":
            parts.append(_document_part(block))
        else:
            raise InvalidRequest(f"Unsupported content block type {kind!r}.", param="messages")
    out = results
    if parts:
        only_text = all(p["type"] == "text" and "cache_control" not in p for p in parts)
        out.append({"role": "user", "content": "".join(p["text"] for p in parts) if only_text else parts})
    return out


def _usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") or 0
    written = details.get("cache_write_tokens") or 0
    out = {
        "input_tokens": int(usage.get("prompt_tokens") or 0) - int(cached) - int(written),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_read_input_tokens": int(cached),
        "cache_creation_input_tokens": int(written),
    }
    if "hedge_cost_usd" in usage:
        out["hedge_cost_usd"] = usage["hedge_cost_usd"]
    return out


def message_id(completion_id: Any) -> str:
    """An Anthropic message id for a completion id: ``chatcmpl-msg_01..`` (an Anthropic upstream's)
    is ``msg_01..`` again, never ``msg_msg_01..``; any other id gets the ``msg_`` prefix."""
    core = str(completion_id or "").removeprefix("chatcmpl-")
    return core if core.startswith("msg_") else f"msg_{core}"


def stop_of(choice: dict[str, Any], refused: bool = False) -> tuple[str, str | None]:
    """``stop_reason`` and ``stop_sequence`` for an OpenAI choice.

    A refusal is ``refusal``. A ``stop`` that a stop sequence caused is ``stop_sequence`` when the
    upstream said which sequence it was: the choice's ``stop_reason`` string (vLLM's field, which
    the Anthropic adapter fills from Anthropic's ``stop_sequence``); OpenAI and Gemini do not say.
    """
    finish = choice.get("finish_reason") or "stop"
    if refused:
        return "refusal", None
    matched = choice.get("stop_reason")
    if finish == "stop" and isinstance(matched, str) and matched:
        return "stop_sequence", matched
    return _FINISH.get(finish, "end_turn"), None


def to_anthropic(completion: dict[str, Any]) -> dict[str, Any]:
    """Translate an OpenAI chat completion into an Anthropic message."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = claude_thinking(message.get("reasoning_details"))
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        # OpenAI's refusal (structured outputs) is the answer the client must see, as Claude's is.
        content.append({"type": "text", "text": refusal})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            args = {"_raw": fn.get("arguments")}
        content.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": args})
    stop_reason, stop_sequence = stop_of(choice, isinstance(refusal, str) and bool(refusal))
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": _usage(completion.get("usage")),
    }


class AnthropicEvents:
    """Turns OpenAI stream chunks into Anthropic stream events, block by block."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self.block = -1
        self.block_kind: str | None = None
        self.tool_blocks: dict[int, int] = {}
        self.thinking_blocks: dict[Any, int] = {}
        """``reasoning_details`` index -> the thinking block streaming it."""
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.refused = False
        self.start_usage: dict[str, Any] | None = None
        """The OpenAI usage known when the stream starts (the upstream's prompt count, or the
        gateway's estimate), for ``message_start``: Anthropic clients read the input tokens there."""

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        self.started = True
        usage = _usage(self.start_usage)
        message: dict[str, Any] = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": min(usage["output_tokens"], 1)},
        }
        return [frame_event("message_start", {"type": "message_start", "message": message})]

    def _close_block(self) -> list[bytes]:
        if self.block_kind is None:
            return []
        self.block_kind = None
        return [frame_event("content_block_stop", {"type": "content_block_stop", "index": self.block})]

    def _open_block(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        out = self._close_block()
        self.block += 1
        self.block_kind = kind
        event = {"type": "content_block_start", "index": self.block, "content_block": block}
        out.append(frame_event("content_block_start", event))
        return out

    def chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        out = [] if self.started else self._start(chunk)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            for detail in delta.get("reasoning_details") or ():
                out += self._thinking(detail)
            text = delta.get("content")
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                self.refused = True
                text = refusal
            if text:
                if self.block_kind != "text":
                    out += self._open_block("text", {"type": "text", "text": ""})
                event = {
                    "type": "content_block_delta",
                    "index": self.block,
                    "delta": {"type": "text_delta", "text": text},
                }
                out.append(frame_event("content_block_delta", event))
            for call in delta.get("tool_calls") or []:
                index = int(call.get("index", 0))
                fn = call.get("function") or {}
                if index not in self.tool_blocks:
                    out += self._open_block(
                        "tool",
                        {"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": {}},
                    )
                    self.tool_blocks[index] = self.block
                if fn.get("arguments"):
                    event = {
                        "type": "content_block_delta",
                        "index": self.tool_blocks[index],
                        "delta": {"type": "input_json_delta", "partial_json": fn["arguments"]},
                    }
                    out.append(frame_event("content_block_delta", event))
            if choice.get("finish_reason"):
                self.stop_reason, self.stop_sequence = stop_of(choice, self.refused)
        if chunk.get("usage") and not chunk.get("choices"):
            out += self.finish(chunk["usage"])
        return out

    def _thinking(self, detail: Any) -> list[bytes]:
        """A ``reasoning_details`` delta of Claude's as ``thinking_delta`` / ``signature_delta`` (or a
        whole ``redacted_thinking`` block); other providers' reasoning has no signature and is left out."""
        if not isinstance(detail, dict) or detail.get("format") != REASONING_FORMAT:
            return []
        key = detail.get("index")
        out: list[bytes] = []
        if detail.get("type") == "reasoning.encrypted" and isinstance(detail.get("data"), str):
            out += self._open_block("redacted", {"type": "redacted_thinking", "data": detail["data"]})
            return out + self._close_block()
        if detail.get("type") != "reasoning.text":
            return []
        if key not in self.thinking_blocks or self.block_kind != "thinking":
            out += self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            self.thinking_blocks[key] = self.block
        index = self.thinking_blocks[key]
        if isinstance(detail.get("text"), str) and detail["text"]:
            delta = {"type": "thinking_delta", "thinking": detail["text"]}
            out.append(
                frame_event(
                    "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                )
            )
        if isinstance(detail.get("signature"), str) and detail["signature"]:
            delta = {"type": "signature_delta", "signature": detail["signature"]}
            out.append(
                frame_event(
                    "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                )
            )
        return out

    def finish(self, usage: dict[str, Any] | None) -> list[bytes]:
        out = self._close_block()
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": "refusal" if self.refused else self.stop_reason or "end_turn",
                "stop_sequence": self.stop_sequence,
            },
        }
        delta["usage"] = _usage(usage)
        out.append(frame_event("message_delta", delta))
        out.append(frame_event("message_stop", {"type": "message_stop"}))
        return out

    def error(self, status: int, message: str) -> list[bytes]:
        return [frame_event("error", error_body(status, message))]
