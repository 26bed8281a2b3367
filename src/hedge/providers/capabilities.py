"""Which request parameters a provider cannot honour, and how to drop them.

A parameter a provider cannot honour is either refused (400 naming the
parameter and the provider) or dropped and reported in
``x-hedge-dropped-params``, by the provider's ``on_unsupported`` policy or the
request's ``hedge.on_unsupported``. The default is to refuse: a request must
never silently change meaning.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from hedge.providers.base import Capabilities


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


def unsupported(body: dict[str, Any], caps: Capabilities) -> list[str]:
    """Names of the parameters in ``body`` that ``caps`` cannot honour, in a stable order."""
    found: list[str] = []
    for name, check in _active_checks(caps):
        if name not in found and check(body, caps):
            found.append(name)
    return found


def drop(body: dict[str, Any], params: list[str], caps: Capabilities) -> dict[str, Any]:
    """A copy of ``body`` without ``params`` (the client's dict is left untouched)."""
    out = dict(body)
    for name in params:
        if name == "image_url":
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
