"""The assertions a case makes, applied to what a deployment answered.

Every check returns ``None`` when it holds, else one short reason for the
matrix (what was wrong, with a snippet of what came back). All checks are
deterministic: no model grades another.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from hedge.conformance import schema
from hedge.conformance.send import Exchange
from hedge.conformance.suite import (
    Case,
    Check,
    ContentSpec,
    ErrorSpec,
    JsonSpec,
    PathSpec,
    StreamSpec,
    ToolCallsSpec,
    UsageSpec,
    status_matches,
)
from hedge.errors import UpstreamError

_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def snippet(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    text = text.replace("\n", " ")
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def evaluate(case: Case, exchanges: list[Exchange], context_window: int | None = None) -> str | None:
    """``None`` when every exchange passes every check, else the first reason it does not."""
    checks = case.checks
    expects_error = any(c.kind == "error" for c in checks)
    for k, ex in enumerate(exchanges):
        prefix = f"call {k + 1}: " if len(exchanges) > 1 else ""
        if not expects_error:
            problem = _answered(ex)
            if problem is not None:
                return prefix + problem
        for check in checks:
            if check.kind == "same_content":
                continue
            reason = _CHECKS[check.kind](check, ex, context_window)
            if reason is not None:
                return prefix + reason
    if any(c.kind == "same_content" for c in checks):
        return _same_content(exchanges)
    return None


def _answered(ex: Exchange) -> str | None:
    if ex.crash is not None:
        return f"adapter crashed: {ex.crash}"
    if ex.error is not None:
        return _error_text(ex.error)
    if ex.body is None:
        return "no answer"
    return None


def _error_text(err: Exception) -> str:
    if isinstance(err, UpstreamError) and err.upstream_status is not None:
        return f"error {err.status} (upstream {err.upstream_status}): {err.message[:160]}"
    status = getattr(err, "status", "?")
    message = getattr(err, "message", str(err))
    return f"error {status} before reaching the provider: {message[:160]}"


def _choices(ex: Exchange) -> list[dict[str, Any]]:
    body = ex.body or {}
    return [c for c in body.get("choices") or [] if isinstance(c, dict)]


def _content(choice: dict[str, Any]) -> Any:
    return (choice.get("message") or {}).get("content")


# -- checks ---------------------------------------------------------------------------------------


def _finish_reason(check: Check, ex: Exchange, _window: int | None) -> str | None:
    choices = _choices(ex)
    if not choices:
        return "no choices in the answer"
    for choice in choices:
        reason = choice.get("finish_reason")
        if reason not in check.spec:
            expected = " or ".join(check.spec)
            return f"finish_reason {reason!r} (choice {choice.get('index', 0)}), expected {expected}"
    return None


def _choices_count(check: Check, ex: Exchange, _window: int | None) -> str | None:
    count = len(_choices(ex))
    return None if count == check.spec else f"{count} choices, expected {check.spec}"


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


def _content_check(check: Check, ex: Exchange, _window: int | None) -> str | None:
    spec: ContentSpec = check.spec
    choices = _choices(ex)
    if not choices:
        return "no choices in the answer"
    for choice in choices:
        text = _content(choice)
        if not isinstance(text, str):
            return f"content is {snippet(text)}, not text"
        if spec.equals is not None and text != spec.equals:
            return f"content {snippet(text)} is not {snippet(spec.equals)}"
        for part in _as_list(spec.contains):
            if part not in text:
                return f"content {snippet(text)} lacks {part!r}"
        for part in _as_list(spec.not_contains):
            if part in text:
                return f"content contains {part!r}: {snippet(text)}"
        for pattern in _as_list(spec.regex):
            if re.search(pattern, text) is None:
                return f"content {snippet(text)} does not match /{pattern}/"
        for pattern in _as_list(spec.not_regex):
            if re.search(pattern, text) is not None:
                return f"content {snippet(text)} matches /{pattern}/"
    return None


def _request_schema(request: dict[str, Any]) -> Any:
    fmt = request.get("response_format")
    spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
    return spec.get("schema") if isinstance(spec, dict) else None


def _json_check(check: Check, ex: Exchange, _window: int | None) -> str | None:
    spec: JsonSpec = check.spec
    wanted = _request_schema(ex.request) if spec.json_schema == "request" else spec.json_schema
    if spec.json_schema == "request" and not isinstance(wanted, dict):
        return "the case asks for the request's schema, but the request has no response_format schema"
    for choice in _choices(ex):
        text = _content(choice)
        if not isinstance(text, str):
            return f"content is {snippet(text)}, not JSON text"
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return f"content is not JSON: {snippet(text)}"
        kind = "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "scalar"
        if spec.type != "any" and kind != spec.type:
            return f"content is a JSON {kind}, expected an {spec.type}"
        if wanted is not None:
            problems = schema.errors(value, wanted)
            if problems:
                return f"JSON does not match the schema: {problems[0]}"
    return None


def _tools_offered(request: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tool in request.get("tools") or []:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            out[fn["name"]] = fn.get("parameters") or {}
    return out


def _tool_calls_check(check: Check, ex: Exchange, _window: int | None) -> str | None:
    spec: ToolCallsSpec = check.spec
    choices = _choices(ex)
    if not choices:
        return "no choices in the answer"
    calls = (choices[0].get("message") or {}).get("tool_calls") or []
    if not isinstance(calls, list):
        return f"tool_calls is {snippet(calls)}, not a list"
    if spec.count is not None and len(calls) != spec.count:
        return f"{len(calls)} tool calls, expected {spec.count}"
    if spec.min_count is not None and len(calls) < spec.min_count:
        return f"{len(calls)} tool calls, expected at least {spec.min_count}"
    names = [((c.get("function") or {}).get("name") if isinstance(c, dict) else None) for c in calls]
    if spec.names is not None and Counter(names) != Counter(spec.names):
        return f"called {names}, expected {spec.names}"
    offered = _tools_offered(ex.request)
    for call, name in zip(calls, names, strict=True):
        if not isinstance(call, dict) or not call.get("id"):
            return f"tool call {name!r} has no id"
        if call.get("type", "function") != "function":
            return f"tool call {name!r} has type {call.get('type')!r}"
        args = (call.get("function") or {}).get("arguments")
        if not isinstance(args, str):
            return f"arguments of {name!r} are {_json_kind(args)}, not a string holding JSON"
        try:
            parsed = orjson.loads(args)
        except orjson.JSONDecodeError:
            return f"arguments of {name!r} are not valid JSON: {snippet(args)}"
        if not isinstance(parsed, dict):
            return f"arguments of {name!r} are not a JSON object: {snippet(args)}"
        if spec.arguments == "schema":
            if name not in offered:
                return f"called {name!r}, which the request did not offer"
            problems = schema.errors(parsed, offered[name])
            if problems:
                return f"arguments of {name!r} do not match its schema: {problems[0]}"
    return None


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    return "null" if value is None else f"a {type(value).__name__}"


def _window_share(value: str, window: int | None) -> int | None:
    if window is None:
        return None
    return int(window * float(value.rstrip("%")) / 100)


def _usage_check(check: Check, ex: Exchange, window: int | None) -> str | None:
    spec: UsageSpec = check.spec
    if ex.usage is None:
        where = "in the stream" if ex.sse is not None else "in the answer"
        return f"the provider reported no usage {where} (the gateway cannot price it)"
    usage = (ex.body or {}).get("usage")
    if not isinstance(usage, dict):
        return f"usage is {snippet(usage)}, not an object"
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    for name, value in (("prompt_tokens", prompt), ("completion_tokens", completion)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            return f"usage.{name} is {value!r}, expected a positive count"
    assert isinstance(prompt, int) and isinstance(completion, int)
    total = usage.get("total_tokens")
    if total is not None and total != prompt + completion:
        return f"usage.total_tokens {total} != prompt {prompt} + completion {completion}"
    if spec.max_completion_tokens is not None and completion > spec.max_completion_tokens:
        return f"{completion} completion tokens, more than {spec.max_completion_tokens}"
    low = spec.min_prompt_tokens
    if isinstance(low, str):
        share = _window_share(low, window)
        if share is None:
            return f"usage.min_prompt_tokens {low!r} needs the context window, which is unknown"
        low = share
    if low is not None and prompt < low:
        return f"{prompt} prompt tokens, fewer than {low} (was the prompt truncated?)"
    return None


def _error_check(check: Check, ex: Exchange, _window: int | None) -> str | None:
    spec: ErrorSpec = check.spec
    if ex.crash is not None:
        return f"adapter crashed: {ex.crash}"
    err = ex.error
    if err is None:
        choices = _choices(ex)
        finish = choices[0].get("finish_reason") if choices else None
        return f"expected an error, got a completion (finish_reason {finish!r})"
    upstream = err.upstream_status if isinstance(err, UpstreamError) else None
    if spec.upstream_status is not None:
        if upstream is None:
            return f"refused before reaching the provider: {_error_text(err)}"
        if not status_matches(spec.upstream_status, upstream):
            return f"provider answered {upstream}, expected {spec.upstream_status}: {err.message[:120]}"
    if spec.status is not None and not status_matches(spec.status, err.status):
        return f"translated to status {err.status}, expected {spec.status}: {err.message[:120]}"
    if spec.type is not None and err.type != spec.type:
        return f"error type {err.type!r}, expected {spec.type!r}"
    if not err.message or not err.message.strip():
        return "the error has no message"
    return None


def _stream_check(check: Check, ex: Exchange, _window: int | None) -> str | None:
    spec: StreamSpec = check.spec
    if ex.sse is None:
        return "not a stream"
    events = ex.events
    if not events:
        return "empty stream"
    for event in events:
        if isinstance(event, dict) and "_malformed" in event:
            return f"malformed SSE event: {snippet(event['_malformed'])}"
        if isinstance(event, dict) and "error" in event:
            message = (event["error"] or {}).get("message") if isinstance(event["error"], dict) else event
            return f"stream ended with an error event: {snippet(message, 120)}"
    done = [i for i, e in enumerate(events) if e == "[DONE]"]
    if not done:
        return "no 'data: [DONE]' at the end"
    if len(done) > 1 or done[0] != len(events) - 1:
        return "'data: [DONE]' is not the single last event"
    chunks: list[dict[str, Any]] = [e for e in events[:-1] if isinstance(e, dict)]
    if not chunks:
        return "no chunks before [DONE]"
    for chunk in chunks:
        if chunk.get("object") != "chat.completion.chunk":
            return f"chunk object is {chunk.get('object')!r}, not 'chat.completion.chunk'"
    if len({c.get("id") for c in chunks}) > 1:
        return "chunks carry different ids"
    seen: set[int] = set()
    finished: dict[int, int] = {}
    for k, chunk in enumerate(chunks):
        usage = chunk.get("usage")
        is_usage_chunk = usage is not None and not chunk.get("choices")
        if usage is not None and not (spec.usage and is_usage_chunk and k == len(chunks) - 1):
            if not spec.usage:
                return "a chunk carries usage although the client did not ask for it"
            return f"usage in chunk {k + 1}, expected only in the final chunk"
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                return f"chunk {k + 1} choice {index} has no delta"
            if index not in seen:
                seen.add(index)
                if delta.get("role") != "assistant":
                    return f"the first chunk of choice {index} has no role 'assistant': {snippet(delta)}"
            if index in finished and (delta.get("content") or delta.get("tool_calls")):
                return f"content after finish_reason in choice {index}"
            if choice.get("finish_reason"):
                finished[index] = finished.get(index, 0) + 1
    for index in sorted(seen):
        count = finished.get(index, 0)
        if count != 1:
            return f"finish_reason sent {count} times for choice {index}, expected once"
    if spec.usage:
        last = chunks[-1]
        if last.get("choices") or not isinstance(last.get("usage"), dict):
            return "no usage chunk (empty choices, usage) before [DONE]"
    return None


def _path_value(body: Any, path: str) -> tuple[bool, Any]:
    node = body
    for name, index in _PATH_TOKEN.findall(path):
        if name:
            if not isinstance(node, dict) or name not in node:
                return False, None
            node = node[name]
        else:
            i = int(index)
            if not isinstance(node, list) or i >= len(node):
                return False, None
            node = node[i]
    return True, node


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _path_check(check: Check, ex: Exchange, _window: int | None) -> str | None:
    spec: PathSpec = check.spec
    found, value = _path_value(ex.body or {}, spec.at)
    if spec.exists is not None and found != spec.exists:
        return f"{spec.at} is {'present' if found else 'missing'}"
    if spec.exists is False:
        return None
    if not found:
        return f"{spec.at} is missing"
    if "equals" in check.explicit and value != spec.equals:
        return f"{spec.at} is {snippet(value)}, expected {snippet(spec.equals)}"
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    if spec.regex is not None and re.search(spec.regex, text) is None:
        return f"{spec.at} {snippet(value)} does not match /{spec.regex}/"
    if spec.type is not None and not _JSON_TYPES[spec.type](value):
        return f"{spec.at} is {snippet(value)}, not of type {spec.type}"
    if spec.one_of is not None and value not in spec.one_of:
        return f"{spec.at} is {snippet(value)}, not one of {spec.one_of}"
    if spec.length is not None:
        size = len(value) if isinstance(value, str | list | dict) else None
        if size != spec.length:
            return f"{spec.at} has length {size if size is not None else '-'}, expected {spec.length}"
    return None


def _same_content(exchanges: list[Exchange]) -> str | None:
    answers = []
    for ex in exchanges:
        choices = _choices(ex)
        message = choices[0].get("message") or {} if choices else {}
        answers.append((message.get("content"), orjson.dumps(message.get("tool_calls") or []).decode()))
    if len(set(answers)) > 1:
        return f"answers differ: {snippet(answers[0][0], 40)} vs {snippet(answers[-1][0], 40)}"
    return None


_CHECKS: dict[str, Callable[[Check, Exchange, int | None], str | None]] = {
    "finish_reason": _finish_reason,
    "choices": _choices_count,
    "content": _content_check,
    "json": _json_check,
    "tool_calls": _tool_calls_check,
    "usage": _usage_check,
    "error": _error_check,
    "stream": _stream_check,
    "path": _path_check,
}
