"""Gemini batch mode envelopes: the create body, the batch operation and its inlined responses.

The shapes are those of the Gemini API's batch mode (``models/{model}:batchGenerateContent``,
``batches/{id}``, ``batches/{id}:cancel``) as the ``google-genai`` SDK's converters write and read
them (``batches.py`` in https://github.com/googleapis/python-genai): requests go up inlined as
``{"batch": {"displayName", "inputConfig": {"requests": {"requests": [{"request", "metadata"}]}}}}``
with the line's id in ``metadata.key``; the batch is an operation whose ``metadata`` carries
``state`` (``BATCH_STATE_*``), ``batchStats`` and, once ended, ``output.inlinedResponses.
inlinedResponses``: a ``response`` (a ``GenerateContentResponse``) or an ``error`` (a
``google.rpc.Status``, whose ``code`` is a gRPC code, not an HTTP status) per request that ran,
with the request's ``metadata``. A request a cancelled or expired batch never ran has no entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from hedge.errors import UpstreamError
from hedge.providers.base import Translated
from hedge.providers.batch_base import (
    NativeProgress,
    NativeResult,
    Status,
    bad_response,
    count,
    failed,
    load,
)

STATES: dict[str, Status] = {
    "BATCH_STATE_PENDING": "running",
    "BATCH_STATE_RUNNING": "running",
    "BATCH_STATE_SUCCEEDED": "ended",
    "BATCH_STATE_FAILED": "failed",
    "BATCH_STATE_CANCELLED": "cancelled",
    "BATCH_STATE_EXPIRED": "expired",
}
"""Each batch ``state`` as the gateway reads it."""

HTTP_BY_GRPC: dict[int, int] = {
    1: 499,  # CANCELLED
    2: 500,  # UNKNOWN
    3: 400,  # INVALID_ARGUMENT
    4: 504,  # DEADLINE_EXCEEDED
    5: 404,  # NOT_FOUND
    6: 409,  # ALREADY_EXISTS
    7: 403,  # PERMISSION_DENIED
    8: 429,  # RESOURCE_EXHAUSTED
    9: 400,  # FAILED_PRECONDITION
    10: 409,  # ABORTED
    11: 400,  # OUT_OF_RANGE
    12: 501,  # UNIMPLEMENTED
    13: 500,  # INTERNAL
    14: 503,  # UNAVAILABLE
    15: 500,  # DATA_LOSS
    16: 401,  # UNAUTHENTICATED
}
"""The HTTP status of each ``google.rpc.Code`` (Google's own mapping, google/rpc/code.proto)."""


def create_body(lines: Sequence[tuple[str, bytes]], display_name: str) -> bytes:
    """The body of ``:batchGenerateContent`` for (custom_id, generateContent request as JSON) pairs;
    the requests are spliced in as the chat adapter wrote them, not parsed again."""
    parts = [
        b'{"request":' + request + b',"metadata":{"key":' + orjson.dumps(custom_id) + b"}}"
        for custom_id, request in lines
    ]
    head = b'{"batch":{"displayName":' + orjson.dumps(display_name)
    return head + b',"inputConfig":{"requests":{"requests":[' + b",".join(parts) + b"]}}}}"


def batch_name(raw: bytes, provider: str) -> str:
    """The batch's resource name (``batches/...``), which is its upstream id."""
    name = load(raw, provider, "batch operation").get("name")
    if not isinstance(name, str) or not name.startswith("batches/"):
        raise bad_response(provider, "a batch operation without a batches/ name", name)
    return name


def _metadata(data: dict[str, Any], provider: str) -> dict[str, Any]:
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        raise bad_response(provider, "a batch operation without metadata", data)
    return metadata


def _int64(value: Any) -> int:
    """A proto3 JSON int64 (a string, or a number from a lenient server)."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return count(value)


def progress(raw: bytes, provider: str) -> NativeProgress:
    """The state and counts of a batch operation."""
    metadata = _metadata(load(raw, provider, "batch operation"), provider)
    named = metadata.get("state")
    status = STATES.get(named) if isinstance(named, str) else None
    if status is None:
        raise bad_response(provider, "a batch with an unknown state", named)
    stats = metadata.get("batchStats")
    stats = stats if isinstance(stats, dict) else {}
    return NativeProgress(
        status,
        _int64(stats.get("successfulRequestCount")),
        _int64(stats.get("failedRequestCount")),
        _int64(stats.get("requestCount")),
    )


def results(
    raw: bytes,
    provider: str,
    translate: Callable[[bytes], Translated],
    error: Callable[[int, dict[str, str], bytes], Exception],
) -> list[NativeResult]:
    """The inlined responses of an ended batch operation. ``translate`` is the chat adapter's
    response translation, ``error`` its error translation (given a Google error body)."""
    data = load(raw, provider, "batch operation")
    output = _metadata(data, provider).get("output")
    if not isinstance(output, dict):
        response = data.get("response")
        output = response if isinstance(response, dict) else {}
    if "responsesFile" in output and "inlinedResponses" not in output:
        raise bad_response(provider, "results in a file (only inlined requests are sent)", output)
    holder = output.get("inlinedResponses")
    entries = holder.get("inlinedResponses") if isinstance(holder, dict) else None
    out: list[NativeResult] = []
    for entry in entries if isinstance(entries, list) else []:
        metadata = entry.get("metadata") if isinstance(entry, dict) else None
        custom_id = metadata.get("key") if isinstance(metadata, dict) else None
        if not isinstance(custom_id, str):
            raise bad_response(provider, "an inlined response without its metadata.key", entry)
        if isinstance(entry.get("response"), dict):
            try:
                answer = translate(orjson.dumps(entry["response"]))
            except UpstreamError as exc:
                out.append(failed(custom_id, exc))
                continue
            out.append(NativeResult(custom_id, 200, orjson.loads(answer.body), answer.usage))
            continue
        status_obj = entry.get("error")
        status_obj = status_obj if isinstance(status_obj, dict) else {}
        code = status_obj.get("code")
        http = HTTP_BY_GRPC.get(code, 500) if isinstance(code, int) else 500
        body = {"error": {"code": http, "message": str(status_obj.get("message") or ""), "status": ""}}
        out.append(failed(custom_id, error(http, {}, orjson.dumps(body))))
    return out
