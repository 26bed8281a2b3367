"""OpenAI's Batch API envelopes: the input file, the batch object, the output and error files.

The shapes are those of OpenAI's API reference (Batch, BatchRequestInput, BatchRequestOutput)
and the ``openai`` SDK's types. Lines go up as ``{"custom_id", "method": "POST", "url":
"/v1/chat/completions", "body"}`` in a file uploaded with ``purpose=batch``; results come back in
two files: the output file (answered lines) and the error file (lines answered with an HTTP error,
whose ``response.body`` is an error object, and lines never run, with ``response: null`` and
``error: {code, message}``). Results are in no particular order, so they are keyed by custom_id.
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
    jsonl,
    load,
    not_run,
)

ENDPOINT = "/v1/chat/completions"

STATUSES: dict[str, Status] = {
    "validating": "running",
    "in_progress": "running",
    "finalizing": "running",
    "cancelling": "running",
    "completed": "ended",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}
"""Each OpenAI batch ``status`` as the gateway reads it."""

_NOT_RUN = {"batch_expired", "batch_cancelled"}


def input_file(lines: Sequence[tuple[str, bytes]]) -> bytes:
    """The JSONL input file for (custom_id, chat request body as JSON) pairs; bodies are spliced
    in as the chat adapter wrote them, not parsed again."""
    return b"".join(
        b'{"custom_id":'
        + orjson.dumps(custom_id)
        + b',"method":"POST","url":"'
        + ENDPOINT.encode()
        + b'","body":'
        + body
        + b"}\n"
        for custom_id, body in lines
    )


def multipart(content: bytes, boundary: str, filename: str = "batch.jsonl") -> tuple[bytes, str]:
    """The ``multipart/form-data`` body of ``POST /files`` (``purpose=batch`` and the file) and its
    content type. ``boundary`` must not occur in ``content`` (the caller draws a random one)."""
    mark = boundary.encode()
    body = b"".join(
        [
            b"--" + mark + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n',
            b"--"
            + mark
            + b'\r\nContent-Disposition: form-data; name="file"; filename="'
            + filename.encode()
            + b'"\r\nContent-Type: application/jsonl\r\n\r\n',
            content,
            b"\r\n--" + mark + b"--\r\n",
        ]
    )
    return body, f"multipart/form-data; boundary={boundary}"


def file_id(raw: bytes, provider: str) -> str:
    """The id of an uploaded file, from the file object."""
    data = load(raw, provider, "file object")
    if not isinstance(data.get("id"), str) or not data["id"]:
        raise bad_response(provider, "a file object without an id", data)
    return str(data["id"])


def create_body(input_file_id: str, metadata: dict[str, str] | None = None) -> bytes:
    """The body of ``POST /batches`` for an uploaded input file."""
    body: dict[str, Any] = {"input_file_id": input_file_id, "endpoint": ENDPOINT, "completion_window": "24h"}
    if metadata:
        body["metadata"] = metadata
    return orjson.dumps(body)


def batch_id(raw: bytes, provider: str) -> str:
    data = load(raw, provider, "batch object")
    if not isinstance(data.get("id"), str) or not data["id"]:
        raise bad_response(provider, "a batch object without an id", data)
    return str(data["id"])


def progress(raw: bytes, provider: str) -> NativeProgress:
    """The status and counts of a batch object."""
    data = load(raw, provider, "batch object")
    named = data.get("status")
    status = STATUSES.get(named) if isinstance(named, str) else None
    if status is None:
        raise bad_response(provider, "a batch with an unknown status", named)
    counts = data.get("request_counts")
    counts = counts if isinstance(counts, dict) else {}
    return NativeProgress(
        status, count(counts.get("completed")), count(counts.get("failed")), count(counts.get("total"))
    )


def result_files(raw: bytes, provider: str) -> list[str]:
    """The output and error file ids of a batch object (those it has)."""
    data = load(raw, provider, "batch object")
    return [
        str(data[k]) for k in ("output_file_id", "error_file_id") if isinstance(data.get(k), str) and data[k]
    ]


def results(
    raw: bytes,
    provider: str,
    translate: Callable[[bytes], Translated],
    error: Callable[[int, dict[str, str], bytes], Exception],
) -> list[NativeResult]:
    """The lines of an output or error file. ``translate`` is the chat adapter's response
    translation (a completion's usage comes from it), ``error`` its error translation."""
    out: list[NativeResult] = []
    for row in jsonl(raw, provider):
        custom_id = row.get("custom_id")
        if not isinstance(custom_id, str):
            raise bad_response(provider, "a results line without a custom_id", row)
        response = row.get("response")
        if isinstance(response, dict):
            status = response.get("status_code")
            body = response.get("body")
            if not isinstance(status, int) or not isinstance(body, dict):
                raise bad_response(provider, "a results line without status_code and body", row)
            raw_body = orjson.dumps(body)
            if 200 <= status < 300:
                try:
                    answer = translate(raw_body)
                except UpstreamError as exc:
                    out.append(failed(custom_id, exc))
                    continue
                out.append(NativeResult(custom_id, 200, orjson.loads(answer.body), answer.usage))
            else:
                out.append(failed(custom_id, error(status, {}, raw_body)))
            continue
        problem = row.get("error")
        problem = problem if isinstance(problem, dict) else {}
        code, message = problem.get("code"), str(problem.get("message") or "the line was not run")
        if code in _NOT_RUN:
            out.append(not_run(custom_id, code, message))
        else:
            reason = UpstreamError(
                f"provider '{provider}' could not run the line: {message}",
                status=502,
                code=str(code) if code else "upstream_batch_error",
            )
            out.append(failed(custom_id, reason))
    return out
