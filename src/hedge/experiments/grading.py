"""Grading a shadow pair: the candidate's answer against the primary's, which stands as the reference.

:func:`grade_pair` is the one function shadow traffic grades through. It knows the graders that
need nothing but the two texts (``exact``, ``contains``); every other spec is refused when the
config is loaded (:func:`check_spec`), so nothing is ever scored by a grader that does not exist.
The evaluation graders that need only the two texts plug in from :mod:`hedge.evals.graders`
(``regex:PATTERN``, with ``{expected}`` standing for the primary's answer, and
``python:module:function``, given an evals ``Case`` whose ``expected`` is the primary's answer).
Graders that need the request's schema, tool calls or a model (``json_schema``, ``tool_call``,
``similarity:``, ``judge:``) are not offered for shadow pairs: :data:`GRADERS` maps a spec's kind to
a coroutine, and :func:`check_spec` accepts what it holds.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hedge.evals import graders as evals


@dataclass(frozen=True, slots=True)
class Grade:
    """A score in [0, 1], or why there is none (a grader error is counted, never scored)."""

    score: float | None
    error: str | None = None


Grader = Callable[[str, str, str], Awaitable[Grade]]
"""``(spec, reference, answer) -> Grade``."""


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


async def _exact(_spec: str, reference: str, answer: str) -> Grade:
    """The same text, ignoring case and runs of whitespace."""
    return Grade(1.0 if _normal(reference) == _normal(answer) else 0.0)


async def _contains(_spec: str, reference: str, answer: str) -> Grade:
    """The answer contains the reference (ignoring case and runs of whitespace)."""
    return Grade(1.0 if _normal(reference) in _normal(answer) else 0.0)


@functools.lru_cache(maxsize=64)
def _evals_grader(spec: str) -> evals.Grader:
    return evals.make_grader(spec)


async def _from_evals(spec: str, reference: str, answer: str) -> Grade:
    """An evaluation grader over the two texts: the primary's answer is the item's ``expected``."""
    case = evals.Case(request={}, answer=evals.Answer(answer), expected=reference)
    try:
        grade = await _evals_grader(spec).grade(case)
    except evals.GraderError as exc:
        return Grade(None, str(exc)[:500])
    return Grade(grade.score)


GRADERS: dict[str, Grader] = {
    "exact": _exact,
    "contains": _contains,
    "regex": _from_evals,
    "python": _from_evals,
}
"""Graders by kind (a spec's text before its first ``:``)."""


def _kind(spec: str) -> str:
    return spec.split(":", 1)[0]


def check_spec(spec: str) -> str | None:
    """What is wrong with ``spec`` for shadow grading, or ``None``."""
    if _kind(spec) in GRADERS:
        if GRADERS[_kind(spec)] is not _from_evals:
            return None
        try:
            _evals_grader(spec)
        except ValueError as exc:
            return str(exc)
        return None
    return f"grader {spec!r} is not available for shadow traffic (available: {', '.join(sorted(GRADERS))})"


async def grade_pair(spec: str, reference: str, answer: str) -> Grade:
    """Grade ``answer`` against ``reference`` with the grader ``spec``; a failing grader is an error."""
    grader = GRADERS.get(_kind(spec))
    if grader is None:
        return Grade(None, check_spec(spec))
    try:
        return await grader(spec, reference, answer)
    except Exception as exc:  # a grader's failure is the pair's error, never the gateway's
        return Grade(None, f"{type(exc).__name__}: {exc}"[:500])
