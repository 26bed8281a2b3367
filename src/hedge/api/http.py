"""Helpers shared by the HTTP endpoints: auth, bounded body reading, responses."""

from __future__ import annotations

import functools
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from hedge.access.gate import refuse_unusable
from hedge.access.keys import VirtualKey
from hedge.api.connections import BODY_TIMEOUT
from hedge.errors import AuthError, HedgeError, PayloadTooLarge, PermissionDenied, StoreUnavailable
from hedge.gateway.runtime import Runtime
from hedge.store.db import is_store_error, warn_store_unavailable

JSON = "application/json"
log = logging.getLogger("hedge")
Endpoint = Callable[[Request], Awaitable[Response]]


def runtime_of(request: Request) -> Runtime:
    rt: Runtime = request.scope["app"].runtime  # a HedgeApp's
    return rt


def header(request: Request, name: bytes) -> str | None:
    """The request's ``name`` header (lower-case; the first, if repeated), None when it has none.

    What ``request.headers.get`` answers, without building Starlette's ``Headers`` and without the
    ``KeyError`` it raises and catches inside ``Mapping.get`` for each header a request lacks (most
    of the ``x-hedge-*`` ones, on most requests)."""
    raw: list[tuple[bytes, bytes]] = request.scope["headers"]
    for key, value in raw:
        if key == name:
            return value.decode("latin-1")
    return None


def encoded(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """Response headers as ASGI wants them: names lower-cased, both sides latin-1 (as Starlette's
    ``Response.init_headers`` makes them, without its checks for headers Hedge never sets itself)."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def tags_of(request: Request) -> tuple[str, ...]:
    """The request's ``x-hedge-tags``: comma-separated, blanks dropped."""
    value = header(request, b"x-hedge-tags")
    if not value:
        return ()
    return tuple(t.strip() for t in value.split(",") if t.strip())


def presented_key(request: Request) -> str:
    """The bearer token (or ``x-api-key``), or a 401 if there is none."""
    authorization = header(request, b"authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            token = ""
        token = token.strip()
    else:
        token = header(request, b"x-api-key") or ""
    if not token:
        raise AuthError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
            code="missing_api_key",
        )
    return token


def is_master(token: str, runtime: Runtime) -> bool:
    return hmac.compare_digest(token.encode(), runtime.config.server.master_key.encode())


async def authenticate(request: Request, runtime: Runtime) -> VirtualKey | None:
    """The caller: ``None`` for the master key, else its virtual key. 401 for anything else.

    Revoked and expired keys are refused here, with a message that says why, so every
    authenticated endpoint (the model list included) applies the same check.
    """
    token = presented_key(request)
    if is_master(token, runtime):
        return None
    try:
        key = await runtime.keys.find(token)
    except Exception as exc:
        if not is_store_error(exc):
            raise
        warn_store_unavailable("virtual key lookup", exc)
        raise StoreUnavailable(
            "This key cannot be checked now: the state store (database) is unavailable. Retry shortly.",
            code="limits_unavailable",
        ) from None
    if key is None:
        raise AuthError("Incorrect API key provided.")
    refuse_unusable(key, time.time())
    return key


def store_endpoint(endpoint: Endpoint) -> Endpoint:
    """An endpoint that reads the database: when it is down, a 503 that says so instead of a 500."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:
            if not is_store_error(exc):
                raise
            warn_store_unavailable(f"{request.method} {request.url.path}", exc)
            return error_response(
                StoreUnavailable(
                    "The state store (database) is unavailable; retry when it is back.",
                    code="state_store_unavailable",
                )
            )

    return guarded


def require_master(request: Request, runtime: Runtime) -> None:
    if not is_master(presented_key(request), runtime):
        raise PermissionDenied("This endpoint needs the master key.", code="master_key_required")


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing with 413 as soon as it is known to exceed ``limit`` bytes.

    A body that did not arrive within ``server.body_timeout_s`` (``hedge.api.connections``) raises
    the protocol's 408, so the request is recorded as a timeout rather than a client disconnect.
    """
    declared = header(request, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    receive = request.receive  # the ASGI messages themselves: Starlette's stream() is a generator per request
    try:
        while True:
            message = await receive()
            if message["type"] != "http.request":
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                continue
            chunk: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            if not chunks and not more:  # the whole body in one message: the common case
                if len(chunk) > limit:
                    raise _too_large(limit)
                return chunk
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not more:
                break
    except ClientDisconnect:
        timed_out = request.scope.get(BODY_TIMEOUT)  # the server gave up waiting for the body: a 408
        if isinstance(timed_out, HedgeError):
            raise timed_out from None
        raise
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than this gateway's limit of {limit} bytes.")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=headers, media_type=JSON)


def error_response(exc: HedgeError, request_id: str | None = None) -> Response:
    headers = dict(exc.headers)
    if request_id:
        headers["x-request-id"] = headers["x-hedge-request-id"] = request_id
    return Response(exc.to_bytes(), status_code=exc.status, headers=headers, media_type=JSON)
