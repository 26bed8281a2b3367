"""Anthropic's Message Batches envelopes: the create body, the batch object, the results file.

The shapes are those of Anthropic's API reference (Create / Retrieve a Message Batch, Retrieve
Message Batch results) and the ``anthropic`` SDK's types. Requests go up as ``{"requests":
[{"custom_id", "params"}]}`` where ``params`` is a Messages request; the batch reports
``processing_status`` (``in_progress``, ``canceling``, ``ended``) and ``request_counts``
(``processing``, ``succeeded``, ``errored``, ``canceled``, ``expired``: all ``processing`` until
the batch has ended); results are JSONL read from the batch's ``results_url``, each line
``{"custom_id", "result": {"type": "succeeded", "message"} | {"type": "errored", "error":
{"type": "error", "error": {type, message}}} | {"type": "canceled"} | {"type": "expired"}}``, in
no particular order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import orjson

from hedge.errors import UpstreamError
from hedge.providers.base import Translated
from hedge.providers.batch_base import (
    NativeProgress,
    NativeResult,
    bad_response,
    count,
    failed,
    jsonl,
    load,
    not_run,
)
from hedge.wire.anthropic import ERROR_TYPES

STATUS_BY_TYPE: dict[str, int] = {etype: status for status, etype in ERROR_TYPES.items()}
"""The HTTP status each Anthropic ``error.type`` stands for (a batch result carries no status)."""


def create_body(lines: Sequence[tuple[str, bytes]]) -> bytes:
    """The body of ``POST /v1/messages/batches`` for (custom_id, Messages request as JSON) pairs;
    the requests are spliced in as the chat adapter wrote them, not parsed again."""
    parts = [
        b'{"custom_id":' + orjson.dumps(custom_id) + b',"params":' + params + b"}"
        for custom_id, params in lines
    ]
    return b'{"requests":[' + b",".join(parts) + b"]}"


def batch_id(raw: bytes, provider: str) -> str:
    data = load(raw, provider, "message batch")
    if not isinstance(data.get("id"), str) or not data["id"]:
        raise bad_response(provider, "a message batch without an id", data)
    return str(data["id"])


def progress(raw: bytes, provider: str) -> NativeProgress:
    """The status and counts of a message batch. An ended batch reads as ``cancelled`` if a cancel
    was asked for, as ``expired`` if some requests expired, else as ``ended``."""
    data = load(raw, provider, "message batch")
    counts = data.get("request_counts")
    counts = counts if isinstance(counts, dict) else {}
    succeeded, errored = count(counts.get("succeeded")), count(counts.get("errored"))
    total = sum(count(counts.get(k)) for k in ("processing", "succeeded", "errored", "canceled", "expired"))
    state = data.get("processing_status")
    if state in ("in_progress", "canceling"):
        return NativeProgress("running", succeeded, errored, total)
    if state != "ended":
        raise bad_response(provider, "a message batch with an unknown processing_status", state)
    if data.get("cancel_initiated_at"):
        return NativeProgress("cancelled", succeeded, errored, total)
    if count(counts.get("expired")):
        return NativeProgress("expired", succeeded, errored, total)
    return NativeProgress("ended", succeeded, errored, total)


def results_url(raw: bytes, provider: str) -> str | None:
    """Where an ended batch's results are (None until it has ended)."""
    url = load(raw, provider, "message batch").get("results_url")
    return url if isinstance(url, str) and url else None


def results(
    raw: bytes,
    provider: str,
    translate: Callable[[bytes], Translated],
    error: Callable[[int, dict[str, str], bytes], Exception],
) -> list[NativeResult]:
    """The lines of a results file. ``translate`` is the chat adapter's response translation (a
    message becomes a ``chat.completion`` with its usage), ``error`` its error translation."""
    out: list[NativeResult] = []
    for row in jsonl(raw, provider):
        custom_id, result = row.get("custom_id"), row.get("result")
        if not isinstance(custom_id, str) or not isinstance(result, dict):
            raise bad_response(provider, "a results line without custom_id and result", row)
        kind = result.get("type")
        if kind == "succeeded":
            try:
                answer = translate(orjson.dumps(result.get("message")))
            except UpstreamError as exc:
                out.append(failed(custom_id, exc))
                continue
            out.append(NativeResult(custom_id, 200, orjson.loads(answer.body), answer.usage))
        elif kind == "errored":
            body = result.get("error")
            if isinstance(body, dict) and body.get("type") != "error" and "message" in body:
                body = {"type": "error", "error": body}  # the bare error object, not its response
            inner = body.get("error") if isinstance(body, dict) else None
            etype = inner.get("type") if isinstance(inner, dict) else None
            status = STATUS_BY_TYPE.get(etype, 500) if isinstance(etype, str) else 500
            out.append(failed(custom_id, error(status, {}, orjson.dumps(body))))
        elif kind == "canceled":
            out.append(
                not_run(custom_id, "batch_cancelled", "The batch was cancelled before this request ran.")
            )
        elif kind == "expired":
            out.append(not_run(custom_id, "batch_expired", "The batch expired before this request ran."))
        else:
            raise bad_response(provider, "a results line of an unknown type", kind)
    return out
