"""The assertions a case makes, applied to what a deployment answered.

Every check returns ``None`` when it holds, else one short reason for the
matrix (what was wrong, with a snippet of what came back). All checks are
deterministic: no model grades another.

A check reads the answer of its case's API: the choices of a chat completion, or for
``api: responses`` the Response object (its output text, its ``function_call`` items, its usage
in input and output tokens, its event stream).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from hedge.conformance import events, schema
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
    """``None`` when every exchange passes every check of the case's first request, else the first
    reason it does not."""
    return evaluate_checks(case.checks, exchanges, context_window)


def evaluate_checks(
    checks: list[Check], exchanges: list[Exchange], context_window: int | None = None
) -> str | None:
    """``None`` when every exchange passes every check, else the first reason it does not."""
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
    if ex.api == "responses" and ex.sse is not None and ex.body is None:
        return events.check(ex.events) or "the stream has no final response"
    if ex.body is None:
        return "no answer"
    if ex.api == "responses" and ex.body.get("status") == "failed":
        error = ex.body.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        return f"the response failed: {snippet(message, 120)}"
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


def _output(ex: Exchange) -> list[dict[str, Any]]:
    output = (ex.body or {}).get("output")
    return [i for i in output if isinstance(i, dict)] if isinstance(output, list) else []


def output_text(response: dict[str, Any]) -> str | None:
    """The text of a response's ``output_text`` parts, joined (the SDKs' ``response.output_text``);
    ``None`` when it has none."""
    texts = [
        part.get("text")
        for item in response.get("output") or []
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or []
        if isinstance(part, dict) and part.get("type") == "output_text"
    ]
    return "".join(t for t in texts if isinstance(t, str)) if texts else None


def _texts(ex: Exchange) -> list[Any] | str:
    """The answer's texts, one per choice (a response has one), or why there are none."""
    if ex.api == "responses":
        text = output_text(ex.body or {})
        if text is None:
            kinds = [i.get("type") for i in _output(ex)]
            return f"no output_text in the response (output items: {kinds})"
        return [text]
    choices = _choices(ex)
    return [_content(c) for c in choices] if choices else "no choices in the answer"


def _calls(ex: Exchange) -> list[tuple[Any, str | None, Any]] | str:
    """The first choice's tool calls (a response's ``function_call`` items) as (call, name, arguments)."""
    if ex.api == "responses":
        items = [i for i in _output(ex) if i.get("type") == "function_call"]
        return [(i, i.get("name"), i.get("arguments")) for i in items]
    choices = _choices(ex)
    if not choices:
        return "no choices in the answer"
    calls = (choices[0].get("message") or {}).get("tool_calls") or []
    if not isinstance(calls, list):
        return f"tool_calls is {snippet(calls)}, not a list"
    out: list[tuple[Any, str | None, Any]] = []
    for call in calls:
        fn = (call.get("function") or {}) if isinstance(call, dict) else {}
        out.append((call, fn.get("name"), fn.get("arguments")))
    return out


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


def _status(check: Check, ex: Exchange, _window: int | None) -> str | None:
    status = (ex.body or {}).get("status")
    if status not in check.spec:
        details = (ex.body or {}).get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else details
        why = f" ({reason})" if reason else ""
        return f"status {status!r}{why}, expected {' or '.join(check.spec)}"
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
    texts = _texts(ex)
    if isinstance(texts, str):
        return texts
    for text in texts:
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


def _request_schema(ex: Exchange) -> Any:
    if ex.api == "responses":
        text = ex.request.get("text")
        fmt = text.get("format") if isinstance(text, dict) else None
        return fmt.get("schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
    fmt = ex.request.get("response_format")
    spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
    return spec.get("schema") if isinstance(spec, dict) else None


def _json_check(check: Check, ex: Exchange, _window: int | None) -> str | None:
    spec: JsonSpec = check.spec
    wanted = _request_schema(ex) if spec.json_schema == "request" else spec.json_schema
    if spec.json_schema == "request" and not isinstance(wanted, dict):
        where = "text.format" if ex.api == "responses" else "response_format"
        return f"the case asks for the request's schema, but the request has no {where} schema"
    texts = _texts(ex)
    if isinstance(texts, str):
        return texts if ex.api == "responses" else None
    for text in texts:
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
        if not isinstance(tool, dict):
            continue
        nested = tool.get("function")
        fn: dict[str, Any] = nested if isinstance(nested, dict) else tool  # chat | responses
        if tool.get("type", "function") == "function" and isinstance(fn.get("name"), str):
            out[fn["name"]] = fn.get("parameters") or {}
    return out


def _tool_calls_check(check: Check, ex: Exchange, _window: int | None) -> str | None:
    spec: ToolCallsSpec = check.spec
    calls = _calls(ex)
    if isinstance(calls, str):
        return calls
    what = "function calls" if ex.api == "responses" else "tool calls"
    if spec.count is not None and len(calls) != spec.count:
        return f"{len(calls)} {what}, expected {spec.count}"
    if spec.min_count is not None and len(calls) < spec.min_count:
        return f"{len(calls)} {what}, expected at least {spec.min_count}"
    names = [name for _, name, _ in calls]
    if spec.names is not None and Counter(names) != Counter(spec.names):
        return f"called {names}, expected {spec.names}"
    offered = _tools_offered(ex.request)
    for call, name, args in calls:
        if ex.api == "responses":
            if not call.get("call_id"):
                return f"function call {name!r} has no call_id"
        elif not isinstance(call, dict) or not call.get("id"):
            return f"tool call {name!r} has no id"
        elif call.get("type", "function") != "function":
            return f"tool call {name!r} has type {call.get('type')!r}"
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
    names = (
        ("input_tokens", "output_tokens") if ex.api == "responses" else ("prompt_tokens", "completion_tokens")
    )
    prompt, completion = usage.get(names[0]), usage.get(names[1])
    for name, value in zip(names, (prompt, completion), strict=True):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            return f"usage.{name} is {value!r}, expected a positive count"
    assert isinstance(prompt, int) and isinstance(completion, int)
    total = usage.get("total_tokens")
    if total is not None and total != prompt + completion:
        return f"usage.total_tokens {total} != {names[0]} {prompt} + {names[1]} {completion}"
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
    return _detail_counts(spec, usage)


def _count(details: Any, name: str) -> int:
    value = details.get(name) if isinstance(details, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _detail_counts(spec: UsageSpec, usage: dict[str, Any]) -> str | None:
    """The reasoning and prompt-cache counts a case asks for."""
    if spec.min_reasoning_tokens is not None:
        reasoning = _count(usage.get("completion_tokens_details"), "reasoning_tokens")
        if reasoning < spec.min_reasoning_tokens:
            return (
                f"usage.completion_tokens_details.reasoning_tokens is {reasoning}, expected at least "
                f"{spec.min_reasoning_tokens} (was reasoning_effort dropped?)"
            )
    if spec.min_cache_tokens is not None:
        details = usage.get("prompt_tokens_details")
        cached = _count(details, "cache_write_tokens") + _count(details, "cached_tokens")
        if cached < spec.min_cache_tokens:
            return (
                f"{cached} prompt tokens written to or read from the cache, expected at least "
                f"{spec.min_cache_tokens} (did the cache_control markers reach the provider?)"
            )
    return None


def _error_check(check: Check, ex: Exchange, _window: int | None) -> str | None:
    spec: ErrorSpec = check.spec
    if ex.crash is not None:
        return f"adapter crashed: {ex.crash}"
    err = ex.error
    if err is None and ex.api == "responses":
        return f"expected an error, got a response (status {(ex.body or {}).get('status')!r})"
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
    if ex.api == "responses":
        return events.check(ex.events, spec.events)
    sent = ex.events
    if not sent:
        return "empty stream"
    for event in sent:
        if isinstance(event, dict) and "_malformed" in event:
            return f"malformed SSE event: {snippet(event['_malformed'])}"
        if isinstance(event, dict) and "error" in event:
            message = (event["error"] or {}).get("message") if isinstance(event["error"], dict) else event
            return f"stream ended with an error event: {snippet(message, 120)}"
    done = [i for i, e in enumerate(sent) if e == "[DONE]"]
    if not done:
        return "no 'data: [DONE]' at the end"
    if len(done) > 1 or done[0] != len(sent) - 1:
        return "'data: [DONE]' is not the single last event"
    chunks: list[dict[str, Any]] = [e for e in sent[:-1] if isinstance(e, dict)]
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
        texts, calls = _texts(ex), _calls(ex)
        text = None if isinstance(texts, str) else texts[0]
        called = [] if isinstance(calls, str) else [(name, args) for _, name, args in calls]
        answers.append((text, orjson.dumps(called).decode()))
    if len(set(answers)) > 1:
        return f"answers differ: {snippet(answers[0][0], 40)} vs {snippet(answers[-1][0], 40)}"
    return None


_CHECKS: dict[str, Callable[[Check, Exchange, int | None], str | None]] = {
    "finish_reason": _finish_reason,
    "status": _status,
    "choices": _choices_count,
    "content": _content_check,
    "json": _json_check,
    "tool_calls": _tool_calls_check,
    "usage": _usage_check,
    "error": _error_check,
    "stream": _stream_check,
    "path": _path_check,
}
