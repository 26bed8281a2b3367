"""Mock upstream speaking the Anthropic Messages wire format.

Faithful enough for the official ``anthropic`` SDK: ``POST /v1/messages`` (JSON
or a named-event SSE stream: ``message_start``, ``content_block_start``,
``ping``, ``content_block_delta``, ``content_block_stop``, ``message_delta``,
``message_stop``), ``POST /v1/messages/count_tokens`` (the prompt's tokens as a message's usage
would count them; a Messages-only field such as ``max_tokens`` is refused there, as the real API
refuses it), authentication by
``x-api-key`` (or ``Authorization: Bearer``, which the SDK 2.x sends), a
required ``anthropic-version`` header (any value) and Anthropic-shaped
errors (``{"type": "error", "error": {...}}``, 529 ``overloaded_error``, 429
``rate_limit_error`` with ``retry-after``).

It answers like every mock (see :mod:`hedge.mock.behaviour`). Anthropic has
no JSON mode, so a system prompt that mentions ``JSON`` gets a JSON answer, as
a real model would give. The checks a translation most easily gets wrong are
enforced as the real API does: ``max_tokens`` is required (an integer, at
least 1), ``system`` is not a message role, text blocks may not be empty,
``temperature`` is at most 1, Claude 4.1 and later refuse ``temperature`` with
``top_p`` (in the words those models use), extended thinking wants a
``budget_tokens`` of at least 1024 below ``max_tokens`` and no ``temperature``
but 1 nor ``top_k``, a tool name is 1 to 128 characters, and every
``tool_use`` must be answered by a ``tool_result`` in the next turn; with
``thinking`` on, the assistant turn of the last tool exchange must start with its
thinking block (Anthropic's 400 "Expected `thinking` or `redacted_thinking`"). With
``thinking`` on, the answer starts with a ``thinking`` block (streamed as
``thinking_delta`` and ``signature_delta``) whose tokens count as output; a
``cache_control`` marker anywhere in the prompt reports half the prompt as
``cache_creation_input_tokens``; ``output_config.format`` (native structured
output) gets an answer built from its schema. A body
over the ``max_body_bytes`` knob is 413 ``request_too_large``, as Anthropic
answers past 32 MB. A larger ``max_tokens`` than the mock model's limit is
clamped, like every size the answer takes from the request (see
:mod:`hedge.mock.behaviour`).

Quirks (``--quirk``): ``cache-hit`` reports half the prompt as read from the
prompt cache, ``cache-write`` a quarter of it as written to the cache
(``cache_creation_input_tokens``); ``error-event`` makes an injected mid-stream failure (``disconnect`` or
``early-disconnect`` fail modes) an ``event: error`` (``overloaded_error``)
instead of a dropped connection. The compatibility quirks ``hedge check``
catches, as on the OpenAI mock: ``ignore-stop`` (``stop_sequences`` ignored),
``stop-included`` (the matched sequence stays in the text), ``no-stream-usage``
(streams carry no ``usage``), ``drop-system`` (``system`` ignored) and
``error-as-200`` (errors, and every non-streaming answer, are an error body
with status 200). ``tool-args-object`` and ``no-role-in-first-chunk`` have no
Anthropic equivalent: tool input is always an object here, and the adapter
builds the role chunk itself.

A structured-output request reaches this mock as the adapter's JSON
instruction in ``system``; when it carries a JSON schema, the answer is built
from that schema (as a model following the instruction would answer). A model
named ``...no-such-model...`` gets 404 ``not_found_error``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hedge.mock.behaviour import Reply, Tool, Turn, digest, plan_reply, text_of, unknown_model
from hedge.mock.state import BodyTooLarge, MockState
from hedge.wire.anthropic import ERROR_TYPES, STOP_BY_FINISH
from hedge.wire.sse import frame_event

_MESSAGES: dict[int, str] = {
    400: "Invalid request.",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "The requested resource could not be found.",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "Number of request tokens has exceeded your per-minute rate limit.",
    500: "Internal server error.",
    504: "Request timed out.",
    529: "Overloaded",
}
"""The message Anthropic sends with each error status (its type: ``ERROR_TYPES``)."""

_STOP_REASONS = STOP_BY_FINISH
MAX_TOOL_NAME = 128
_TOOL_NAME_RULE = "String should match pattern '^[a-zA-Z0-9_-]{1,128}$'"


def _request_id(seed: Any) -> str:
    return "req_" + digest(seed)[:24]


def error(state: MockState, status: int, message: str | None = None) -> Response:
    body = error_body(status, message)
    headers = {"request-id": _request_id([status, state.stats.requests])}
    if status == 429:
        headers["retry-after"] = f"{state.knobs.retry_after:g}"
    if state.quirk("error-as-200"):
        status = 200
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def _api_key(request: Request) -> str:
    """The key from ``x-api-key``, or from ``Authorization: Bearer`` (what anthropic SDK 2.x sends)."""
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            key = token.strip()
    return key


def _authorized(state: MockState, key: str) -> bool:
    return bool(key) and (state.knobs.api_key is None or key == state.knobs.api_key)


async def _admit(state: MockState, request: Request) -> tuple[dict[str, Any] | None, Response | None]:
    """Common entry: parse, record, authenticate, inject faults. Returns (body, early_response)."""
    try:
        body = await state.read(request)
    except BodyTooLarge:
        return None, error(state, 413)
    key = _api_key(request)
    if not key:
        return None, error(state, 401, "x-api-key header is required")
    if not _authorized(state, key):
        return None, error(state, 401, "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return None, error(state, 400, "anthropic-version: header is required")
    if not isinstance(body, dict):
        return None, error(state, 400, "There was an error parsing the body of your request as JSON.")
    status = await state.fault(body, bool(body.get("stream")))
    return (None, error(state, status)) if status is not None else (body, None)


def _validate(body: dict[str, Any], need_max_tokens: bool = True) -> str | None:
    """The first problem the real API would report for this body, if any."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if need_max_tokens and body.get("max_tokens") is None:
        return "max_tokens: Field required"
    if need_max_tokens and (
        not isinstance(body.get("max_tokens"), int) or isinstance(body["max_tokens"], bool)
    ):
        return "max_tokens: Input should be a valid integer"
    if need_max_tokens and body["max_tokens"] < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    temperature = body.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float) and 0 <= temperature <= 1):
        return "temperature: Input should be less than or equal to 1"
    if body.get("service_tier") not in (None, "auto", "standard_only"):
        return "service_tier: Input should be 'auto' or 'standard_only'"
    if temperature is not None and body.get("top_p") is not None and _exclusive_sampling(body["model"]):
        return "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
    problem = _thinking_problem(body, need_max_tokens)
    if problem:
        return problem
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        return "system: Input should be a valid string or list"
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        return "tools: Input should be a valid list"
    for i, tool in enumerate(tools or []):
        name = tool.get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_TOOL_NAME:
            return f"tools.{i}.custom.name: {_TOOL_NAME_RULE}"
    pending: set[str] = set()
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            role = m.get("role") if isinstance(m, dict) else None
            return (
                f'messages.{i}.role: Input should be "user" or "assistant" (got {role!r}); '
                "use the top-level system parameter for a system prompt"
            )
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            return f"messages.{i}: all messages must have non-empty content"
        bad_id = _bad_tool_id(blocks, i)
        if bad_id is not None:
            return bad_id
        results = {
            b.get("tool_use_id") for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"
        }
        if pending - results:
            return (
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                + ", ".join(sorted(pending - results))
            )
        if results - pending:
            return f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks"
        pending = set()
        for j, b in enumerate(blocks):
            if not isinstance(b, dict):
                return f"messages.{i}.content.{j}: Input should be an object"
            if b.get("type") == "text" and not b.get("text"):
                return f"messages.{i}.content.{j}: text content blocks must be non-empty"
            if b.get("type") == "tool_use":
                if m["role"] != "assistant":
                    return f"messages.{i}.content.{j}: tool_use blocks are only allowed in assistant turns"
                if not isinstance(b.get("input"), dict):
                    return f"messages.{i}.content.{j}.tool_use.input: Input should be an object"
                pending.add(str(b.get("id")))
            if b.get("type") == "thinking" and not (isinstance(b.get("signature"), str) and b["signature"]):
                return f"messages.{i}.content.{j}.thinking.signature: Field required"
    return _missing_thinking(body, messages)


_THINKING_FIRST = (
    "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{found}`. "
    "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
    "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
    "thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please "
    "consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
)
"""Anthropic's 400, word for word (its misspelling included), as reported in public issues such as
github.com/deepset-ai/haystack-core-integrations/issues/2146 and github.com/anomalyco/opencode/issues/3077."""


def _missing_thinking(body: dict[str, Any], messages: list[Any]) -> str | None:
    """With thinking on, the assistant turn of the last tool_use / tool_result exchange must start with
    its thinking block (Claude's extended-thinking guide, "Preserving thinking blocks")."""
    if not _thinks(body):
        return None
    for i in range(len(messages) - 2, -1, -1):
        message = messages[i]
        if message.get("role") != "assistant":
            continue
        content = message.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text"}]
        answer = messages[i + 1].get("content")
        answered = isinstance(answer, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in answer
        )
        uses = any(isinstance(b, dict) and b.get("type") == "tool_use" for b in blocks)
        if not (uses and answered):
            return None
        found = blocks[0].get("type") if isinstance(blocks[0], dict) else None
        if found not in ("thinking", "redacted_thinking"):
            return _THINKING_FIRST.format(i=i, found=found)
        return None
    return None


_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")
"""The pattern Anthropic enforces on ``tool_use.id`` and ``tool_result.tool_use_id``."""


def _bad_tool_id(blocks: list[Any], i: int) -> str | None:
    """Anthropic's 400 for a tool id outside its pattern (e.g. one carrying a base64 blob)."""
    for j, b in enumerate(blocks):
        if not isinstance(b, dict) or b.get("type") not in ("tool_use", "tool_result"):
            continue
        field = "id" if b["type"] == "tool_use" else "tool_use_id"
        value = b.get(field)
        if isinstance(value, str) and not _TOOL_ID.fullmatch(value):
            return (
                f"messages.{i}.content.{j}.{b['type']}.{field}: "
                "String should match pattern '^[a-zA-Z0-9_-]+$'"
            )
    return None


_CLAUDE_4 = re.compile(r"claude-(?:opus|sonnet|haiku)-(\d+)(?:-(\d{1,2})(?!\d))?")


def _exclusive_sampling(model: str) -> bool:
    """Claude 4.1 and later refuse ``temperature`` with ``top_p`` (Anthropic's API reference:
    "You should either alter temperature or top_p, but not both"; the 400 is what those models send)."""
    match = _CLAUDE_4.search(model)
    return match is not None and (int(match.group(1)), int(match.group(2) or 0)) >= (4, 1)


def _thinking_problem(body: dict[str, Any], need_max_tokens: bool) -> str | None:
    """Extended thinking's rules (Anthropic's extended-thinking guide): a budget of at least 1024 that
    is below ``max_tokens``, and no ``temperature`` other than 1 or ``top_k`` while thinking."""
    thinking = body.get("thinking")
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        return (
            "thinking: Input tag does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'"
        )
    if kind == "disabled":
        return None
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            return "thinking.enabled.budget_tokens: Field required"
        if budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if need_max_tokens and isinstance(body.get("max_tokens"), int) and budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`."
    if body.get("temperature") not in (None, 1, 1.0):
        return "`temperature` may only be set to 1 when thinking is enabled."
    if body.get("top_k") is not None:
        return "`top_k` may not be set when thinking is enabled."
    return None


def _thinks(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _has_cache_marker(body: dict[str, Any]) -> bool:
    blocks = (
        [b for b in body.get("system") or [] if isinstance(b, dict)]
        if isinstance(body.get("system"), list)
        else []
    )
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        blocks += [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
    return any("cache_control" in b for b in blocks)


def _native_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    schema = fmt.get("schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
    return schema if isinstance(schema, dict) else None


THINKING = "Let me think about this step by step."
THINKING_TOKENS = 9
"""The mock's thinking block (when ``thinking`` is on) and the output tokens it counts for."""


def turns_of(body: dict[str, Any], drop_system: bool = False) -> list[Turn]:
    turns: list[Turn] = []
    system = "" if drop_system else text_of(body.get("system"))
    if system:
        turns.append(Turn("system", system))
    for m in body.get("messages") or []:
        content = m.get("content")
        if m.get("role") == "assistant":
            turns.append(Turn("assistant", text_of(content)))
            continue
        if isinstance(content, str):
            turns.append(Turn("user", content))
            continue
        text: list[str] = []
        for block in content or []:
            if block.get("type") == "tool_result":
                turns.append(Turn("tool", text_of(block.get("content"))))
            elif block.get("type") == "text" and isinstance(block.get("text"), str):
                text.append(block["text"])
        if text:
            turns.append(Turn("user", "".join(text)))
    return turns


_SCHEMA_MARK = "JSON schema:"


def _instructed_schema(system: str) -> dict[str, Any] | None:
    """The JSON schema the adapter's structured-output instruction carries, if any."""
    _, found, rest = system.partition(_SCHEMA_MARK)
    if not found:
        return None
    try:
        schema = orjson.loads(rest.strip().split("\n", 1)[0])
    except orjson.JSONDecodeError:
        return None
    return schema if isinstance(schema, dict) else None


def _plan(body: dict[str, Any], state: MockState) -> Reply:
    tools = [
        Tool(t["name"], t["input_schema"] if isinstance(t.get("input_schema"), dict) else {})
        for t in body.get("tools") or []  # a list of named tools: checked by _validate
    ]
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        choice = {}
    forced: str | None = None
    if choice.get("type") == "tool":
        forced = choice["name"] if isinstance(choice.get("name"), str) else None
    elif choice.get("type") == "none":
        forced = "none"
    drop_system = state.quirk("drop-system")
    system = "" if drop_system else text_of(body.get("system"))
    turns = turns_of(body, drop_system)
    reply = plan_reply(
        body["model"],
        turns,
        tools=tools or None,
        tool_choice=forced,
        max_tokens=body["max_tokens"],
        stop=None if state.quirk("ignore-stop") else _stop_sequences(body.get("stop_sequences")),
        json_mode="JSON" in system or _native_schema(body) is not None,
        json_schema=_native_schema(body) or _instructed_schema(system),
        answer=state.graded_answer(turns),
    )
    if state.quirk("stop-included") and reply.matched_stop:
        reply.pieces.append(reply.matched_stop)
    if reply.tool_calls and choice.get("disable_parallel_tool_use"):
        del reply.tool_calls[1:]
    for call in reply.tool_calls:
        call.id = "toolu_" + call.id.removeprefix("call_")
    return reply


def _stop_sequences(value: Any) -> list[str]:
    return [s for s in value if isinstance(s, str)] if isinstance(value, list) else []


def _usage(
    state: MockState, reply: Reply, output_tokens: int | None = None, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    cache_read = reply.prompt_tokens // 2 if state.quirk("cache-hit") else 0
    # A prompt-cache breakpoint writes the prompt before it to the cache: half of it, here (the
    # ``cache-write`` quirk writes a quarter of any prompt, breakpoint or not).
    if not cache_read and body and _has_cache_marker(body):
        cache_write = reply.prompt_tokens // 2
    else:
        cache_write = reply.prompt_tokens // 4 if state.quirk("cache-write") else 0
    thinking = THINKING_TOKENS if body and _thinks(body) else 0
    return {
        "input_tokens": reply.prompt_tokens - cache_read - cache_write,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": (reply.completion_tokens + thinking) if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }


def _event(kind: str, **fields: Any) -> bytes:
    """One named SSE event whose data carries the same ``type``, as Anthropic sends them."""
    return frame_event(kind, {"type": kind, **fields})


def _message_id(body: dict[str, Any]) -> str:
    return "msg_" + digest(body)[:24]


def _stop(reply: Reply) -> tuple[str, str | None]:
    if reply.matched_stop is not None:
        return "stop_sequence", reply.matched_stop
    return _STOP_REASONS[reply.finish], None


async def messages(request: Request) -> Response:
    state: MockState = request.app.state.mock
    body, early = await _admit(state, request)
    if early is not None or body is None:
        return early or error(state, 400)
    problem = _validate(body)
    if problem:
        return error(state, 400, problem)
    if unknown_model(body["model"]):
        return error(state, 404, f"model: {body['model']}")
    reply = _plan(body, state)
    headers = {"request-id": _request_id(body)}
    if body.get("stream"):
        return StreamingResponse(_stream(state, body, reply), media_type="text/event-stream", headers=headers)
    await state.delay()
    data = _message(body, reply, state)
    if state.quirk("error-as-200"):
        data = {"type": "error", "error": {"type": "api_error", "message": "Mock error with status 200."}}
    return Response(orjson.dumps(data), media_type="application/json", headers=headers)


def answer(state: MockState, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """What ``POST /v1/messages`` answers a non-streaming ``body``: (status, JSON body).

    The Message Batches API runs each request's ``params`` through this, so a request fails in a
    batch exactly as it would alone (its error is the ``errored`` result).
    """
    problem = _validate(body)
    if problem:
        return 400, error_body(400, problem)
    if unknown_model(body["model"]):
        return 404, error_body(404, f"model: {body['model']}")
    return 200, _message(body, _plan(body, state), state)


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """Anthropic's error object for ``status`` (the default message is Anthropic's own)."""
    etype = ERROR_TYPES.get(status, "api_error")
    default = _MESSAGES.get(status, f"Mock failure {status}.")
    return {"type": "error", "error": {"type": etype, "message": message or default}}


def _message(body: dict[str, Any], reply: Reply, state: MockState) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if _thinks(body):
        content.append(
            {"type": "thinking", "thinking": THINKING, "signature": "c2lnbmF0dXJl" + digest(body)[:16]}
        )
    if reply.pieces:
        content.append({"type": "text", "text": reply.text})
    for call in reply.tool_calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
    stop_reason, stop_sequence = _stop(reply)
    return {
        "id": _message_id(body),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": _usage(state, reply, body=body),
    }


async def _stream(state: MockState, body: dict[str, Any], reply: Reply) -> AsyncIterator[bytes]:
    state.stats.streams_started += 1
    completed = False
    events: list[bytes] = []
    first_visible = -1  # the first event that shows the client something (text or a tool call)
    index = 0
    if _thinks(body):
        block: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
        events.append(_event("content_block_start", index=index, content_block=block))
        events.append(
            _event("content_block_delta", index=index, delta={"type": "thinking_delta", "thinking": THINKING})
        )
        signature = {"type": "signature_delta", "signature": "c2lnbmF0dXJl" + digest(body)[:16]}
        events.append(_event("content_block_delta", index=index, delta=signature))
        events.append(_event("content_block_stop", index=index))
        index += 1
    if reply.pieces:
        events.append(_event("content_block_start", index=index, content_block={"type": "text", "text": ""}))
        events.append(_event("ping"))
        first_visible = len(events)
        for piece in reply.pieces:
            events.append(
                _event("content_block_delta", index=index, delta={"type": "text_delta", "text": piece})
            )
        events.append(_event("content_block_stop", index=index))
        index += 1
    for call in reply.tool_calls:
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        if first_visible < 0:
            first_visible = len(events)
        events.append(_event("content_block_start", index=index, content_block=block))
        args = orjson.dumps(call.arguments).decode()
        half = len(args) // 2
        for part in (args[:half], args[half:]):
            delta = {"type": "input_json_delta", "partial_json": part}
            events.append(_event("content_block_delta", index=index, delta=delta))
        events.append(_event("content_block_stop", index=index))
        index += 1
    stop_reason, stop_sequence = _stop(reply)
    steps = len(events) + 1
    disconnect_at = -1
    if body.get("_mock_disconnect"):
        # early-disconnect: cut right after message_start; disconnect: after some content was sent.
        early = state.knobs.fail_mode == "early-disconnect"
        disconnect_at = 0 if early else max(first_visible + 1, len(events) // 2)
    start = {
        "id": _message_id(body),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(state, reply, output_tokens=1, body=body),
    }
    no_usage = state.quirk("no-stream-usage")
    if no_usage:
        del start["usage"]
    try:
        await state.delay(1 / steps)
        yield _event("message_start", message=start)
        for k, event in enumerate(events):
            if k == disconnect_at:
                if state.quirk("error-event"):
                    yield _event("error", error={"type": ERROR_TYPES[529], "message": _MESSAGES[529]})
                    return
                raise ConnectionAbortedError("mock: injected mid-stream disconnect")
            await state.delay(1 / steps)
            yield event
        output = reply.completion_tokens + (THINKING_TOKENS if _thinks(body) else 0)
        usage = {} if no_usage else {"usage": {"output_tokens": output}}
        yield _event(
            "message_delta", delta={"stop_reason": stop_reason, "stop_sequence": stop_sequence}, **usage
        ) + _event("message_stop")
        completed = True
    finally:
        if completed:
            state.stats.streams_completed += 1
        else:
            state.stats.streams_cancelled += 1


_COUNT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "cache_control",
        "output_config",
        "output_format",
        "speed",
        "mcp_servers",
        "context_management",
    }
)
"""The fields of a token counting request; any other (``max_tokens``, ``stream``, ``temperature`` ...)
is refused, as the real API refuses it (``max_tokens: Extra inputs are not permitted``)."""


async def count_tokens(request: Request) -> Response:
    state: MockState = request.app.state.mock
    body, early = await _admit(state, request)
    if early is not None or body is None:
        return early or error(state, 400)
    extra = next((name for name in body if name not in _COUNT_FIELDS and name != "_mock_disconnect"), None)
    if extra is not None:
        return error(state, 400, f"{extra}: Extra inputs are not permitted")
    problem = _validate(body, need_max_tokens=False)
    if problem:
        return error(state, 400, problem)
    if unknown_model(body["model"]):
        return error(state, 404, f"model: {body['model']}")
    reply = _plan({**body, "max_tokens": None}, state)
    return Response(orjson.dumps({"input_tokens": reply.prompt_tokens}), media_type="application/json")


def routes() -> list[Route]:
    return [
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    ]
