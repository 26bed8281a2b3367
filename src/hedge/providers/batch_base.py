"""What a native batch API (OpenAI's Batch API, Anthropic's Message Batches) is to the gateway.

A native batch hands many chat requests to a provider at once, at its batch price, and is
polled until it ends. Each wire format's envelope (how lines go up, how status and results come
back) is translated in its own module (:mod:`hedge.providers.batch_openai`,
:mod:`hedge.providers.batch_anthropic`) into these provider-neutral values; the requests and
answers inside the envelope are translated by the ordinary chat adapters, so a batch line means
what the same interactive request means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from hedge.errors import HedgeError, UpstreamError
from hedge.providers.base import Usage

Status = Literal["running", "ended", "failed", "cancelled", "expired"]
"""Where a native batch is: still running, or how it ended (``failed``: refused as a whole)."""

CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
"""The ``custom_id`` both APIs accept (Anthropic's rule; OpenAI takes any string)."""


@dataclass(frozen=True, slots=True)
class NativeLine:
    """One request of a native batch: an OpenAI chat-completions body whose ``model`` is already
    the upstream model, and the caller's id for it (matching :data:`CUSTOM_ID`)."""

    custom_id: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NativeProgress:
    """A native batch's status and line counts. ``completed`` and ``failed`` count answered lines
    (Anthropic reports them only once the batch has ended: until then both are 0)."""

    status: Status
    completed: int
    failed: int
    total: int


@dataclass(frozen=True, slots=True)
class NativeResult:
    """One line's outcome, in OpenAI's terms.

    ``status`` is what the gateway would answer the same interactive request with (200, a 4xx
    the request caused, 502/504/429 for the provider's trouble), and ``body`` a
    ``chat.completion`` or an OpenAI error object. A line the provider never ran (the batch was
    cancelled or expired) has ``status`` None and an error object whose code is
    ``batch_cancelled`` or ``batch_expired``. ``retryable`` says whether running the line again
    (interactively, elsewhere) may succeed; ``usage`` is what the line is to be booked for.
    """

    custom_id: str
    status: int | None
    body: dict[str, Any]
    usage: Usage | None = None
    retryable: bool = False


def not_run(custom_id: str, code: Literal["batch_cancelled", "batch_expired"], message: str) -> NativeResult:
    """The result of a line the provider never ran."""
    body = {"error": {"message": message, "type": "batch_error", "param": None, "code": code}}
    return NativeResult(custom_id, None, body, None, retryable=True)


def failed(custom_id: str, error: Exception) -> NativeResult:
    """The result of a line the provider answered with an error, as the adapter translated it."""
    if not isinstance(error, HedgeError):
        error = UpstreamError(f"batch line failed: {error}", status=502)
    retryable = error.retryable if isinstance(error, UpstreamError) else False
    return NativeResult(custom_id, error.status, error.to_dict(), None, retryable=retryable)


def bad_response(provider: str, what: str, detail: Any) -> UpstreamError:
    """An envelope that is not what the batch API documents: the upstream's fault (502)."""
    return UpstreamError(
        f"provider '{provider}' sent {what}: {str(detail)[:200]}",
        status=502,
        upstream_status=200,
        code="upstream_bad_response",
    )


def load(raw: bytes, provider: str, what: str) -> dict[str, Any]:
    """A JSON object from the batch API, or the upstream's fault."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise bad_response(provider, f"a {what} that is not a JSON object", raw[:200])
    return data


def jsonl(raw: bytes, provider: str) -> list[dict[str, Any]]:
    """The objects of a JSONL results file; a line that is not one is the upstream's fault."""
    return [load(line, provider, "results line") for line in raw.split(b"\n") if line.strip()]


def count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
