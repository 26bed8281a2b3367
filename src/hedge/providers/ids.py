"""Tool call ids every provider accepts, for conversations that move between providers.

A conversation begun on one provider carries that provider's tool call ids into the next turn,
wherever it is routed. The providers disagree on what an id may be: Anthropic wants
``^[a-zA-Z0-9_-]+$``, OpenAI at most 40 characters, Gemini has no ids at all. An adapter passes
every id through :func:`portable_call_id` before sending it, so an id its upstream would refuse
becomes one it accepts. The mapping is a pure function of the id, so a call and the result that
answers it (translated separately) still match, and a failover re-translation gives the same ids.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

MAX_OPENAI_ID = 40
"""OpenAI refuses longer ids: ``string too long. Expected a string with maximum length 40``."""
_STRICT = re.compile(r"[a-zA-Z0-9_-]+")
"""Anthropic's pattern for ``tool_use.id`` and ``tool_result.tool_use_id``."""
_LEGACY_SEPARATOR = "~"
REASONING_FORMAT = "anthropic-claude-v1"
"""The ``format`` of the ``reasoning_details`` entries that carry Claude's thinking blocks (OpenRouter's
name): Claude's private data, sent back only to Anthropic."""
"""Ids Hedge once issued for Gemini calls: ``call_<hash>~<thought signature>``."""


def portable_call_id(call_id: str, *, strict: bool) -> str:
    """``call_id`` if the upstream accepts it, else a short stable stand-in.

    ``strict``: Anthropic's character set too, not only OpenAI's length limit.
    """
    head, sep, _ = call_id.partition(_LEGACY_SEPARATOR)
    if sep and head:
        call_id = head
    if 0 < len(call_id) <= MAX_OPENAI_ID and (not strict or _STRICT.fullmatch(call_id)):
        return call_id
    return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:24]


def portable_messages(messages: Any, *, strict: bool, keep_extra: bool = False) -> Any:
    """OpenAI chat ``messages`` with every tool call id made portable and ``extra_content`` (another
    provider's private data) removed from tool calls unless ``keep_extra``, and Claude's thinking
    blocks (``reasoning_details`` entries of :data:`REASONING_FORMAT`) removed; new objects where
    something changed, ``messages`` itself when nothing did (the common case costs one scan)."""
    if not isinstance(messages, list) or not any(_needs_change(m, strict, keep_extra) for m in messages):
        return messages
    out: list[Any] = []
    for message in messages:
        if not _needs_change(message, strict, keep_extra):
            out.append(message)
            continue
        message = dict(message)
        if isinstance(message.get("tool_call_id"), str):
            message["tool_call_id"] = portable_call_id(message["tool_call_id"], strict=strict)
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            message["tool_calls"] = [_portable_call(c, strict, keep_extra) for c in calls]
        if _claude_reasoning(message):
            kept = [d for d in message["reasoning_details"] if not _claude_detail(d)]
            if kept:
                message["reasoning_details"] = kept
            else:
                del message["reasoning_details"]
        out.append(message)
    return out


def _portable_call(call: Any, strict: bool, keep_extra: bool) -> Any:
    if not isinstance(call, dict):
        return call
    call = dict(call)
    if not keep_extra:
        call.pop("extra_content", None)
    if isinstance(call.get("id"), str):
        call["id"] = portable_call_id(call["id"], strict=strict)
    return call


def _claude_detail(detail: Any) -> bool:
    return isinstance(detail, dict) and detail.get("format") == REASONING_FORMAT


def _claude_reasoning(message: dict[str, Any]) -> bool:
    details = message.get("reasoning_details")
    return isinstance(details, list) and any(_claude_detail(d) for d in details)


def _needs_change(message: Any, strict: bool, keep_extra: bool) -> bool:
    if not isinstance(message, dict):
        return False
    if _claude_reasoning(message):
        return True
    answered = message.get("tool_call_id")
    if isinstance(answered, str) and portable_call_id(answered, strict=strict) != answered:
        return True
    for call in message.get("tool_calls") or ():
        if not isinstance(call, dict):
            continue
        if not keep_extra and "extra_content" in call:
            return True
        call_id = call.get("id")
        if isinstance(call_id, str) and portable_call_id(call_id, strict=strict) != call_id:
            return True
    return False
