"""Errors that reach clients, always in OpenAI's shape.

Every failure a client can see is a :class:`HedgeError`: it carries the HTTP
status and the four fields of OpenAI's error object, so the HTTP layer renders
all of them the same way and the official SDKs raise the matching exception
class (``BadRequestError``, ``AuthenticationError``, ``NotFoundError`` ...).
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from hedge.redact import redact


class HedgeError(Exception):
    """A client-visible error: HTTP status plus OpenAI's ``error`` object."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())


class InvalidRequest(HedgeError):
    status = 400
    type = "invalid_request_error"


class AuthError(HedgeError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(HedgeError):
    status = 403
    type = "permission_error"


class NotFound(HedgeError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(HedgeError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UpstreamError(HedgeError):
    """An upstream provider failed; ``retryable`` tells resilience whether another try may help.

    ``upstream_status`` keeps the provider's own status for logs and routing
    decisions, while ``status`` is what the client sees (a 5xx from a provider
    becomes a 502 from the gateway; a 4xx caused by the request is passed on).

    Every text field is redacted here, once, because its words may come from the
    upstream: one that echoes the gateway's credentials in its error body must not
    pass them on to the client, a stream's error event, the ledger or a log.
    """

    status = 502
    type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        upstream_status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        blame: bool = True,
    ) -> None:
        super().__init__(
            redact(message),
            status=status,
            type=None if type is None else redact(type),
            code=None if code is None else redact(code),
            param=None if param is None else redact(param),
        )
        self.upstream_status = upstream_status
        self.retryable = retryable
        self.retry_after: float | None = None
        self._set_retry_after(retry_after)
        self.blame = blame
        """False when the deployment is not at fault (it lacks a feature, or the gateway itself ran out
        of file descriptors or memory): no breaker strike."""

    def cap_retry_after(self, ceiling: float) -> None:
        """Never tell a client (or a breaker) to wait longer than ``ceiling`` seconds."""
        if self.retry_after is not None and self.retry_after > ceiling:
            self._set_retry_after(ceiling)

    def _set_retry_after(self, seconds: float | None) -> None:
        # Rendering must never raise: inf, nan or a negative value means no Retry-After at all.
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            self.retry_after = None
            self.headers.pop("retry-after", None)
            return
        self.retry_after = seconds
        self.headers["retry-after"] = str(round(seconds))


class NoDeploymentAvailable(HedgeError):
    status = 503
    type = "service_unavailable"
    code = "no_deployment_available"


class StoreUnavailable(HedgeError):
    """The database (keys, ledger) failed or did not answer in time: 503, so clients retry, not 500."""

    status = 503
    type = "service_unavailable"


def json_type(value: object) -> str:
    """A JSON value's type as OpenAI's error messages name it ("an integer", "an array" ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def invalid_type(param: str, expected: str, value: object, *, instead: bool = False) -> InvalidRequest:
    """OpenAI's 400 for a parameter of the wrong JSON type (the Responses API adds "instead")."""
    tail = " instead." if instead else "."
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {json_type(value)}{tail}",
        param=param,
        code="invalid_type",
    )


def missing_parameter(param: str) -> InvalidRequest:
    """OpenAI's 400 for a required parameter that is absent."""
    return InvalidRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )
