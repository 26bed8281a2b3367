"""What every mock upstream answers, independent of wire format.

Each style's mock turns its request into a list of :class:`Turn` and renders
the :class:`Reply` planned here in its own format, so the OpenAI, Anthropic and
Gemini mocks answer the same conversation the same way:

* text replies name the upstream model and echo the last user message;
* with tools offered and the user speaking last, the mock calls a tool: each
  tool the user's message names (parallel calls), else the one ``tool_choice``
  forces, else the first, with arguments generated from its JSON schema;
* after a tool result it answers in text quoting that result;
* JSON mode answers a JSON object;
* ``stop`` cuts the text before the first stop sequence, ``max_tokens``
  truncates it (finish reason ``length``). One word is one token;
* a system prompt containing ``Always answer in uppercase`` makes text replies
  uppercase (so a dropped system prompt shows);
* structured output with a JSON schema answers an object built from the schema;
* a model whose name contains ``no-such-model`` does not exist (each style
  answers it with its own 404).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Finish = Literal["stop", "length", "tool_calls"]
_PIECE = re.compile(r"\s*\S+\s*|\s+")
UPPERCASE_RULE = "always answer in uppercase"
"""A system prompt containing this (in any case) makes the mocks answer in uppercase."""
UNKNOWN_MODEL_MARKER = "no-such-model"


def unknown_model(model: str) -> bool:
    """Whether the mocks treat ``model`` as not existing (every other name is accepted and echoed)."""
    return UNKNOWN_MODEL_MARKER in model


@dataclass(slots=True)
class Turn:
    role: Literal["system", "user", "assistant", "tool"]
    text: str


@dataclass(slots=True)
class Tool:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class Reply:
    pieces: list[str]
    """The text split into tokens (words with their whitespace); empty for a pure tool call."""
    tool_calls: list[ToolCall]
    finish: Finish
    matched_stop: str | None
    prompt_tokens: int
    completion_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts/blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def count_tokens(text: str) -> int:
    return len(text.split())


def split_pieces(text: str) -> list[str]:
    return _PIECE.findall(text)


def plan_reply(
    model: str,
    turns: list[Turn],
    *,
    tools: list[Tool] | None = None,
    tool_choice: str | None = None,
    max_tokens: int | None = None,
    stop: list[str] | None = None,
    json_mode: bool = False,
    json_schema: dict[str, Any] | None = None,
) -> Reply:
    """Decide the deterministic answer to a conversation."""
    prompt_tokens = sum(count_tokens(t.text) + 3 for t in turns) + 3
    last = turns[-1] if turns else Turn("user", "")
    last_user = next((t.text for t in reversed(turns) if t.role == "user"), "")

    if tools and last.role == "user" and tool_choice != "none":
        calls = _tool_calls(model, last_user, tools, tool_choice)
        completion = sum(count_tokens(orjson.dumps(c.arguments).decode()) + 1 for c in calls)
        return Reply([], calls, "tool_calls", None, prompt_tokens, completion)

    if last.role == "tool":
        text = f"{model} says: the tool returned {last.text}"
    else:
        text = f"{model} says: {last_user}"
    if any(t.role == "system" and UPPERCASE_RULE in t.text.lower() for t in turns):
        text = text.upper()
    if json_schema is not None:
        text = orjson.dumps(example_from_schema(json_schema, last_user)).decode()
    elif json_mode:
        text = orjson.dumps({"model": model, "echo": last_user}).decode()

    finish: Finish = "stop"
    matched: str | None = None
    if stop:
        cut = min(((text.find(s), s) for s in stop if s and s in text), default=None)
        if cut is not None:
            text, matched = text[: cut[0]], cut[1]
    pieces = split_pieces(text)
    if max_tokens is not None and len(pieces) > max_tokens:
        pieces = pieces[:max_tokens]
        finish = "length"
        matched = None
    return Reply(pieces, [], finish, matched, prompt_tokens, len(pieces))


def _tool_calls(model: str, user_text: str, tools: list[Tool], choice: str | None) -> list[ToolCall]:
    by_name = {t.name: t for t in tools}
    if choice and choice in by_name:
        chosen = [by_name[choice]]
    else:
        named = [t for t in tools if re.search(rf"\b{re.escape(t.name)}\b", user_text)]
        chosen = named or [tools[0]]
    return [
        ToolCall(_call_id(model, user_text, i), t.name, example_from_schema(t.parameters, user_text))
        for i, t in enumerate(chosen)
    ]


def _call_id(model: str, text: str, index: int) -> str:
    digest = hashlib.sha1(f"{model}\x00{text}\x00{index}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def example_from_schema(schema: Any, text: str = "example") -> Any:
    """A value that satisfies a (simple) JSON schema: enums, types, bounds, required keys."""
    if not isinstance(schema, dict):
        return {}
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return example_from_schema(schema[key][0], text)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        return {name: example_from_schema(sub, text) for name, sub in props.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [example_from_schema(schema.get("items", {}), text) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "string":
        value = text or "example"
        max_len = schema.get("maxLength")
        return value[: int(max_len)] if isinstance(max_len, int) else value
    return {}
