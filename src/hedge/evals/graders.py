"""Graders: one protocol, several kinds, each turning an answer into a score from 0 to 1.

A grader sees a :class:`Case` (the request, the candidate's :class:`Answer`, the item's
``expected`` and the reference's answer) and returns a :class:`Grade`, or raises
:class:`GraderError` when it cannot grade (no expected answer, a judge that answered nothing
readable, the user's function failing): such items are counted as grader errors, never scored.
Graders that ask a model (``similarity``, ``judge``) do it through an :data:`Ask` they are given,
the caller's way into the gateway, so nothing here knows how a request is served: offline
evaluation, shadow traffic and online graders can all hand in their own.

Kinds (:func:`make_grader` reads the spec):

``exact`` / ``contains`` / ``regex:PATTERN``
    Against ``expected`` (a string, or a list of acceptable strings): equal after trimming; contained,
    ignoring case; ``re.search`` of the pattern, where ``{expected}`` stands for the expected answer.
``json_schema``
    The answer parses as JSON and is valid against the request's ``response_format`` schema.
``tool_call``
    The same tool calls (names and parsed arguments, in any order) as the expected answer, or the
    reference's answer when the item has none.
``similarity:ALIAS``
    Cosine similarity of the answer's and the reference's embeddings, through the alias.
``judge:ALIAS``
    An LLM judge through the alias: pairwise against the reference, asked twice with the answers'
    positions swapped (a verdict counts only if both orders agree, else it is a tie), or, with a
    rubric, an absolute score from 1 to 10.
``python:module:function``
    The user's own: called with the :class:`Case`, it returns a bool, a number in [0, 1], a
    :class:`Grade` or ``{"score", "passed"?, "detail"?}``; it may be a coroutine function.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from hedge.routing.escalation import conforms

Ask = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""``ask(endpoint, body)``: send a request (``"chat"`` or ``"embeddings"``, an OpenAI body whose
``model`` is an alias) and return the response JSON; raises on failure."""


class GraderError(Exception):
    """The item could not be graded (say why): counted, never scored."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: Any


@dataclass(frozen=True, slots=True)
class Answer:
    """What a model answered: its text and tool calls (arguments parsed where they are JSON)."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()

    @classmethod
    def from_completion(cls, body: dict[str, Any]) -> Answer:
        """The first choice of an OpenAI chat completion."""
        choices = body.get("choices")
        message = choices[0].get("message") if isinstance(choices, list) and choices else None
        if not isinstance(message, dict):
            return cls("")
        content = message.get("content")
        calls = []
        for call in message.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                calls.append(ToolCall(str(fn.get("name")), _parsed(fn.get("arguments"))))
        return cls(content if isinstance(content, str) else "", tuple(calls))

    @classmethod
    def from_expected(cls, expected: Any) -> Answer | None:
        """A dataset's ``expected`` as an answer: text, ``[{"name", "arguments"}]`` tool calls, or an
        assistant message (``{"content", "tool_calls"}``); None if it is none of those."""
        if isinstance(expected, str):
            return cls(expected)
        if isinstance(expected, dict) and ("content" in expected or "tool_calls" in expected):
            return cls.from_completion({"choices": [{"message": expected}]})
        if isinstance(expected, list) and expected and all(isinstance(c, dict) for c in expected):
            calls = []
            for c in expected:
                fn = c.get("function") if isinstance(c.get("function"), dict) else c
                calls.append(ToolCall(str(fn.get("name")), _parsed(fn.get("arguments"))))
            return cls("", tuple(calls))
        return None


def _parsed(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return arguments
    return arguments


@dataclass(slots=True)
class Case:
    request: dict[str, Any]
    answer: Answer
    expected: Any = None
    reference: Answer | None = None
    """The reference's answer to this item, when there is a reference."""
    metadata: dict[str, Any] = field(default_factory=dict)
    is_reference: bool = False
    """This answer is the reference's own (a pairwise grader calls it a tie without asking)."""

    def reference_answer(self) -> Answer:
        """What to compare against: the item's expected answer, else the reference's answer."""
        expected = Answer.from_expected(self.expected) if self.expected is not None else None
        if expected is not None:
            return expected
        if self.reference is not None:
            return self.reference
        raise GraderError("the item has no expected answer and there is no reference answer")


@dataclass(frozen=True, slots=True)
class Grade:
    score: float
    """0 (worst) to 1 (best); a pairwise grade: 1 win, 0.5 tie, 0 loss against the reference."""
    passed: bool | None = None
    detail: str = ""


class Grader(Protocol):
    name: str
    binary: bool
    """Grades are pass/fail (score 0 or 1): the interval is Wilson's."""
    pairwise: bool
    """Grades compare the answer with the reference's: win/tie/loss come from the grade itself."""

    async def grade(self, case: Case) -> Grade: ...


def _expected_texts(case: Case) -> list[str]:
    expected = case.expected
    if expected is None:
        raise GraderError("the item has no expected answer")
    if isinstance(expected, list) and all(isinstance(e, str) for e in expected) and expected:
        return list(expected)
    if isinstance(expected, str | int | float) and not isinstance(expected, bool):
        return [str(expected)]
    raise GraderError("expected must be a string or a list of strings for this grader")


def _passed(ok: bool, detail: str = "") -> Grade:
    return Grade(1.0 if ok else 0.0, ok, detail)


class Exact:
    name, binary, pairwise = "exact", True, False

    async def grade(self, case: Case) -> Grade:
        got = case.answer.text.strip()
        return _passed(any(got == e.strip() for e in _expected_texts(case)))


class Contains:
    name, binary, pairwise = "contains", True, False

    async def grade(self, case: Case) -> Grade:
        got = case.answer.text.casefold()
        return _passed(any(e.casefold() in got for e in _expected_texts(case)))


class Regex:
    binary, pairwise = True, False

    def __init__(self, pattern: str) -> None:
        self.name = f"regex:{pattern}"
        self.pattern = pattern
        self._fixed = None if "{expected}" in pattern else re.compile(pattern)

    async def grade(self, case: Case) -> Grade:
        if self._fixed is not None:
            return _passed(self._fixed.search(case.answer.text) is not None)
        for expected in _expected_texts(case):
            if re.search(self.pattern.replace("{expected}", re.escape(expected)), case.answer.text):
                return _passed(True)
        return _passed(False)


class JsonSchema:
    name, binary, pairwise = "json_schema", True, False

    async def grade(self, case: Case) -> Grade:
        fmt = case.request.get("response_format")
        if not isinstance(fmt, dict) or fmt.get("type") not in ("json_schema", "json_object"):
            raise GraderError("the request asks for no JSON (response_format json_schema or json_object)")
        try:
            value = orjson.loads(case.answer.text)
        except orjson.JSONDecodeError:
            return _passed(False, "not JSON")
        if fmt["type"] == "json_object":
            return _passed(isinstance(value, dict), "" if isinstance(value, dict) else "not an object")
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise GraderError("response_format.json_schema has no schema")
        ok = conforms(value, schema)
        return _passed(ok, "" if ok else "not valid against the schema")


class ToolCalls:
    name, binary, pairwise = "tool_call", True, False

    async def grade(self, case: Case) -> Grade:
        want = case.reference_answer().tool_calls
        if not want:
            raise GraderError("the reference answer calls no tool")
        got = case.answer.tool_calls
        key: Callable[[ToolCall], bytes] = lambda c: orjson.dumps(  # noqa: E731
            [c.name, c.arguments], option=orjson.OPT_SORT_KEYS
        )
        ok = sorted(map(key, got)) == sorted(map(key, want))
        return _passed(ok, "" if ok else f"called {[c.name for c in got]}, expected {[c.name for c in want]}")


class Similarity:
    binary, pairwise = False, False

    def __init__(self, alias: str, ask: Ask) -> None:
        self.name = f"similarity:{alias}"
        self.alias = alias
        self.ask = ask

    async def grade(self, case: Case) -> Grade:
        reference = case.reference_answer().text
        try:
            body = await self.ask("embeddings", {"model": self.alias, "input": [case.answer.text, reference]})
            vectors = [d["embedding"] for d in sorted(body["data"], key=lambda d: d["index"])]
            a, b = vectors[0], vectors[1]
        except GraderError:
            raise
        except Exception as exc:
            raise GraderError(f"embeddings through {self.alias!r} failed: {exc}") from None
        return Grade(max(0.0, cosine(a, b)))


def cosine(a: list[float], b: list[float]) -> float:
    if len(a) != len(b) or not a:
        raise GraderError("embeddings of different sizes")
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


_PAIRWISE_SYSTEM = (
    "You are an impartial judge. Given a conversation and two candidate answers to its last message, "
    "decide which answer is better: more correct, helpful and faithful to the request. Do not let the "
    "order of the answers, their length or their style sway you. Reply with exactly one word: A, B or TIE."
)
_ABSOLUTE_SYSTEM = (
    "You are an impartial judge. Score the answer to the last message of the conversation from 1 (worst) "
    "to 10 (best) using the rubric. Reply with the number only."
)
_VERDICT = re.compile(r"\b(A|B|TIE)\b")
_SCORE = re.compile(r"\b(10|[1-9])\b")


def transcript(request: dict[str, Any]) -> str:
    """The conversation as plain text for a judge."""
    lines = []
    for message in request.get("messages") or ():
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        lines.append(f"{message.get('role')}: {content if isinstance(content, str) else ''}")
    return "\n".join(lines)


def _render(answer: Answer) -> str:
    calls = "".join(
        f"\n[tool call] {c.name}({orjson.dumps(c.arguments).decode()})" for c in answer.tool_calls
    )
    return answer.text + calls


class Judge:
    binary = False

    def __init__(self, alias: str, ask: Ask, rubric: str | None = None) -> None:
        self.name = f"judge:{alias}"
        self.alias = alias
        self.ask = ask
        self.rubric = rubric
        self.pairwise = rubric is None

    async def _say(self, system: str, user: str) -> str:
        body = {
            "model": self.alias,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": 0,
        }
        try:
            return Answer.from_completion(await self.ask("chat", body)).text
        except Exception as exc:
            raise GraderError(f"the judge {self.alias!r} failed: {exc}") from None

    async def grade(self, case: Case) -> Grade:
        if self.rubric is not None:
            return await self._absolute(case, self.rubric)
        if case.is_reference:
            return Grade(0.5, None, "the reference itself")
        reference = case.reference_answer()
        first = await self._verdict(case, _render(case.answer), _render(reference))  # candidate is A
        second = await self._verdict(case, _render(reference), _render(case.answer))  # candidate is B
        candidate_wins = first == "A" and second == "B"
        reference_wins = first == "B" and second == "A"
        detail = f"candidate first: {first}; reference first: {second}"
        if candidate_wins:
            return Grade(1.0, None, detail)
        if reference_wins:
            return Grade(0.0, None, detail)
        return Grade(0.5, None, detail)

    async def _verdict(self, case: Case, a: str, b: str) -> str:
        prompt = (
            f"Conversation:\n{transcript(case.request)}\n\n[Answer A]\n{a}\n\n[Answer B]\n{b}\n\nVerdict:"
        )
        said = await self._say(_PAIRWISE_SYSTEM, prompt)
        found = _VERDICT.findall(said.upper())
        if len(set(found)) != 1:
            raise GraderError(f"the judge's verdict is not one of A, B, TIE: {said[:80]!r}")
        return str(found[0])

    async def _absolute(self, case: Case, rubric: str) -> Grade:
        prompt = (
            f"Rubric:\n{rubric}\n\nConversation:\n{transcript(case.request)}\n\n"
            f"[Answer]\n{_render(case.answer)}\n\nScore:"
        )
        said = await self._say(_ABSOLUTE_SYSTEM, prompt)
        found = _SCORE.findall(said)
        if len(found) != 1:
            raise GraderError(f"the judge's score is not a number from 1 to 10: {said[:80]!r}")
        return Grade((int(found[0]) - 1) / 9, None, f"score {found[0]}/10")


class Python:
    binary, pairwise = False, False

    def __init__(self, target: str) -> None:
        self.name = f"python:{target}"
        module_name, _, function = target.rpartition(":")
        if not module_name or not function:
            raise ValueError(f"python grader must be python:module:function, got {self.name!r}")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"cannot import {module_name!r} for the python grader: {exc}") from None
        fn = getattr(module, function, None)
        if not callable(fn):
            raise ValueError(f"{module_name}.{function} is not a function")
        self.fn: Callable[[Case], Any] = fn
        self.binary = bool(getattr(fn, "binary", False))
        self.pairwise = bool(getattr(fn, "pairwise", False))

    async def grade(self, case: Case) -> Grade:
        try:
            result = self.fn(case)
            if inspect.isawaitable(result):
                result = await result
        except GraderError:
            raise
        except Exception as exc:
            raise GraderError(f"{self.name} raised {type(exc).__name__}: {exc}") from None
        return _as_grade(result, self.name)


def _as_grade(result: Any, name: str) -> Grade:
    if isinstance(result, Grade):
        grade = result
    elif isinstance(result, bool):
        grade = _passed(result)
    elif isinstance(result, int | float):
        grade = Grade(float(result))
    elif isinstance(result, dict) and isinstance(result.get("score"), int | float):
        passed = result.get("passed")
        grade = Grade(
            float(result["score"]),
            passed if isinstance(passed, bool) else None,
            str(result.get("detail", "")),
        )
    else:
        raise GraderError(f"{name} returned {type(result).__name__}, not a bool, a score or a Grade")
    if not 0.0 <= grade.score <= 1.0 or math.isnan(grade.score):
        raise GraderError(f"{name} returned a score outside [0, 1]: {grade.score}")
    return grade


SPECS = (
    "exact, contains, regex:PATTERN, json_schema, tool_call, similarity:ALIAS, judge:ALIAS, "
    "python:module:function"
)


def make_grader(spec: str, ask: Ask | None = None, rubric: str | None = None) -> Grader:
    """The grader ``spec`` names (see the module's docstring); ``ValueError`` if there is none such."""
    kind, _, rest = spec.partition(":")
    if kind == "exact" and not rest:
        return Exact()
    if kind == "contains" and not rest:
        return Contains()
    if kind == "json_schema" and not rest:
        return JsonSchema()
    if kind == "tool_call" and not rest:
        return ToolCalls()
    if kind == "regex" and rest:
        try:
            re.compile(rest.replace("{expected}", ""))
        except re.error as exc:
            raise ValueError(f"invalid regex in grader {spec!r}: {exc}") from None
        return Regex(rest)
    if kind in ("similarity", "judge") and rest:
        if ask is None:
            raise ValueError(f"grader {spec!r} needs a way to call the alias {rest!r}")
        return Similarity(rest, ask) if kind == "similarity" else Judge(rest, ask, rubric)
    if kind == "python" and rest:
        return Python(rest)
    raise ValueError(f"unknown grader {spec!r}; choose from {SPECS}")


def models_asked(spec: str) -> str | None:
    """The alias a grader spec calls (similarity/judge), if any."""
    kind, _, rest = spec.partition(":")
    return rest if kind in ("similarity", "judge") and rest else None
