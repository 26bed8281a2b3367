"""Inbound Anthropic Messages: clients speaking Anthropic's API, routed like any OpenAI request.

The reverse of ``anthropic.py``: an Anthropic ``POST /v1/messages`` body becomes
an OpenAI chat body (so routing, failover and cost work unchanged and any
provider can serve it), and the OpenAI answer, whole or streamed, becomes an
Anthropic message or event stream.
"""

from __future__ import annotations

from typing import Any

import orjson

from hedge.errors import InvalidRequest
from hedge.providers.sse import frame_event

_FINISH = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _image_part(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        raise InvalidRequest("Unsupported image source type.", param="messages")
    return {"type": "image_url", "image_url": {"url": url}}


def to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """Translate an Anthropic Messages request body into an OpenAI chat completions body."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required", param="model")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Field required (an integer >= 1)", param="max_tokens")
    messages_in = body.get("messages")
    if not isinstance(messages_in, list) or not messages_in:
        raise InvalidRequest("messages: Field required (a non-empty array)", param="messages")

    for field, expected, name in (("metadata", dict, "an object"), ("tools", list, "an array")):
        if body.get(field) is not None and not isinstance(body[field], expected):
            raise InvalidRequest(f"{field}: Input should be {name}", param=field)
    if body.get("system") is not None and not isinstance(body["system"], str | list):
        raise InvalidRequest("system: Input should be a string or an array of text blocks", param="system")

    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text_of(system)})
    for i, message in enumerate(messages_in):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(
                f"messages.{i}.role: must be 'user' or 'assistant'", param=f"messages.{i}.role"
            )
        content = message.get("content")
        if not isinstance(content, str) and not (
            isinstance(content, list) and all(isinstance(b, dict) for b in content)
        ):
            raise InvalidRequest(
                f"messages.{i}.content: Input should be a string or an array of content blocks",
                param=f"messages.{i}.content",
            )
        if message["role"] == "assistant":
            messages.append(_assistant(content))
        else:
            messages.extend(_user(content))

    out: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    for src, dst in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k")):
        if body.get(src) is not None:
            out[dst] = body[src]
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
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {"type": "object"},
                },
            }
            for t in tools
            if isinstance(t, dict) and t.get("name")
        ]
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


def _assistant(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text, calls = [], []
    for block in content or []:
        if block.get("type") == "text":
            text.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input", {})).decode(),
                    },
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _user(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content or []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            results.append(
                {
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id"),
                    "content": _text_of(block.get("content")),
                }
            )
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(_image_part(block))
        else:
            raise InvalidRequest(f"Unsupported content block type {kind!r}.", param="messages")
    out = results
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "".join(p["text"] for p in parts) if only_text else parts})
    return out


def _usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    cached = ((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0
    out = {
        "input_tokens": int(usage.get("prompt_tokens") or 0) - int(cached),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_read_input_tokens": int(cached),
        "cache_creation_input_tokens": 0,
    }
    if "hedge_cost_usd" in usage:
        out["hedge_cost_usd"] = usage["hedge_cost_usd"]
    return out


def to_anthropic(completion: dict[str, Any]) -> dict[str, Any]:
    """Translate an OpenAI chat completion into an Anthropic message."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            args = {"_raw": fn.get("arguments")}
        content.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": args})
    return {
        "id": "msg_" + str(completion.get("id", "")).removeprefix("chatcmpl-"),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": content,
        "stop_reason": _FINISH.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
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
        self.stop_reason: str | None = None

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        self.started = True
        message: dict[str, Any] = {
            "id": "msg_" + str(chunk.get("id", "")).removeprefix("chatcmpl-"),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
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
            text = delta.get("content")
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
                self.stop_reason = _FINISH.get(choice["finish_reason"], "end_turn")
        if chunk.get("usage") and not chunk.get("choices"):
            out += self.finish(chunk["usage"])
        return out

    def finish(self, usage: dict[str, Any] | None) -> list[bytes]:
        out = self._close_block()
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason or "end_turn", "stop_sequence": None},
        }
        delta["usage"] = _usage(usage)
        out.append(frame_event("message_delta", delta))
        out.append(frame_event("message_stop", {"type": "message_stop"}))
        return out

    def error(self, status: int, message: str) -> list[bytes]:
        return [frame_event("error", error_body(status, message))]
