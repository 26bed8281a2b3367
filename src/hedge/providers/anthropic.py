"""Anthropic Messages API upstreams (``POST {base_url}/v1/messages``).

Request translation (OpenAI chat completions -> Messages):

* ``system`` / ``developer`` messages become the top-level ``system`` string
  (joined with blank lines, in order);
* consecutive messages of the same role are merged into one turn, tool
  results (role ``tool``) become ``tool_result`` blocks of a user turn (placed
  first in that turn, as Anthropic requires) and assistant ``tool_calls``
  become ``tool_use`` blocks, with ids Anthropic would refuse (another provider's)
  replaced by stable valid ones (:mod:`hedge.providers.ids`) and other providers'
  ``extra_content`` left behind;
* ``max_completion_tokens`` / ``max_tokens`` (required by Anthropic) default to
  the provider's ``default_max_tokens``; ``stop`` becomes ``stop_sequences``;
  ``temperature`` is clamped to Anthropic's maximum of 1.0;
* ``tools``, ``tool_choice`` and ``parallel_tool_calls`` map onto Anthropic's
  tools, ``tool_choice`` and ``disable_parallel_tool_use``;
* image parts become ``image`` blocks (base64 for data URLs, ``url`` sources
  otherwise) and PDF ``file`` parts become ``document`` blocks;
* ``user`` (or ``safety_identifier``) becomes ``metadata.user_id``.

Anthropic has no ``response_format``: JSON mode is honoured by instruction
(see :func:`json_instruction`). The model is asked in the system prompt to
answer with one JSON object (conforming to the schema, for ``json_schema``);
nothing enforces it, so a schema is best effort, not a guarantee.

The same translation serves the token counting API (``POST {base_url}/v1/messages/count_tokens``,
for the ``/v1/messages/count_tokens`` face): the Messages request without its generation
settings, so the count is that of the request ``/v1/messages`` would send.

Responses and streams are translated back to OpenAI chat completions; the
prompt tokens reported to clients include cache reads and cache writes, as
OpenAI's ``prompt_tokens`` includes cached tokens.

Thinking: when the client asked for reasoning (``reasoning_effort`` other than ``none``, or a
``thinking`` object), the thinking text reaches it as ``message.reasoning_content`` (streamed as
``delta.reasoning_content``, the field DeepSeek, vLLM and OpenRouter-compatible clients read) and
every thinking block whole, with its ``signature``, as ``message.reasoning_details`` in OpenRouter's
shape (``reasoning.text`` / ``reasoning.encrypted`` for redacted thinking, ``format:
"anthropic-claude-v1"``; streamed as OpenRouter streams them, deltas of one ``index`` to
concatenate, the signature last). Claude refuses a tool result after a thinking + tool_use turn
whose thinking block is missing, so an assistant message sent back with those details gets its
thinking blocks back first in the turn; a client that rebuilt the message without them finds them in
:data:`hedge.providers.signatures.THINKING`, keyed by the turn's first tool call id. They are sent
only while this request thinks too, and other adapters drop them (:mod:`hedge.providers.ids`). The
``/v1/messages`` face turns ``reasoning_details`` back into thinking blocks
(:mod:`hedge.providers.anthropic_inbound`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from hedge.config import ProviderConfig
from hedge.errors import InvalidRequest, UpstreamError
from hedge.providers import families
from hedge.providers.anthropic_inbound import claude_thinking
from hedge.providers.base import (
    MAX_TOKENS,
    Capabilities,
    Translated,
    UpstreamRequest,
    Usage,
    thinking_requested,
    tier_name,
    token_count,
)
from hedge.providers.errors import load_object, upstream_error
from hedge.providers.ids import REASONING_FORMAT, portable_call_id
from hedge.providers.signatures import THINKING
from hedge.providers.sse import DEFAULT_MAX_EVENT_BYTES, Event, SSETranslator, frame
from hedge.wire.anthropic import FINISH_BY_STOP

ANTHROPIC_VERSION = "2023-06-01"
MAX_TEMPERATURE = 1.0

FINISH_REASONS = FINISH_BY_STOP

_IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
_COUNTED = ("model", "system", "messages", "tools", "tool_choice")
"""What a token counting request keeps of a Messages request (its other fields are refused there)."""
_SERVICE_TIERS: dict[Any, str] = {"auto": "auto", "priority": "auto", "default": "standard_only"}
"""OpenAI's ``service_tier`` as Anthropic's: priority capacity is used under ``auto`` when available."""


def matched_stop(stop_reason: Any, stop_sequence: Any) -> dict[str, str]:
    """``{"stop_reason": <sequence>}`` when a stop sequence ended the answer, else ``{}``.

    OpenAI's chat completions cannot say which sequence matched; ``stop_reason`` on the choice is
    the field OpenAI-compatible servers (vLLM) use for it, and the ``/v1/messages`` face reads it
    back into Anthropic's ``stop_reason: "stop_sequence"`` with its ``stop_sequence``.
    """
    if stop_reason == "stop_sequence" and isinstance(stop_sequence, str) and stop_sequence:
        return {"stop_reason": stop_sequence}
    return {}


def empty_answer(provider: str) -> UpstreamError:
    """``end_turn`` with no content block at all: nothing to answer with (Claude does this, e.g. after
    a tool result followed by text). A retryable 502 that fails over and does not count against the
    deployment's health, as a failed Gemini generation is; an answer a stop sequence cut to nothing
    ends with ``stop_sequence`` instead and is an answer."""
    return UpstreamError(
        f"provider '{provider}' ended its turn (end_turn) without any content",
        status=502,
        upstream_status=200,
        code="upstream_failed_generation",
        blame=False,
    )


def finish_reason(stop_reason: Any) -> str:
    """OpenAI's ``finish_reason`` for an Anthropic ``stop_reason`` (unknown reasons read as ``stop``)."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


class AnthropicAdapter:
    style: ClassVar[str] = "anthropic"
    capabilities: ClassVar[Capabilities] = Capabilities(
        tools=True,
        parallel_tool_calls=True,
        vision=True,
        json_mode=True,
        json_schema=True,  # by instruction only: see the module docstring
        max_stop_sequences=16,  # Anthropic documents no limit; 16 keeps requests reasonable
        n=False,
        logprobs=False,
        seed=False,
        penalties=False,
        logit_bias=False,
        embeddings=False,
        # Anthropic's service_tier: "auto" (Priority Tier capacity when the organisation has it) or
        # "standard_only"; OpenAI's "flex" and "scale" have no counterpart.
        service_tiers=frozenset({"auto", "default", "priority"}),
        cache_markers=True,
    )

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config
        self.base_url = config.base_url
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if config.api_key:
            headers["x-api-key"] = config.api_key
        headers.update(config.headers)
        self._headers = headers

    # -- requests ---------------------------------------------------------------------------------

    def chat_request(
        self, body: dict[str, Any], model: str, stream: bool, want_usage: bool
    ) -> UpstreamRequest:
        out = self._message_request(body, model)
        if stream:
            out["stream"] = True
        asked = _Asked(thinking_requested(body))
        url = f"{self.base_url}/v1/messages"
        return UpstreamRequest(url, orjson.dumps(out), self._headers, context=asked)

    def count_tokens_request(self, body: dict[str, Any], model: str) -> UpstreamRequest:
        """``POST /v1/messages/count_tokens`` for a chat body: the Messages request :meth:`chat_request`
        would send, without the generation settings the token counting API refuses (``max_tokens``,
        ``stop_sequences``, ``temperature``, ``top_p``, ``metadata``, ``stream``)."""
        message = self._message_request(body, model)
        out = {name: message[name] for name in _COUNTED if name in message}
        return UpstreamRequest(f"{self.base_url}/v1/messages/count_tokens", orjson.dumps(out), self._headers)

    def count_tokens_response(self, raw: bytes) -> int:
        """The ``input_tokens`` of a token counting answer; anything else is the upstream's fault (502)."""
        data = load_object(raw, self.name)
        count = data.get("input_tokens")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_TOKENS:
            raise UpstreamError(
                f"provider '{self.name}' sent a token count without valid input_tokens: {str(data)[:200]}",
                status=502,
                upstream_status=200,
                code="upstream_bad_response",
            )
        return count

    def _message_request(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        """The Messages request body (without ``stream``) for a client's chat body."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("'messages' must be a non-empty array", param="messages")
        thinking, effort = thinking_of(body, model)
        thinks = thinking is not None and thinking.get("type") != "disabled"
        system, turns = translate_messages(messages, thinking=thinks)
        given = body.get("output_config")
        output_format = native_format(body.get("response_format"), model)
        native = output_format is not None or (isinstance(given, dict) and "format" in given)
        instruction = None if native else json_instruction(body.get("response_format"))
        if instruction:
            system.append({"type": "text", "text": instruction})

        max_tokens = body.get("max_completion_tokens")
        if max_tokens is None:
            max_tokens = body.get("max_tokens")
        out: dict[str, Any] = {
            "model": model,
            "max_tokens": self.config.default_max_tokens if max_tokens is None else max_tokens,
            "messages": turns,
        }
        if system:
            out["system"] = _system_field(system)

        stop = body.get("stop")
        if isinstance(stop, str):
            out["stop_sequences"] = [stop]
        elif isinstance(stop, list) and stop:
            out["stop_sequences"] = list(stop)

        temperature = body.get("temperature")
        if isinstance(temperature, int | float) and not isinstance(temperature, bool):
            out["temperature"] = min(float(temperature), MAX_TEMPERATURE)
        if body.get("top_p") is not None:
            out["top_p"] = body["top_p"]
        if body.get("top_k") is not None:
            out["top_k"] = body["top_k"]

        tools = translate_tools(body.get("tools"))
        if tools:
            out["tools"] = tools
            choice = translate_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
            if choice is not None:
                out["tool_choice"] = choice

        user = body.get("user") or body.get("safety_identifier")
        if isinstance(user, str) and user:
            out["metadata"] = {"user_id": user}
        tier = _SERVICE_TIERS.get(body.get("service_tier"))
        if tier is not None:
            out["service_tier"] = tier

        if isinstance(given, dict):
            # An Anthropic client's own output_config (from /v1/messages): sent as it is, and
            # thinking only as it asked for it.
            out["output_config"] = dict(given)
            if isinstance(body.get("thinking"), dict):
                out["thinking"] = dict(body["thinking"])
            return out
        config: dict[str, Any] = {}
        if thinking is not None:
            out["thinking"] = thinking
            budget = thinking.get("budget_tokens")
            if isinstance(budget, int) and "budget_tokens" not in (body.get("thinking") or {}):
                out["max_tokens"], thinking["budget_tokens"] = _room_for(
                    budget, max_tokens, out["max_tokens"]
                )
        if effort is not None:
            config["effort"] = effort
        if output_format is not None:
            config["format"] = output_format
        if config:
            out["output_config"] = config
        return out

    # -- responses --------------------------------------------------------------------------------

    def chat_response(self, raw: bytes, request: UpstreamRequest) -> Translated:
        data = load_object(raw, self.name)
        if data.get("type") == "error" or not isinstance(data.get("content"), list):
            detail = _error_fields(data)[1] or str(data)[:300]
            raise UpstreamError(
                f"provider '{self.name}' answered 200 without a message: {detail}",
                status=502,
                upstream_status=200,
                code="upstream_bad_response",
            )
        if not data["content"] and data.get("stop_reason") == "end_turn":
            raise empty_answer(self.name)
        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        thought = 0
        details: list[dict[str, Any]] = []
        for block in data["content"]:
            if not isinstance(block, dict):
                continue
            if block.get("type") in ("thinking", "redacted_thinking"):
                thought += len(str(block.get("thinking") or ""))
                entry = reasoning_detail(block, len(details))
                if entry is not None:
                    details.append(entry)
            elif block.get("type") == "text":
                texts.append(str(block.get("text") or ""))
            elif block.get("type") == "tool_use":
                tool_calls.append(
                    {
                        "id": block.get("id"),
                        "type": "function",
                        "function": {
                            "name": block.get("name"),
                            "arguments": orjson.dumps(block.get("input") or {}).decode(),
                        },
                    }
                )
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(texts) if texts else None,
            "refusal": None,
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        if details and _asked(request):
            message["reasoning_content"] = reasoning_text(details)
            message["reasoning_details"] = details
            if tool_calls and isinstance(tool_calls[0]["id"], str):
                THINKING.issued(tool_calls[0]["id"], orjson.dumps(details).decode())
        usage = usage_from_anthropic(data.get("usage"))
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason(data.get("stop_reason")),
        }
        choice.update(matched_stop(data.get("stop_reason"), data.get("stop_sequence")))
        out = {
            "id": f"chatcmpl-{data.get('id', '')}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": data.get("model"),
            "choices": [choice],
            "usage": openai_usage(usage, reasoning_estimate(thought, usage)),
        }
        return Translated(orjson.dumps(out), usage)

    def stream_translator(
        self, model: str, want_usage: bool, request: UpstreamRequest | None = None
    ) -> AnthropicStream:
        asked = request is not None and _asked(request)
        return AnthropicStream(self.name, model, self.config.max_event_bytes, reasoning=asked)

    def embeddings_request(self, body: dict[str, Any], model: str) -> UpstreamRequest:
        raise InvalidRequest(
            f"provider '{self.name}' (Anthropic) has no embeddings API", code="embeddings_unsupported"
        )

    def embeddings_response(self, raw: bytes, request: UpstreamRequest) -> Translated:
        raise InvalidRequest(
            f"provider '{self.name}' (Anthropic) has no embeddings API", code="embeddings_unsupported"
        )

    def error(self, status: int, headers: dict[str, str], raw: bytes) -> UpstreamError:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            etype, message = _error_fields(data)
            if message and etype:
                message = f"{etype}: {message}"
            elif etype:
                message = etype
        else:
            message = raw[:300].decode("utf-8", "replace").strip() or None
        return upstream_error(self.name, status, headers, message)


# -- request translation helpers ------------------------------------------------------------------


def translate_messages(
    messages: list[Any], thinking: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split OpenAI messages into system text blocks and alternating Anthropic turns (new objects only).

    A system part's ``cache_control`` stays on its block, so a prompt-cache breakpoint set on the
    system prompt reaches Anthropic."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{param} must be an object", param=param)
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_system_blocks(content, f"{param}.content"))
        elif role == "user":
            push("user", _content_blocks(content, f"{param}.content"))
        elif role == "assistant":
            blocks = thinking_blocks(message) if thinking else []
            blocks.extend(_content_blocks(content, f"{param}.content", assistant=True))
            blocks.extend(_tool_use_blocks(message.get("tool_calls"), f"{param}.tool_calls"))
            push("assistant", blocks)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"{param}.tool_call_id is required", param=f"{param}.tool_call_id")
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": portable_call_id(call_id, strict=True),
            }
            text = _plain_text(content, f"{param}.content")
            if text:
                block["content"] = text
            if message.get("is_error") is True:
                block["is_error"] = True
            marker = _cache_marker(content)
            if marker is not None:
                block["cache_control"] = marker
            push("user", [block])
        else:
            raise InvalidRequest(f"{param}.role {role!r} is not supported", param=f"{param}.role")

    for turn in turns:
        blocks = turn["content"]
        if turn["role"] == "user" and any(b["type"] == "tool_result" for b in blocks):
            # Anthropic wants the tool results first in the turn that answers a tool call.
            blocks.sort(key=lambda b: b["type"] != "tool_result")
    if turns and turns[-1]["role"] == "assistant":
        # A final assistant turn is a prefill, which may not end with whitespace.
        last = turns[-1]["content"]
        if last[-1]["type"] == "text":
            last[-1]["text"] = last[-1]["text"].rstrip()
            if not last[-1]["text"]:
                last.pop()
            if not last:
                turns.pop()
    for turn in turns:
        blocks = turn["content"]
        if len(blocks) == 1 and blocks[0]["type"] == "text" and "cache_control" not in blocks[0]:
            turn["content"] = blocks[0]["text"]
    return system, turns


def _system_blocks(content: Any, param: str) -> list[dict[str, Any]]:
    """A system message as text blocks: one (its parts joined) unless a part carries a
    ``cache_control``, then one per part, so each breakpoint stays where the client put it."""
    if _cache_marker(content) is None:
        text = _plain_text(content, param)
        return [{"type": "text", "text": text}] if text else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        text = _plain_text([part], param)
        if not text:
            continue
        block: dict[str, Any] = {"type": "text", "text": text}
        marker = _cache_marker([part])
        if marker is not None:
            block["cache_control"] = marker
        blocks.append(block)
    return blocks


def _system_field(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """``system`` as a string (texts joined by blank lines), or as blocks when one carries a cache marker."""
    if any("cache_control" in b for b in blocks):
        return blocks
    return "\n\n".join(b["text"] for b in blocks)


def _cache_marker(content: Any) -> dict[str, Any] | None:
    """The last ``cache_control`` among a message's parts (a breakpoint covers everything before it)."""
    marker = None
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict) and isinstance(part.get("cache_control"), dict):
            marker = dict(part["cache_control"])
    return marker


def _plain_text(content: Any, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type") in ("text", "refusal"):
                parts.append(str(part.get("text") or part.get("refusal") or ""))
            else:
                raise InvalidRequest(f"{param} may only contain text here", param=param)
        return "".join(parts)
    raise InvalidRequest(f"{param} must be a string or an array of content parts", param=param)


def _content_blocks(content: Any, param: str, assistant: bool = False) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{param} must be a string or an array of content parts", param=param)
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        if not isinstance(part, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        kind = part.get("type")
        block: dict[str, Any]
        if kind in ("text", "refusal"):
            text = str(part.get("text") or part.get("refusal") or "")
            if not text:
                continue
            block = {"type": "text", "text": text}
        elif kind == "image_url" and not assistant:
            block = _image_block(part.get("image_url"), where)
        elif kind == "file" and not assistant:
            block = _document_block(part.get("file"), where)
        else:
            raise InvalidRequest(f"{where}: content part type {kind!r} is not supported here", param=where)
        if isinstance(part.get("cache_control"), dict):
            block["cache_control"] = dict(part["cache_control"])
        blocks.append(block)
    return blocks


def _split_data_url(url: str, where: str) -> tuple[str, str]:
    header, sep, data = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise InvalidRequest(f"{where}: only base64 data URLs are supported", param=where)
    return header[len("data:") :].split(";")[0].lower(), data


def _image_block(image: Any, where: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{where}.image_url.url is required", param=where)
    if url.startswith("data:"):
        media_type, data = _split_data_url(url, where)
        if media_type not in _IMAGE_TYPES:
            raise InvalidRequest(
                f"{where}: image type {media_type!r} is not supported (use jpeg, png, gif or webp)",
                param=where,
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(f"{where}: image URL must be a data: or http(s) URL", param=where)


def _document_block(file: Any, where: str) -> dict[str, Any]:
    data_url = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data_url, str) or not data_url.startswith("data:"):
        raise InvalidRequest(f"{where}: only inline PDF files (file.file_data) are supported", param=where)
    media_type, data = _split_data_url(data_url, where)
    if media_type != "application/pdf":
        raise InvalidRequest(f"{where}: file type {media_type!r} is not supported (PDF only)", param=where)
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _tool_use_blocks(tool_calls: Any, param: str) -> list[dict[str, Any]]:
    if not tool_calls:
        return []
    if not isinstance(tool_calls, list):
        raise InvalidRequest(f"{param} must be an array", param=param)
    blocks: list[dict[str, Any]] = []
    for k, call in enumerate(tool_calls):
        where = f"{param}[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(call.get("id"), str):
            raise InvalidRequest(f"{where} needs an id and a function", param=where)
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            parsed: Any = arguments
        elif not arguments:
            parsed = {}
        else:
            try:
                parsed = orjson.loads(arguments)
            except (orjson.JSONDecodeError, TypeError):
                raise InvalidRequest(
                    f"{where}.function.arguments is not valid JSON", param=f"{where}.function.arguments"
                ) from None
        if not isinstance(parsed, dict):
            raise InvalidRequest(
                f"{where}.function.arguments must be a JSON object", param=f"{where}.function.arguments"
            )
        call_id = portable_call_id(call["id"], strict=True)
        blocks.append({"type": "tool_use", "id": call_id, "name": function.get("name"), "input": parsed})
    return blocks


def translate_tools(tools: Any) -> list[dict[str, Any]]:
    if not tools:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array", param="tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not function:
            raise InvalidRequest(f"tools[{i}]: only function tools are supported", param=f"tools[{i}]")
        entry: dict[str, Any] = {"name": function.get("name")}
        if function.get("description"):
            entry["description"] = function["description"]
        entry["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
        if isinstance(tool.get("cache_control"), dict):
            entry["cache_control"] = dict(tool["cache_control"])  # a breakpoint after the tools
        out.append(entry)
    return out


def translate_tool_choice(choice: Any, parallel_tool_calls: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None
    if choice is None or choice == "auto":
        out = {"type": "auto"} if choice == "auto" or parallel_tool_calls is False else None
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise InvalidRequest(f"tool_choice {choice!r} is not supported", param="tool_choice")
    if out is not None and parallel_tool_calls is False:
        out["disable_parallel_tool_use"] = True
    return out


@dataclass(slots=True, frozen=True)
class _Asked:
    """What the answer to a request needs from it: whether the client asked for reasoning."""

    reasoning: bool


def _asked(request: UpstreamRequest) -> bool:
    context = request.context
    return isinstance(context, _Asked) and context.reasoning


def reasoning_detail(block: dict[str, Any], index: int) -> dict[str, Any] | None:
    """A ``thinking`` / ``redacted_thinking`` block as an OpenRouter ``reasoning_details`` entry."""
    if block.get("type") == "thinking":
        detail: dict[str, Any] = {"type": "reasoning.text", "text": str(block.get("thinking") or "")}
        if isinstance(block.get("signature"), str):
            detail["signature"] = block["signature"]
    elif block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str):
        detail = {"type": "reasoning.encrypted", "data": block["data"]}
    else:
        return None
    detail["format"] = REASONING_FORMAT
    detail["index"] = index
    return detail


def reasoning_text(details: list[dict[str, Any]]) -> str:
    """``reasoning_content``: the thinking text; redacted thinking is not text and is left out."""
    return "".join(str(d.get("text") or "") for d in details if d.get("type") == "reasoning.text")


def thinking_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The thinking blocks an assistant message came with (its ``reasoning_details`` in Claude's
    format, else what the gateway kept for its first tool call), as Anthropic wants them back."""
    details = message.get("reasoning_details")
    if not isinstance(details, list):
        details = None
        calls = message.get("tool_calls")
        first = calls[0] if isinstance(calls, list) and calls and isinstance(calls[0], dict) else None
        kept = THINKING.recall(first["id"]) if first and isinstance(first.get("id"), str) else None
        if kept is not None:
            details = orjson.loads(kept)
    return claude_thinking(details)


_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
"""``reasoning_effort`` as an extended-thinking ``budget_tokens`` (Anthropic's minimum is 1024)."""
_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh"}
"""``reasoning_effort`` as ``output_config.effort`` (Claude's levels: low, medium, high, xhigh, max)."""
MIN_BUDGET = 1024


def thinking_of(body: dict[str, Any], model: str) -> tuple[dict[str, Any] | None, str | None]:
    """Anthropic's ``thinking`` and ``output_config.effort`` for a request.

    A ``thinking`` object (from an Anthropic client, or an OpenAI client's extra body) is sent as it
    is. ``reasoning_effort`` becomes adaptive thinking with that effort on Claude 4.6 and later, and
    an extended-thinking budget on 3.7 to 4.5; ``none`` sends nothing (no thinking). The capability
    check has refused (or dropped) ``reasoning_effort`` for a Claude model that cannot think."""
    thinking = body.get("thinking")
    effort = body.get("reasoning_effort")
    level = _EFFORTS.get(effort) if isinstance(effort, str) else None
    kind = families.claude_thinking(model)
    if isinstance(thinking, dict):
        return dict(thinking), level if families.claude_effort(model) else None
    if level is None or kind == "none":
        return None, None
    if kind == "adaptive":
        return {"type": "adaptive"}, level
    return {"type": "enabled", "budget_tokens": _BUDGETS[str(effort)]}, None


def _room_for(budget: int, asked: Any, max_tokens: int) -> tuple[int, int]:
    """``(max_tokens, budget_tokens)`` for a thinking budget: Anthropic counts thinking in ``max_tokens``
    and wants the budget below it. Without a client limit the answer keeps the default room on top of
    the budget; with one, the budget shrinks to fit it, down to Anthropic's minimum of 1024."""
    if asked is None:
        return max_tokens + budget, budget
    if max_tokens <= MIN_BUDGET:
        raise InvalidRequest(
            f"reasoning_effort needs max_completion_tokens above {MIN_BUDGET} on Claude (thinking takes at "
            f"least {MIN_BUDGET} tokens of the limit); got {max_tokens}.",
            param="max_completion_tokens",
            code="invalid_value",
        )
    return max_tokens, min(budget, max_tokens - 1)


def native_format(response_format: Any, model: str) -> dict[str, Any] | None:
    """``output_config.format`` for a strict ``json_schema`` on a Claude model with native structured
    output (4.5 and later); None where the system instruction stands in for it."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if (
        not isinstance(spec, dict)
        or spec.get("strict") is not True
        or not isinstance(spec.get("schema"), dict)
    ):
        return None
    if not families.claude_structured_output(model):
        return None
    return {"type": "json_schema", "schema": spec["schema"]}


def json_instruction(response_format: Any) -> str | None:
    """The system instruction standing in for OpenAI's ``response_format`` (Anthropic has none)."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    text = (
        "Respond with a single valid JSON object and nothing else: "
        "no explanation, no Markdown, no code fences."
    )
    if kind == "json_object":
        return text
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if schema:
            return f"{text} The object must conform to this JSON schema:\n{orjson.dumps(schema).decode()}"
        return text
    return None


# -- response helpers -----------------------------------------------------------------------------


def usage_from_anthropic(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    cache_read = token_count(data.get("cache_read_input_tokens"))
    cache_write = token_count(data.get("cache_creation_input_tokens"))
    return Usage(
        prompt_tokens=token_count(data.get("input_tokens")) + cache_read + cache_write,
        completion_tokens=token_count(data.get("output_tokens")),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
        service_tier=tier_name(data.get("service_tier")),
    )


def reasoning_estimate(thinking_chars: int, usage: Usage | None) -> int:
    """The thinking tokens of an answer: Anthropic counts them in ``output_tokens`` but not apart, so
    this is an estimate from the thinking text (four characters a token, at most the output)."""
    if not thinking_chars:
        return 0
    return min((thinking_chars + 3) // 4, usage.completion_tokens if usage is not None else 0)


def openai_usage(usage: Usage | None, reasoning_tokens: int = 0) -> dict[str, Any] | None:
    """OpenAI's usage object; ``prompt_tokens_details.cache_write_tokens`` is the part of the prompt
    written to Anthropic's prompt cache (priced apart), as OpenRouter reports it."""
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


def _error_fields(data: dict[str, Any]) -> tuple[str | None, str | None]:
    err = data.get("error")
    if isinstance(err, dict):
        etype, message = err.get("type"), err.get("message")
        return (str(etype) if etype else None, str(message) if message else None)
    if isinstance(err, str):
        return None, err
    return None, None


# -- streaming ------------------------------------------------------------------------------------


class AnthropicStream(SSETranslator):
    """Translates a Messages event stream into OpenAI ``chat.completion.chunk`` events."""

    def __init__(
        self,
        provider: str,
        model: str,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        reasoning: bool = False,
    ) -> None:
        super().__init__(provider, max_event_bytes)
        self._reasoning = reasoning
        """The client asked for reasoning: thinking is streamed as ``reasoning_content`` and as
        ``reasoning_details`` deltas (see :meth:`_block_delta`)."""
        self._thinking: dict[int, tuple[int, dict[str, Any]]] = {}
        """Anthropic content-block index -> (``reasoning_details`` index, the block so far)."""
        self._details: list[dict[str, Any]] = []
        self._first_call: str | None = None
        self._id = "chatcmpl-"
        self._model = model
        self._created = int(time.time())
        self._started = False
        self._finish_sent = False
        self._blocks = 0
        self._raw_usage: dict[str, Any] = {}
        self._thought = 0
        # Anthropic content-block index -> [OpenAI tool_call index, arguments sent?, input at block start]
        self._tools: dict[int, list[Any]] = {}

    def _chunk(
        self, delta: dict[str, Any], finish: str | None = None, extra: dict[str, str] | None = None
    ) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish, **(extra or {})}
        return frame(self._base() | {"choices": [choice]})

    def _base(self) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
        }

    def _start(self, out: list[bytes]) -> None:
        if not self._started:
            self._started = True
            out.append(self._chunk({"role": "assistant", "content": ""}))

    def _handle(self, events: list[Event]) -> list[bytes]:
        out: list[bytes] = []
        for ev in events:
            if not ev.data:
                continue
            data = load_object(ev.data, self._provider)
            kind = data.get("type") or (ev.event.decode() if ev.event else None)
            if kind == "ping":
                continue
            if kind == "error" or ev.event == b"error":
                raise self._stream_error(data)
            if kind == "message_start":
                message = data.get("message") or {}
                if message.get("id"):
                    self._id = f"chatcmpl-{message['id']}"
                if message.get("model"):
                    self._model = str(message["model"])
                self._update_usage(message.get("usage"))
                self._start(out)
            elif kind == "content_block_start":
                self._blocks += 1
                self._start(out)
                self._block_start(data, out)
            elif kind == "content_block_delta":
                self._start(out)
                self._block_delta(data, out)
            elif kind == "content_block_stop":
                self._block_stop(data, out)
            elif kind == "message_delta":
                self._start(out)
                self._update_usage(data.get("usage"))
                delta = data.get("delta") or {}
                stop_reason = delta.get("stop_reason")
                if stop_reason == "end_turn" and not self._blocks:
                    raise empty_answer(self._provider)
                if stop_reason and not self._finish_sent:
                    self._finish_sent = True
                    if self._details and self._first_call:
                        THINKING.issued(self._first_call, orjson.dumps(self._details).decode())
                    matched = matched_stop(stop_reason, delta.get("stop_sequence"))
                    out.append(self._chunk({}, finish_reason(stop_reason), matched))
            elif kind == "message_stop":
                self._start(out)
                if not self._finish_sent:
                    self._finish_sent = True
                    out.append(self._chunk({}, "stop"))
                self.finished = self.ended = True
        return out

    def _block_start(self, data: dict[str, Any], out: list[bytes]) -> None:
        block = data.get("content_block") or {}
        index = data.get("index")
        if block.get("type") == "text" and block.get("text"):
            out.append(self._chunk({"content": block["text"]}))
        elif block.get("type") in ("thinking", "redacted_thinking") and isinstance(index, int):
            if self._reasoning:
                position = len(self._thinking) + len(self._details)
                self._thinking[index] = (position, {**block, "thinking": "", "signature": ""})
                if block.get("type") == "redacted_thinking":
                    self._thinking[index] = (position, dict(block))
                    entry = reasoning_detail(block, position)
                    if entry is not None:
                        out.append(self._chunk({"reasoning_details": [entry]}))
                elif block.get("thinking"):
                    out.append(self._thinking_delta(index, str(block["thinking"])))
                if isinstance(block.get("signature"), str) and block["signature"]:
                    out.append(self._signature_delta(index, block["signature"]))
        elif block.get("type") == "tool_use" and isinstance(index, int):
            if self._first_call is None and isinstance(block.get("id"), str):
                self._first_call = block["id"]
            position = len(self._tools)
            self._tools[index] = [position, False, block.get("input")]
            head = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            out.append(self._chunk({"tool_calls": [head]}))

    def _block_delta(self, data: dict[str, Any], out: list[bytes]) -> None:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            if delta.get("text"):
                out.append(self._chunk({"content": delta["text"]}))
        elif kind == "input_json_delta":
            tool = self._tools.get(data.get("index", -1))
            partial = delta.get("partial_json")
            if tool is not None and partial:
                tool[1] = True
                out.append(
                    self._chunk({"tool_calls": [{"index": tool[0], "function": {"arguments": partial}}]})
                )
        elif kind == "thinking_delta":
            text = str(delta.get("thinking") or "")
            self._thought += len(text)
            if self.usage is not None:
                self._update_usage({})
            index = data.get("index", -1)
            if index in self._thinking and text:
                out.append(self._thinking_delta(index, text))
        elif kind == "signature_delta":
            index = data.get("index", -1)
            if index in self._thinking and delta.get("signature"):
                out.append(self._signature_delta(index, str(delta["signature"])))
        # citations_delta: nothing to show in chat completions

    def _thinking_delta(self, index: int, text: str) -> bytes:
        """Thinking text as ``reasoning_content`` and as a ``reasoning_details`` delta, OpenRouter's
        streaming shape: entries of one ``index`` concatenate, the last one brings the signature."""
        position, block = self._thinking[index]
        block["thinking"] += text
        entry = {"type": "reasoning.text", "text": text, "format": REASONING_FORMAT, "index": position}
        return self._chunk({"reasoning_content": text, "reasoning_details": [entry]})

    def _signature_delta(self, index: int, signature: str) -> bytes:
        position, block = self._thinking[index]
        block["signature"] += signature
        entry = {
            "type": "reasoning.text",
            "signature": signature,
            "format": REASONING_FORMAT,
            "index": position,
        }
        return self._chunk({"reasoning_details": [entry]})

    def _block_stop(self, data: dict[str, Any], out: list[bytes]) -> None:
        thinking = self._thinking.pop(data.get("index", -1), None)
        if thinking is not None:
            entry = reasoning_detail(thinking[1], thinking[0])
            if entry is not None:
                self._details.append(entry)
            return
        tool = self._tools.get(data.get("index", -1))
        if tool is None or tool[1]:
            return
        # No argument deltas at all: send the input given at block start ("{}" for a tool without input).
        tool[1] = True
        arguments = orjson.dumps(tool[2] if isinstance(tool[2], dict) else {}).decode()
        out.append(self._chunk({"tool_calls": [{"index": tool[0], "function": {"arguments": arguments}}]}))

    def _update_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        # message_delta counts are cumulative: a field present there replaces the message_start value.
        self._raw_usage.update({k: v for k, v in usage.items() if v is not None})
        self.usage = usage_from_anthropic(self._raw_usage)
        reasoning = reasoning_estimate(self._thought, self.usage)
        self.usage_chunk = self._base() | {"choices": [], "usage": openai_usage(self.usage, reasoning)}

    def _stream_error(self, data: dict[str, Any]) -> UpstreamError:
        etype, message = _error_fields(data)
        overloaded = etype == "overloaded_error"
        return UpstreamError(
            f"provider '{self._provider}' failed mid-stream: {etype or 'error'}: {message or data}",
            status=503 if overloaded else 502,
            code="upstream_unavailable" if overloaded else "upstream_stream_error",
        )
