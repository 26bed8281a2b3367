"""Which request parameters a provider honours, and what happens to the others.

Every chat-completions parameter has a row in :data:`PARAMETERS` saying, per wire format, whether it
is *translated* (sent in the upstream's own terms), *emulated* (the gateway produces the effect),
*ignorable* by nature (it cannot change the answer the client reads: dropped, and named in
``x-hedge-dropped-params``) or *unsupported* (refused with a 400 naming the parameter and the
provider, or dropped and named in ``x-hedge-dropped-params``, by the provider's ``on_unsupported``
policy or the request's ``hedge.on_unsupported``). A parameter with no row is handled by
:data:`UNKNOWN`: passed through to OpenAI-compatible upstreams (which have extras of their own),
unsupported elsewhere, so a new OpenAI parameter is never dropped in silence.

A translated parameter can still be unsupported for some values or models (``n`` > 1 on Anthropic,
``temperature`` above 1 on Claude, ``temperature`` with ``top_p`` on Claude 4.1 and later,
``reasoning_effort: "none"`` on a Gemini model that cannot stop thinking): :data:`_CHECKS` and
:func:`model_rules` find those. The default policy is to refuse: a request must never silently
change meaning. The README's parameter table is :func:`markdown_table` of this module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hedge.providers import families
from hedge.providers.base import Capabilities, thinking_requested
from hedge.providers.ids import REASONING_FORMAT
from hedge.providers.signatures import THINKING


class Support(StrEnum):
    TRANSLATED = "translated"
    EMULATED = "emulated"
    IGNORABLE = "ignorable"
    UNSUPPORTED = "unsupported"
    PASSED = "passed through"


T, E, IG, U, P = Support.TRANSLATED, Support.EMULATED, Support.IGNORABLE, Support.UNSUPPORTED, Support.PASSED
STYLES = ("openai", "anthropic", "gemini")


@dataclass(frozen=True, slots=True)
class Param:
    """One chat-completions parameter: its fate on each wire format, and how (for the README)."""

    name: str
    openai: Support
    anthropic: Support
    gemini: Support
    note: str = ""

    def on(self, style: str) -> Support:
        support: Support = getattr(self, style, UNKNOWN.get(style, U))
        return support


PARAMETERS: tuple[Param, ...] = (
    Param("messages", T, T, T, "system parts keep `cache_control` on Anthropic"),
    Param("model", T, T, T, "replaced by the deployment's model"),
    Param("stream", T, T, T),
    Param("stream_options", T, T, T, "usage is always read; sent to the client only when asked"),
    Param("max_completion_tokens", T, T, T, "Anthropic `max_tokens`, Gemini `maxOutputTokens`"),
    Param("max_tokens", T, T, T, "sent as `max_completion_tokens` to OpenAI reasoning models"),
    Param("temperature", T, T, T, "Claude: 0 to 1, and not with `top_p` on Claude 4.1+ (policy)"),
    Param("top_p", T, T, T, "Claude 4.1+: not with `temperature` (policy: dropped, `temperature` kept)"),
    Param("stop", T, T, T, "Anthropic `stop_sequences`, Gemini `stopSequences` (at most 5)"),
    Param("n", T, U, T, "Gemini `candidateCount`"),
    Param("tools", T, T, T),
    Param("tool_choice", T, T, T),
    Param(
        "parallel_tool_calls",
        T,
        T,
        E,
        "Gemini, `false`: the first call is kept, `x-hedge-emulated: parallel_tool_calls`",
    ),
    Param(
        "response_format",
        T,
        T,
        T,
        "Claude 4.5+: native `output_config.format`; older Claude: "
        "a system instruction; Gemini `responseJsonSchema`",
    ),
    Param(
        "reasoning_effort",
        T,
        T,
        T,
        "Claude: `thinking` budget (4.6+: adaptive + `output_config.effort`); "
        "Gemini: `thinkingConfig` budget (2.5) or level (3); the thinking text comes back as "
        "`reasoning_content`",
    ),
    Param("user", T, T, IG, "Anthropic `metadata.user_id`"),
    Param("safety_identifier", T, T, IG, "Anthropic `metadata.user_id`"),
    Param("seed", T, IG, T, "best-effort determinism by nature: dropped where there is none"),
    Param("presence_penalty", T, IG, T, "a sampling preference: dropped where there is none"),
    Param("frequency_penalty", T, IG, T, "a sampling preference: dropped where there is none"),
    Param("logit_bias", T, U, U),
    Param("logprobs", T, U, U, "the client reads them: never dropped unless the policy says so"),
    Param("top_logprobs", T, U, U),
    Param("metadata", T, IG, IG, "labels for stored completions, not read by the model"),
    Param("store", T, IG, IG, "stores the completion upstream; the answer is the same"),
    Param(
        "service_tier",
        T,
        T,
        T,
        "priced per tier; Anthropic `auto` (`priority` too) or `standard_only`, Gemini `auto`/`default` "
        "only; other tiers: policy",
    ),
    Param("prompt_cache_key", T, IG, IG, "a cache-routing hint; the answer is the same"),
    Param("prompt_cache_retention", T, IG, IG, "a cache-lifetime hint; the answer is the same"),
    Param("prompt_cache_options", T, IG, IG, "a cache-breakpoint hint; the answer is the same"),
    Param("moderation", T, U, U, "moderation of input and output: only OpenAI runs it"),
    Param("prediction", T, IG, IG, "predicted output only makes the answer faster"),
    Param("modalities", T, U, U, '`["text"]` is honoured everywhere; audio output is OpenAI only'),
    Param("audio", T, U, U),
    Param("verbosity", T, U, U),
    Param("web_search_options", T, U, U),
    Param("functions", T, U, U, "deprecated; use `tools`"),
    Param("function_call", T, U, U, "deprecated; use `tool_choice`"),
    Param("top_k", P, T, T, "not an OpenAI parameter: unsupported on OpenAI's own API"),
    Param(
        "thinking",
        T,
        T,
        T,
        "Anthropic's shape; OpenAI reasoning models get `reasoning_effort`, Gemini `thinkingConfig`",
    ),
    Param(
        "output_config",
        T,
        T,
        T,
        "Anthropic's (from `/v1/messages`): kept for Anthropic; elsewhere "
        "its `effort` is `reasoning_effort`, its `format` `response_format`",
    ),
    Param("hedge", T, T, T, "the gateway's own options, never sent upstream"),
)
"""Every parameter of OpenAI chat completions (platform.openai.com/docs/api-reference/chat/create),
the extensions clients send in the extra body (``top_k``, Anthropic's ``thinking``) and what
``/v1/messages`` carries over (``output_config``)."""

UNKNOWN: dict[str, Support] = {"openai": P, "anthropic": U, "gemini": U}
"""A parameter without a row: OpenAI-compatible upstreams judge it themselves, the others cannot."""

TABLE: dict[str, Param] = {p.name: p for p in PARAMETERS}

_SUPPORT: dict[str, dict[str, Support]] = {s: {p.name: p.on(s) for p in PARAMETERS} for s in STYLES}
"""Each parameter's fate, by wire format: one look-up a parameter on the request path."""

_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "logprobs": (False,),
    "presence_penalty": (0,),
    "frequency_penalty": (0,),
    "logit_bias": ({},),
    "parallel_tool_calls": (True,),
    "modalities": (["text"], []),
    "store": (False,),
    "metadata": ({},),
    "functions": ([],),
}
"""Values that ask for nothing beyond the default, so no provider can fail to honour them."""


def _asks(name: str, value: Any) -> bool:
    return value is not None and value not in _NEUTRAL.get(name, ())


def _style_of(style: str) -> str:
    return style if style in STYLES else "openai"


def ignorable(body: dict[str, Any], style: str) -> list[str]:
    """The parameters in ``body`` that ``style`` drops by their nature (always named to the client)."""
    table = _SUPPORT[_style_of(style)]
    return [name for name, value in body.items() if table.get(name) is IG and _asks(name, value)]


def _by_table(body: dict[str, Any], style: str, caps: Capabilities) -> list[str]:
    found: list[str] = []
    table, unknown = _SUPPORT[style], UNKNOWN[style]
    for name, value in body.items():
        support = table.get(name, unknown)
        if support is P and name == "top_k" and not caps.extensions:
            support = U
        if support is U and _asks(name, value):
            found.append(name)
    return found


def emulated(body: dict[str, Any], style: str) -> list[str]:
    """The parameters in ``body`` the gateway emulates for ``style`` (named in ``x-hedge-emulated``)."""
    table = _SUPPORT[_style_of(style)]
    return [name for name, value in body.items() if table.get(name) is E and _asks(name, value)]


def _has_images(body: dict[str, Any]) -> bool:
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") == "image_url" for p in content
        ):
            return True
    return False


def _format(body: dict[str, Any]) -> str | None:
    fmt = body.get("response_format")
    return fmt.get("type") if isinstance(fmt, dict) else None


def _stops(body: dict[str, Any]) -> int:
    stop = body.get("stop")
    if isinstance(stop, str):
        return 1
    return len(stop) if isinstance(stop, list) else 0


# (parameter, "does the request use it in a way this provider cannot honour?")
_CHECKS: list[tuple[str, Callable[[dict[str, Any], Capabilities], bool]]] = [
    ("tools", lambda b, c: not c.tools and bool(b.get("tools"))),
    ("tool_choice", lambda b, c: not c.tools and b.get("tool_choice") not in (None, "none")),
    ("parallel_tool_calls", lambda b, c: not c.parallel_tool_calls and b.get("parallel_tool_calls") is False),
    ("image_url", lambda b, c: not c.vision and _has_images(b)),
    ("response_format", lambda b, c: _format(b) == "json_object" and not c.json_mode),
    ("response_format", lambda b, c: _format(b) == "json_schema" and not c.json_schema),
    ("stop", lambda b, c: _stops(b) > c.max_stop_sequences),
    ("n", lambda b, c: not c.n and isinstance(b.get("n"), int) and b["n"] > 1),
    ("logprobs", lambda b, c: not c.logprobs and bool(b.get("logprobs"))),
    ("top_logprobs", lambda b, c: not c.logprobs and b.get("top_logprobs") is not None),
    ("seed", lambda b, c: not c.seed and b.get("seed") is not None),
    ("presence_penalty", lambda b, c: not c.penalties and bool(b.get("presence_penalty"))),
    ("frequency_penalty", lambda b, c: not c.penalties and bool(b.get("frequency_penalty"))),
    ("logit_bias", lambda b, c: not c.logit_bias and bool(b.get("logit_bias"))),
    (
        "service_tier",
        lambda b, c: isinstance(b.get("service_tier"), str) and b["service_tier"] not in c.service_tiers,
    ),
]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def unthought_tool_turn(messages: Any) -> bool:
    """Whether the conversation ends in a tool exchange whose assistant turn lacks Claude's thinking
    block (in its ``reasoning_details`` or kept by the gateway for its first tool call): Claude refuses
    to think then ("a final `assistant` message must start with a thinking block")."""
    if not isinstance(messages, list):
        return False
    answered = False
    for message in reversed(messages):
        if not isinstance(message, dict):
            return False
        role = message.get("role")
        if role == "tool":
            answered = True
        elif role == "assistant":
            calls = message.get("tool_calls")
            if not answered or not isinstance(calls, list) or not calls:
                return False
            details = message.get("reasoning_details")
            if isinstance(details, list) and any(
                isinstance(d, dict) and d.get("format") == REASONING_FORMAT for d in details
            ):
                return False
            first = calls[0].get("id") if isinstance(calls[0], dict) else None
            return not (isinstance(first, str) and THINKING.recall(first) is not None)
        elif role == "user" and not answered:
            return False
    return False


def model_rules(body: dict[str, Any], style: str, model: str, caps: Capabilities) -> dict[str, str]:
    """Parameters this model refuses in this combination or with these values, each with why."""
    found: dict[str, str] = {}
    effort = body.get("reasoning_effort")
    if style == "openai":  # the common case first, and cheaply: most requests name neither
        if ("thinking" in body or effort is not None) and not families.openai_reasoning(model):
            if "thinking" in body:
                found["thinking"] = f"{model} is not an OpenAI reasoning model"
            if not caps.extensions and effort is not None:
                found["reasoning_effort"] = f"{model} is not an OpenAI reasoning model"
        return found
    thinks = thinking_requested(body)
    asked = "reasoning_effort" if "reasoning_effort" in body else "thinking"
    if style == "anthropic":
        temperature, top_p = _number(body.get("temperature")), _number(body.get("top_p"))
        if temperature is not None and temperature > 1:
            found["temperature"] = "Claude takes a temperature from 0 to 1"
        elif thinks and temperature is not None and temperature != 1:
            found["temperature"] = "Claude takes no temperature but 1 while thinking"
        if thinks and top_p is not None and top_p < 0.95:
            found["top_p"] = "Claude takes a top_p from 0.95 to 1 while thinking"
        elif temperature is not None and top_p is not None and families.claude_exclusive_sampling(model):
            found["top_p"] = "Claude 4.1 and later refuse temperature and top_p together"
        if thinks and body.get("top_k") is not None:
            found["top_k"] = "Claude takes no top_k while thinking"
        if thinks and families.claude_thinking(model) == "none":
            found[asked] = f"{model} does not think"
        elif thinks and unthought_tool_turn(body.get("messages")):
            found[asked] = (
                "Claude cannot think in a tool loop whose last assistant turn has no thinking block "
                "(that turn was answered without thinking, or by another provider)"
            )
    elif style == "gemini":
        kind = families.gemini_thinking(model)
        off = effort == "none" or (isinstance(body.get("thinking"), dict) and not thinks)
        if thinks and kind == "none":
            found[asked] = f"{model} does not think"
        elif off and kind in ("budget-pro", "level"):
            found[asked] = f"{model} cannot turn thinking off"
    return found


_FULL = Capabilities()


@functools.cache
def _active_checks(
    caps: Capabilities,
) -> tuple[tuple[str, Callable[[dict[str, Any], Capabilities], bool]], ...]:
    """The checks that can fail for ``caps``: none for a full-featured provider (the common case).

    A check that passes for every body under full capabilities, and whose
    capability ``caps`` shares, can never fail (``stop`` aside: ``/v1/messages`` requests may
    carry more sequences than OpenAI's four).
    """
    differing = {f for f in Capabilities.__dataclass_fields__ if getattr(caps, f) != getattr(_FULL, f)}
    relevant = {
        "tools": {"tools"},
        "tool_choice": {"tools"},
        "parallel_tool_calls": {"parallel_tool_calls"},
        "image_url": {"vision"},
        "response_format": {"json_mode", "json_schema"},
        "stop": {"max_stop_sequences"},
        "n": {"n"},
        "logprobs": {"logprobs"},
        "top_logprobs": {"logprobs"},
        "seed": {"seed"},
        "presence_penalty": {"penalties"},
        "frequency_penalty": {"penalties"},
        "logit_bias": {"logit_bias"},
        "service_tier": {"service_tiers"},
    }
    # The stop count is always checked: a face whose API allows more than 4 leaves it to this check.
    return tuple((name, check) for name, check in _CHECKS if relevant[name] & differing or name == "stop")


def unsupported(
    body: dict[str, Any],
    caps: Capabilities,
    style: str = "openai",
    model: str = "",
    ignored: list[str] | None = None,
) -> list[str]:
    """Names of the parameters in ``body`` that ``caps`` (a ``style`` upstream serving ``model``) cannot
    honour, in a stable order; the :func:`ignorable` ones (``ignored``, when the caller has them
    already) are not among them."""
    style = _style_of(style)
    skip = set(ignorable(body, style) if ignored is None else ignored)
    found = [name for name in _by_table(body, style, caps) if name not in skip]
    for name, check in _active_checks(caps):
        if name not in found and name not in skip and check(body, caps):
            found.append(name)
    for name in model_rules(body, style, model, caps):
        if name not in found:
            found.append(name)
    return found


def drop(
    body: dict[str, Any], params: list[str], caps: Capabilities, style: str = "openai"
) -> dict[str, Any]:
    """A copy of ``body`` without ``params`` (the client's dict is left untouched).

    Where a parameter can be honoured in part it is: a Claude ``temperature`` above 1 becomes 1."""
    out = dict(body)
    for name in params:
        if name == "temperature" and style == "anthropic" and (_number(out.get(name)) or 0) > 1:
            out["temperature"] = 1.0
            if thinking_requested(out):
                out.pop("temperature")
        elif name == "image_url":
            out["messages"] = [_without_images(m) for m in out.get("messages") or ()]
        elif name == "stop":
            stop = out.get("stop")
            out["stop"] = stop[: caps.max_stop_sequences] if isinstance(stop, list) else None
            if not out["stop"]:
                out.pop("stop")
        elif name == "tools":
            out.pop("tools", None)
            out.pop("tool_choice", None)
        else:
            out.pop(name, None)
    return out


def _without_images(message: Any) -> Any:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return message
    kept = [p for p in content if not (isinstance(p, dict) and p.get("type") == "image_url")]
    return {**message, "content": kept}


README_START = "<!-- chat-parameters:start (generated from hedge.providers.capabilities) -->"
README_END = "<!-- chat-parameters:end -->"


def markdown_table() -> str:
    """The README's per-wire-format table of every chat parameter, from :data:`PARAMETERS`."""
    lines = [
        "| parameter | OpenAI-style upstream | Anthropic upstream | Gemini upstream | how |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in PARAMETERS:
        lines.append(f"| `{p.name}` | {p.openai} | {p.anthropic} | {p.gemini} | {p.note} |")
    unknown = " | ".join(str(UNKNOWN[s]) for s in STYLES)
    lines.append(f"| any other | {unknown} | handled by policy, never dropped in silence |")
    return "\n".join(lines)
