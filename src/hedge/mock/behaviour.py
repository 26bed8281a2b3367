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
* with the ``quality`` knob set, a user message ending in ``Answer with: X`` is answered ``X`` with
  that probability and with a near miss of ``X`` otherwise (see :func:`answer_marker`), so an
  evaluation has ground truth; without the knob such a message is echoed like any other;
* a model whose name contains ``no-such-model``, or is longer than
  :data:`MAX_MODEL_NAME`, does not exist (each style answers it with its own 404).

Every size a reply takes from the request is bounded, so no request can make a
mock allocate more than a small multiple of its own body: the echo is cut at
:data:`MAX_ECHO_CHARS`, ``max_tokens`` is clamped to :data:`MAX_OUTPUT_TOKENS`,
JSON built from schemas (tool arguments, structured output) stops growing at
:data:`MAX_ARGUMENT_CHARS` and :data:`MAX_SCHEMA_DEPTH` (``minItems`` at
:data:`MAX_ARRAY_ITEMS`), and only the first :data:`MAX_TOOLS` tools and
:data:`MAX_STOP_SEQUENCES` stop sequences are considered. Limits the real APIs
enforce with an error are checked by each style before it plans a reply.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Finish = Literal["stop", "length", "tool_calls"]
_PIECE = re.compile(r"\s*\S+\s*|\s+")
UPPERCASE_RULE = "always answer in uppercase"
"""A system prompt containing this (in any case) makes the mocks answer in uppercase."""
UNKNOWN_MODEL_MARKER = "no-such-model"

MAX_MODEL_NAME = 256
"""Longer model names do not exist: the name is echoed in every stream chunk, so it must stay short."""
MAX_ECHO_CHARS = 8192
"""The most of the user's message (or of a tool result) a reply echoes, as a real answer is bounded too."""
MAX_OUTPUT_TOKENS = 8192
"""The mock model's output limit (Gemini's ``outputTokenLimit``): a larger ``max_tokens`` is clamped to it."""
MAX_ARGUMENT_CHARS = 16384
"""Roughly the most JSON text built from schemas for one reply (all its tool calls together)."""
MAX_SCHEMA_DEPTH = 32
"""Schema levels followed when building a value; deeper parts get an empty value."""
MAX_ARRAY_ITEMS = 64
"""``minItems`` is honoured up to this many items."""
MAX_TOOLS = 128
"""Tools considered for a call (OpenAI rejects more; the other styles' extra tools are ignored)."""
MAX_STOP_SEQUENCES = 64
"""Stop sequences considered (styles whose API allows fewer reject more before planning)."""
_COUNT_CHUNK = 1 << 16


def unknown_model(model: str) -> bool:
    """Whether the mocks treat ``model`` as not existing (every other name is accepted and echoed)."""
    return UNKNOWN_MODEL_MARKER in model or len(model) > MAX_MODEL_NAME


def clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters: what a reply may echo of a request."""
    return text if len(text) <= limit else text[:limit]


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
        return "".join(
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def count_tokens(text: str) -> int:
    """Words in ``text`` (one word is one token), split a slice at a time.

    ``str.split`` on a whole request-sized text would hold a string object per
    word at once, many times the text's own size.
    """
    if len(text) <= _COUNT_CHUNK:
        return len(text.split())
    total = 0
    for start in range(0, len(text), _COUNT_CHUNK):
        total += len(text[start : start + _COUNT_CHUNK].split())
        if start and not text[start - 1].isspace() and not text[start].isspace():
            total -= 1  # a word across the cut was counted on both sides
    return total


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
    answer: str | None = None,
) -> Reply:
    """Decide the deterministic answer to a conversation.

    ``max_tokens`` is a positive integer or None (the styles reject anything else
    first); above :data:`MAX_OUTPUT_TOKENS` it is clamped. ``answer`` is the text reply the
    ``quality`` knob chose (:meth:`~hedge.mock.state.MockState.graded_answer`), used in place of
    the echo when the reply is text.
    """
    prompt_tokens = sum(count_tokens(t.text) + 3 for t in turns) + 3
    model = clip(model, MAX_MODEL_NAME)
    last = turns[-1] if turns else Turn("user", "")
    last_user = clip(next((t.text for t in reversed(turns) if t.role == "user"), ""))

    if tools and last.role == "user" and tool_choice != "none":
        calls = _tool_calls(model, last_user, tools[:MAX_TOOLS], tool_choice)
        completion = sum(count_tokens(orjson.dumps(c.arguments).decode()) + 1 for c in calls)
        return Reply([], calls, "tool_calls", None, prompt_tokens, completion)

    if last.role == "tool":
        text = f"{model} says: the tool returned {clip(last.text)}"
    elif answer is not None:
        text = answer
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
    stops = [s for s in (stop or [])[:MAX_STOP_SEQUENCES] if isinstance(s, str) and s]
    if stops:
        cut = min(((text.find(s), s) for s in stops if s in text), default=None)
        if cut is not None:
            text, matched = text[: cut[0]], cut[1]
    pieces = split_pieces(text)
    limit = MAX_OUTPUT_TOKENS if max_tokens is None else min(max_tokens, MAX_OUTPUT_TOKENS)
    if len(pieces) > limit:
        pieces = pieces[:limit]
        finish = "length"
        matched = None
    return Reply(pieces, [], finish, matched, prompt_tokens, len(pieces))


_ANSWER_MARKER = re.compile(r"answer with:[ \t]*(\S[^\r\n]*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_MISS_STEPS = (1, -1, 2, -2, 3)


def answer_marker(text: str) -> str | None:
    """The answer a message asks for with a line ending ``Answer with: X`` (the last such line),
    quotes around ``X`` removed; None if it asks for none.

    This is how a dataset item tells a mock of known quality the right answer: the way a prompt
    tells a real model, so the mock stays a plain upstream that needs no side channel."""
    found = _ANSWER_MARKER.findall(clip(text))
    if not found:
        return None
    value: str = found[-1]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'`":
        value = value[1:-1]
    return value or None


def near_miss(answer: str, draw: int) -> str:
    """A plausible wrong answer: a number off by a little, the next letter of a one-letter choice,
    or a word with two letters swapped (``Paris`` -> ``Pairs``). Never equal to ``answer``, and
    never containing it, so exact and contains graders both see it as wrong."""
    if _NUMBER.fullmatch(answer):
        decimals = len(answer.split(".")[1]) if "." in answer else 0
        for i in range(len(_MISS_STEPS)):
            step = _MISS_STEPS[(draw + i) % len(_MISS_STEPS)]
            wrong = (
                f"{float(answer) + step / 10**decimals:.{decimals}f}" if decimals else str(int(answer) + step)
            )
            if answer not in wrong:
                return wrong
    if len(answer) == 1 and answer.isascii() and answer.isalpha():
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if answer.isupper() else "abcdefghijklmnopqrstuvwxyz"
        return letters[(letters.index(answer) + 1) % 26]
    middle = len(answer) // 2
    for i in [*range(middle, len(answer) - 1), *range(middle - 1, 0, -1)]:
        a, b = answer[i], answer[i + 1]
        if a != b and a.isalnum() and b.isalnum():
            return answer[:i] + b + a + answer[i + 2 :]
    return "I don't know" if "I don't know" not in answer else "no idea"


def _tool_calls(model: str, user_text: str, tools: list[Tool], choice: str | None) -> list[ToolCall]:
    by_name = {t.name: t for t in tools}
    if choice and choice in by_name:
        chosen = [by_name[choice]]
    else:
        named = [
            t
            for t in tools
            if t.name and t.name in user_text and re.search(rf"\b{re.escape(t.name)}\b", user_text)
        ]
        chosen = named or [tools[0]]
    budget = _Budget(MAX_ARGUMENT_CHARS)  # shared, so parallel calls together stay within it
    return [
        ToolCall(
            _call_id(model, user_text, i), t.name, _as_object(_example(t.parameters, user_text, budget, 0))
        )
        for i, t in enumerate(chosen)
    ]


def _as_object(value: Any) -> dict[str, Any]:
    """Tool arguments are always an object, whatever the schema's top level says."""
    return value if isinstance(value, dict) else {}


def _call_id(model: str, text: str, index: int) -> str:
    digest = hashlib.sha1(f"{model}\x00{text}\x00{index}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"call_{digest[:24]}"


def example_from_schema(schema: Any, text: str = "example") -> Any:
    """A value that satisfies a (simple) JSON schema: enums, types, bounds, required keys.

    Bounded whatever the schema asks (see :data:`MAX_ARGUMENT_CHARS`,
    :data:`MAX_SCHEMA_DEPTH`, :data:`MAX_ARRAY_ITEMS`): past a bound the value is
    cut short rather than made to satisfy the schema.
    """
    return _example(schema, text, _Budget(MAX_ARGUMENT_CHARS), 0)


class _Budget:
    """Characters of JSON the value being built may still take."""

    __slots__ = ("left",)

    def __init__(self, chars: int) -> None:
        self.left = chars

    def take(self, chars: int) -> bool:
        if chars > self.left:
            self.left = 0
            return False
        self.left -= chars
        return True


_SCALAR_CHARS = 8
"""What a number, boolean or null is charged (its JSON text is about that long)."""


def _example(schema: Any, text: str, budget: _Budget, depth: int) -> Any:
    if not isinstance(schema, dict):
        return {}
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return _given(enum[0], budget)
    if "const" in schema:
        return _given(schema["const"], budget)
    deeper = depth < MAX_SCHEMA_DEPTH
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return _example(options[0], text, budget, depth + 1) if deeper else {}
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties")
        out: dict[str, Any] = {}
        if deeper and isinstance(props, dict) and budget.take(2):
            for name, sub in props.items():
                if not budget.take(len(name) + 4):
                    break
                out[name] = _example(sub, text, budget, depth + 1)
        return out
    if kind == "array":
        wanted = schema.get("minItems", 1)
        count = int(min(max(1, wanted), MAX_ARRAY_ITEMS)) if _is_number(wanted) else 1
        items: list[Any] = []
        if deeper and budget.take(2):
            for _ in range(count):
                if not budget.take(1):
                    break
                items.append(_example(schema.get("items", {}), text, budget, depth + 1))
        return items
    if kind in ("integer", "number", "boolean", "null"):
        budget.take(_SCALAR_CHARS)
    if kind == "integer":
        low = schema.get("minimum", 1)
        return int(low) if _is_number(low) else 1
    if kind == "number":
        low = schema.get("minimum", 1.5)
        return float(low) if _is_number(low) else 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "string":
        value = text or "example"
        max_len = schema.get("maxLength")
        if isinstance(max_len, int) and not isinstance(max_len, bool) and max_len >= 0:
            value = value[:max_len]
        value = value[: max(0, budget.left - 2)]
        budget.take(len(value) + 2)
        return value
    return {}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _given(value: Any, budget: _Budget) -> Any:
    """An ``enum``/``const`` value from the schema, if it fits the budget and depth (else None)."""
    if isinstance(value, dict | list):
        if not _shallow(value, MAX_SCHEMA_DEPTH):
            return None
        size = len(orjson.dumps(value))
    else:
        size = len(value) + 2 if isinstance(value, str) else _SCALAR_CHARS
    return value if budget.take(size) else None


def _shallow(value: Any, limit: int) -> bool:
    """Whether ``value`` nests no deeper than ``limit`` levels (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level >= limit:
            return False
        stack.extend((child, level + 1) for child in children)
    return True


_TOO_DEEP = "<nested too deeply>"


def cut_depth(value: Any, limit: int = 64) -> Any:
    """``value`` with containers nested past ``limit`` levels replaced by a marker string.

    orjson reads up to 1024 levels but writes only 255, so a body that parsed can
    fail to be written back (hashed for an id, shown in ``/_mock/stats``).
    """
    if isinstance(value, dict):
        return {k: cut_depth(v, limit - 1) for k, v in value.items()} if limit > 0 else _TOO_DEEP
    if isinstance(value, list):
        return [cut_depth(v, limit - 1) for v in value] if limit > 0 else _TOO_DEEP
    return value


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """``orjson.dumps``, cutting ``value`` with :func:`cut_depth` first if it nests too deeply to write."""
    option = orjson.OPT_SORT_KEYS if sort_keys else None
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError:
        return orjson.dumps(cut_depth(value), option=option)


def digest(value: Any) -> str:
    """A stable hex digest of a JSON value (for deterministic ids), whatever its depth."""
    return hashlib.sha1(dumps(value, sort_keys=True)).hexdigest()


_UNIT = [(b / 127.5) - 1.0 for b in range(256)]
_UNIT_SQUARED = [v * v for v in _UNIT]


def embedding_vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for ``text``: distinct texts get distinct vectors.

    The text is hashed once and the vector expanded from that digest, so the cost
    is one pass over the text plus one hash per 32 dimensions, whatever the sizes.
    """
    seed = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    raw = b"".join(
        hashlib.sha256(seed + block.to_bytes(4, "little")).digest() for block in range((dims + 31) // 32)
    )[:dims]
    scale = 1.0 / (math.sqrt(sum(_UNIT_SQUARED[b] for b in raw)) or 1.0)
    return [_UNIT[b] * scale for b in raw]
