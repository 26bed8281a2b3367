"""Graders, table-driven: what each kind scores, and that what it cannot grade is an error, not a 0."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from hedge.evals.graders import (
    Answer,
    Case,
    Grade,
    GraderError,
    ToolCall,
    cosine,
    make_grader,
)

SCHEMA_REQUEST = {
    "messages": [{"role": "user", "content": "a city"}],
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "city",
            "schema": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "pop": {"type": "integer"}},
                "required": ["name"],
            },
        },
    },
}
PLAIN = {"messages": [{"role": "user", "content": "q"}]}


def _case(text: str = "", expected: Any = None, request: dict[str, Any] | None = None, **kw: Any) -> Case:
    return Case(request or PLAIN, Answer(text, kw.pop("calls", ())), expected, **kw)


@pytest.mark.parametrize(
    ("spec", "text", "expected", "score"),
    [
        ("exact", " Paris\n", "Paris", 1.0),
        ("exact", "paris", "Paris", 0.0),
        ("exact", "Lyon", ["Paris", "Lyon"], 1.0),
        ("exact", "42", 42, 1.0),
        ("contains", "The capital is PARIS.", "Paris", 1.0),
        ("contains", "Pairs", "Paris", 0.0),
        ("regex:^\\d+$", "123", None, 1.0),
        ("regex:^\\d+$", "12a", None, 0.0),
        ("regex:answer: {expected}\\b", "answer: 3.14 ok", "3.14", 1.0),
        ("regex:answer: {expected}\\b", "answer: 3x14", "3.14", 0.0),
    ],
)
async def test_text_graders(spec: str, text: str, expected: Any, score: float) -> None:
    grader = make_grader(spec)
    assert grader.binary and not grader.pairwise
    grade = await grader.grade(_case(text, expected))
    assert (grade.score, grade.passed) == (score, score == 1.0)


@pytest.mark.parametrize("spec", ["exact", "contains", "regex:{expected}"])
async def test_no_expected_answer_is_a_grader_error(spec: str) -> None:
    with pytest.raises(GraderError, match="no expected"):
        await make_grader(spec).grade(_case("x"))


@pytest.mark.parametrize(
    ("text", "body", "score"),
    [
        ('{"name": "Oslo", "pop": 700000}', SCHEMA_REQUEST, 1.0),
        ('{"pop": 700000}', SCHEMA_REQUEST, 0.0),
        ('{"name": "Oslo", "pop": "many"}', SCHEMA_REQUEST, 0.0),
        ("Oslo", SCHEMA_REQUEST, 0.0),
        ('{"a": 1}', {**PLAIN, "response_format": {"type": "json_object"}}, 1.0),
        ("[1]", {**PLAIN, "response_format": {"type": "json_object"}}, 0.0),
    ],
)
async def test_json_schema(text: str, body: dict[str, Any], score: float) -> None:
    assert (await make_grader("json_schema").grade(_case(text, request=body))).score == score


async def test_json_schema_without_a_schema_is_an_error() -> None:
    with pytest.raises(GraderError, match="asks for no JSON"):
        await make_grader("json_schema").grade(_case("{}"))


WEATHER = ToolCall("weather", {"city": "Oslo", "unit": "c"})


@pytest.mark.parametrize(
    ("calls", "expected", "reference", "score"),
    [
        ((WEATHER,), [{"name": "weather", "arguments": '{"unit": "c", "city": "Oslo"}'}], None, 1.0),
        ((WEATHER,), [{"name": "weather", "arguments": {"city": "Bergen", "unit": "c"}}], None, 0.0),
        ((ToolCall("time", {}), WEATHER), None, Answer("", (WEATHER, ToolCall("time", {}))), 1.0),
        (
            (),
            {"content": None, "tool_calls": [{"function": {"name": "weather", "arguments": "{}"}}]},
            None,
            0.0,
        ),
    ],
)
async def test_tool_call(
    calls: tuple[ToolCall, ...], expected: Any, reference: Answer | None, score: float
) -> None:
    case = _case(expected=expected, reference=reference, calls=calls)
    assert (await make_grader("tool_call").grade(case)).score == score


async def test_tool_call_needs_a_reference_that_calls() -> None:
    with pytest.raises(GraderError):
        await make_grader("tool_call").grade(_case(calls=(WEATHER,)))
    with pytest.raises(GraderError, match="calls no tool"):
        await make_grader("tool_call").grade(_case(expected="plain text", calls=(WEATHER,)))


async def test_similarity_through_an_alias() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def ask(endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        seen.append((endpoint, body))
        vectors = {"cat": [1.0, 0.0], "kitten": [0.8, 0.6], "car": [-1.0, 0.0]}
        return {"data": [{"index": i, "embedding": vectors[t]} for i, t in enumerate(body["input"])]}

    grader = make_grader("similarity:embed", ask)
    assert not grader.binary
    assert (await grader.grade(_case("kitten", "cat"))).score == pytest.approx(0.8)
    assert (await grader.grade(_case("car", "cat"))).score == 0.0  # negative cosine clipped
    assert seen[0] == ("embeddings", {"model": "embed", "input": ["kitten", "cat"]})
    assert cosine([1.0, 1.0], [2.0, 2.0]) == pytest.approx(1.0)


async def test_similarity_failure_is_a_grader_error() -> None:
    async def ask(endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("503 from upstream")

    with pytest.raises(GraderError, match="embeddings through 'embed' failed"):
        await make_grader("similarity:embed", ask).grade(_case("a", "b"))


def _judge(verdicts: dict[str, str]) -> Any:
    """A judge that prefers whichever answer text is in ``verdicts`` (order-blind unless told)."""
    prompts: list[str] = []

    async def ask(endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body["messages"][1]["content"]
        prompts.append(prompt)
        a = prompt.split("[Answer A]\n")[1].split("\n\n[Answer B]")[0]
        b = prompt.split("[Answer B]\n")[1].split("\n\nVerdict:")[0]
        said = verdicts.get("always")
        if said is None:
            said = "A" if verdicts.get(a) == "good" else "B" if verdicts.get(b) == "good" else "TIE"
        return {"choices": [{"message": {"role": "assistant", "content": said}}]}

    return ask, prompts


@pytest.mark.parametrize(
    ("verdicts", "score"),
    [
        ({"mine": "good"}, 1.0),
        ({"theirs": "good"}, 0.0),
        ({}, 0.5),
        ({"always": "A"}, 0.5),  # position bias: swapping the order cancels it
        ({"always": "Verdict: B."}, 0.5),
    ],
)
async def test_pairwise_judge_swaps_positions(verdicts: dict[str, str], score: float) -> None:
    ask, prompts = _judge(verdicts)
    grader = make_grader("judge:judge", ask)
    assert grader.pairwise
    grade = await grader.grade(_case("mine", reference=Answer("theirs")))
    assert grade.score == score
    assert len(prompts) == 2
    assert "[Answer A]\nmine" in prompts[0] and "[Answer A]\ntheirs" in prompts[1]


async def test_judge_against_itself_and_unreadable_verdicts() -> None:
    ask, prompts = _judge({"always": "I cannot decide between A and B"})
    grader = make_grader("judge:judge", ask)
    assert (await grader.grade(_case("x", reference=Answer("x"), is_reference=True))).score == 0.5
    assert prompts == []  # the reference is not asked to beat itself
    with pytest.raises(GraderError, match="not one of A, B, TIE"):
        await grader.grade(_case("mine", reference=Answer("theirs")))


async def test_absolute_judge_with_a_rubric() -> None:
    async def ask(endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        assert "Rubric:\nBe correct." in body["messages"][1]["content"]
        return {"choices": [{"message": {"content": "8"}}]}

    grader = make_grader("judge:judge", ask, rubric="Be correct.")
    assert not grader.pairwise
    grade = await grader.grade(_case("answer"))
    assert grade.score == pytest.approx(7 / 9) and grade.detail == "score 8/10"


def _module(**functions: Any) -> str:
    module = types.ModuleType("user_graders")
    for name, fn in functions.items():
        setattr(module, name, fn)
    sys.modules["user_graders"] = module
    return "user_graders"


async def _async_grade(case: Case) -> dict[str, Any]:
    return {"score": 0.25, "detail": "async"}


@pytest.mark.parametrize(
    ("fn", "score"),
    [
        (lambda case: case.answer.text == "yes", 1.0),
        (lambda case: 0.75, 0.75),
        (lambda case: Grade(0.5, None, "mine"), 0.5),
        (_async_grade, 0.25),
    ],
)
async def test_python_grader(fn: Any, score: float) -> None:
    grader = make_grader(f"python:{_module(grade=fn)}:grade")
    assert (await grader.grade(_case("yes"))).score == score


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda case: 1 / 0, "ZeroDivisionError"),
        (lambda case: 1.5, "outside"),
        (lambda case: "good", "not a bool"),
    ],
)
async def test_python_grader_failures_are_errors(fn: Any, match: str) -> None:
    grader = make_grader(f"python:{_module(grade=fn)}:grade")
    with pytest.raises(GraderError, match=match):
        await grader.grade(_case("x"))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("fuzzy", "unknown grader"),
        ("regex:(", "invalid regex"),
        ("judge:j", "needs a way"),
        ("python:no_such_module_here:f", "cannot import"),
        ("python:os:no_such_function", "not a function"),
        ("python:nomodule", "module:function"),
    ],
)
def test_bad_specs(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_grader(spec)
