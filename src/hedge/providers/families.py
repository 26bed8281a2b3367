"""What a model's name says about the parameters its API accepts, per provider family.

The wire format is the same for every model of a provider, but the rules are not: newer Claude
models refuse ``temperature`` and ``top_p`` together, only some Claude and Gemini models think,
Gemini 3 takes a thinking *level* where Gemini 2.5 takes a token *budget*, and OpenAI's reasoning
models (o-series, gpt-5) refuse ``max_tokens``. These are pure functions of the upstream model name
(a provider prefix such as ``anthropic/`` or ``models/`` is ignored), so the capability check and the
adapters read the same rules. Answers are cached by name: every request asks about its deployment's
model, and a regular expression costs more than the look-up.

Sources: Anthropic's Messages API reference and extended-thinking guide (docs.anthropic.com),
Gemini's thinking guide (ai.google.dev/gemini-api/docs/thinking), OpenAI's reasoning guide
(platform.openai.com/docs/guides/reasoning).
"""

from __future__ import annotations

import functools
import re
from typing import Literal

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
"""OpenAI's ``reasoning_effort`` values, least to most."""

_CLAUDE = re.compile(
    r"claude-(?:(?P<tier>opus|sonnet|haiku)-(?P<major>\d+)(?:-(?P<minor>\d{1,2})(?!\d))?"
    r"|(?P<old>\d+)(?:-(?P<oldminor>\d))?-(?:opus|sonnet|haiku))"
)
_GEMINI = re.compile(r"gemini-(?P<major>\d+)(?:\.(?P<minor>\d+))?-?(?P<rest>[a-z0-9.-]*)")
_OPENAI_REASONING = re.compile(r"(?:^|/)(?:o\d+(?:-|$)|gpt-5)")
_by_name = functools.lru_cache(maxsize=1024)
"""Model names come from the config and from clients' requests: bounded all the same."""


def _base(model: str) -> str:
    return model.rsplit("/", 1)[-1].lower()


@_by_name
def claude_version(model: str) -> tuple[int, int] | None:
    """``(major, minor)`` of a Claude model name (``claude-sonnet-4-5-20250929`` is 4.5,
    ``claude-3-7-sonnet-latest`` 3.7, ``claude-opus-4-20250514`` 4.0), or None for another name."""
    match = _CLAUDE.search(_base(model))
    if match is None:
        return None
    if match.group("tier"):
        return int(match.group("major")), int(match.group("minor") or 0)
    return int(match.group("old")), int(match.group("oldminor") or 0)


def claude_exclusive_sampling(model: str) -> bool:
    """Claude models from 4.1 on refuse ``temperature`` and ``top_p`` in one request
    ("`temperature` and `top_p` cannot both be specified for this model")."""
    version = claude_version(model)
    return version is not None and version >= (4, 1)


def claude_effort(model: str) -> bool:
    """Claude models that take ``output_config.effort``: Opus 4.5, and every model from 4.6 on."""
    version = claude_version(model)
    if version is None:
        return False
    return version >= (4, 6) or (version == (4, 5) and "opus" in _base(model))


def claude_thinking(model: str) -> Literal["adaptive", "budget", "none"]:
    """How a Claude model thinks: ``adaptive`` (4.6 and later: ``thinking: {"type": "adaptive"}`` with
    ``output_config.effort``), ``budget`` (3.7 to 4.5: ``thinking.budget_tokens``), or not at all.

    An unrecognised name (a fine-tune, a proxy's alias) is taken to think with a budget, the form
    every thinking model accepts."""
    version = claude_version(model)
    if version is None:
        return "budget"
    if version >= (4, 6):
        return "adaptive"
    return "budget" if version >= (3, 7) else "none"


def claude_structured_output(model: str) -> bool:
    """Claude models with native structured output (``output_config.format``): 4.5 and later."""
    version = claude_version(model)
    return version is not None and version >= (4, 5)


GeminiThinking = Literal["level", "budget", "budget-pro", "none"]


@_by_name
def gemini_thinking(model: str) -> GeminiThinking:
    """How a Gemini model is told to think: ``level`` (Gemini 3: ``thinkingLevel``), ``budget``
    (Gemini 2.5 Flash / Flash-Lite: ``thinkingBudget``, 0 turns thinking off), ``budget-pro`` (2.5 Pro:
    a budget of 128 to 32768, thinking cannot be turned off) or ``none`` (1.x, 2.0: no thinking)."""
    match = _GEMINI.search(_base(model))
    if match is None:
        return "budget"
    major, minor = int(match.group("major")), int(match.group("minor") or 0)
    if major >= 3:
        return "level"
    if (major, minor) >= (2, 5):
        return "budget-pro" if "pro" in match.group("rest") else "budget"
    return "none"


def gemini_pro(model: str) -> bool:
    return "pro" in _base(model)


@_by_name
def openai_reasoning(model: str) -> bool:
    """OpenAI reasoning models (o1, o3, o4-mini, gpt-5 ...): they take ``max_completion_tokens`` and
    ``reasoning_effort`` and refuse ``max_tokens``."""
    name = model.lower()
    return _OPENAI_REASONING.search(name) is not None and "-chat" not in name


def thinks(style: str, model: str) -> bool:
    """Whether ``model`` on a ``style`` upstream can be asked to reason (an OpenAI-style model only if
    it is one of OpenAI's reasoning models: another server's names say nothing)."""
    if style == "anthropic":
        return claude_thinking(model) != "none"
    if style == "gemini":
        return gemini_thinking(model) != "none"
    return openai_reasoning(model)
