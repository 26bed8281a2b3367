"""Map an upstream failure to what the client should see, and whether a retry may help.

Shared by every adapter: each extracts the provider's message, type and code
from its own error body, then calls :func:`upstream_error` for the status policy.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any

import orjson

from hedge.errors import UpstreamError

# Errors caused by the request itself: pass the status on, never retry elsewhere.
_CLIENT_FAULT = {400, 413, 415, 422}


def parse_retry_after(
    headers: Mapping[str, str], *, ceiling: float | None = None, now: float | None = None
) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date).

    Providers (and proxies in front of them) send nonsense often enough that every value is
    distrusted: ``inf``, ``nan``, negative numbers and unparsable text count as no Retry-After at
    all (None) rather than crashing the error path or sidelining a deployment forever; a date in
    the past means "now" (0). ``ceiling`` caps what is left, ``now`` (wall-clock) is for tests.
    """
    seconds = _duration(headers.get("retry-after-ms"), 1000.0)
    if seconds is None:
        value = headers.get("retry-after")
        seconds = _duration(value, 1.0)
        if seconds is None and value:
            seconds = _until(value, time.time() if now is None else now)
    if seconds is None:
        return None
    return seconds if ceiling is None else min(seconds, ceiling)


def _duration(value: str | None, per_second: float) -> float | None:
    """A finite, non-negative number of seconds, or None."""
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    seconds = number / per_second
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _until(value: str, now: float) -> float | None:
    """Seconds from ``now`` until an HTTP date (0 if it has passed), or None if it is not one."""
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:  # "-0000": UTC with the zone unknown, per RFC 5322
            when = when.replace(tzinfo=datetime.UTC)
        seconds = when.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def upstream_error(
    provider: str,
    status: int,
    headers: Mapping[str, str],
    message: str | None,
    *,
    type: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> UpstreamError:
    """Build the client-facing error for an upstream HTTP error status."""
    detail = message or "no error message"
    retry_after = parse_retry_after(headers)
    if status in _CLIENT_FAULT:
        return UpstreamError(
            detail,
            status=status,
            upstream_status=status,
            retryable=False,
            type=type or "invalid_request_error",
            code=code,
            param=param,
        )
    if status == 429:
        return UpstreamError(
            f"provider '{provider}' is rate limiting requests (429): {detail}",
            status=429,
            upstream_status=429,
            retry_after=retry_after,
            type="rate_limit_error",
            code=code or "rate_limit_exceeded",
        )
    if status in (401, 403):
        text = f"provider '{provider}' rejected the gateway's credentials ({status}): {detail}"
        return UpstreamError(text, status=502, upstream_status=status, code="upstream_auth_error")
    if status in (408, 504):
        return UpstreamError(
            f"provider '{provider}' timed out ({status}): {detail}",
            status=504,
            upstream_status=status,
            retry_after=retry_after,
            type="timeout_error",
            code="upstream_timeout",
        )
    if status in (503, 529):
        return UpstreamError(
            f"provider '{provider}' is unavailable or overloaded ({status}): {detail}",
            status=503,
            upstream_status=status,
            retry_after=retry_after,
            code="upstream_unavailable",
        )
    return UpstreamError(
        f"provider '{provider}' failed ({status}): {detail}",
        status=502,
        upstream_status=status,
        retry_after=retry_after,
        code="upstream_error",
    )


def load_object(raw: bytes, provider: str) -> dict[str, Any]:
    """Parse an upstream JSON object; anything else is the provider's fault (502), never ours (500)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            f"provider '{provider}' sent a body that is not JSON: {raw[:120]!r}",
            status=502,
            code="upstream_bad_response",
        ) from None
    if not isinstance(data, dict):
        raise UpstreamError(
            f"provider '{provider}' sent JSON that is not an object", status=502, code="upstream_bad_response"
        )
    return data
