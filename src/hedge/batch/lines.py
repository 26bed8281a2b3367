"""A batch's input lines in, its output and error lines out, in OpenAI's exact formats.

Input: one JSON object per line, ``{"custom_id", "method": "POST", "url": <the batch's endpoint>,
"body"}``. A line that is not such an object, repeats a ``custom_id`` or whose body the endpoint
would refuse does not fail the batch: it is answered at once, in the error file, with the reason
and its line number, as the issue asks (OpenAI itself would fail the whole batch).

Output (OpenAI's ``BatchRequestOutput``, openapi.yaml): ``{"id": "batch_req_...", "custom_id",
"response": {"status_code", "request_id", "body"} | null, "error": {"code", "message"} | null}``.
An answered request, even a refused one, has a ``response``; a line that never ran (invalid,
expired, cancelled) has an ``error`` instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import IO, Any

import orjson

from hedge.batch.store import NewLine
from hedge.errors import HedgeError

ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/embeddings": "embeddings", "/v1/responses": "responses"}
"""The endpoints a batch may run, and the pipeline endpoint (the record's name) each maps to.
``/v1/responses`` lines are translated to chat and back, as ``POST /v1/responses`` is; their
responses are not stored (``previous_response_id`` is refused in a batch)."""
EXPIRED = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}
CANCELLED = {"code": "batch_cancelled", "message": "This request was not executed: the batch was cancelled."}

Validate = Callable[[dict[str, Any]], None]
"""The endpoint's own body validation (raises a HedgeError), handed in by the face."""


def line_id(batch_id: str, idx: int) -> str:
    """A line's ``batch_req_`` id: derived from the batch and the line, so every replica agrees."""
    return "batch_req_" + hashlib.sha256(f"{batch_id}:{idx}".encode()).hexdigest()[:32]


def answered(
    batch_id: str, idx: int, custom_id: str, status: int, request_id: str, body: Any
) -> dict[str, Any]:
    return {
        "id": line_id(batch_id, idx),
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": request_id, "body": body},
        "error": None,
    }


def unanswered(batch_id: str, idx: int, custom_id: str, error: dict[str, Any]) -> dict[str, Any]:
    return {"id": line_id(batch_id, idx), "custom_id": custom_id, "response": None, "error": error}


def output_line(batch_id: str, row: dict[str, Any]) -> bytes:
    """One line of an output or error file, from a stored line."""
    if row["result"]:
        return bytes(row["result"], "utf-8") if isinstance(row["result"], str) else bytes(row["result"])
    error = EXPIRED if row["state"] == "expired" else CANCELLED
    return orjson.dumps(unanswered(batch_id, int(row["idx"]), str(row["custom_id"]), error))


def read_lines(
    batch_id: str, source: IO[bytes], endpoint: str, validate: Validate, max_lines: int
) -> Iterator[NewLine]:
    """The input file's lines, in order: valid ones to run, invalid ones already answered. Raises
    ValueError when the file holds more than ``max_lines`` requests."""
    seen: set[str] = set()
    idx = 0
    for number, raw in enumerate(source, start=1):
        if not raw.strip():
            continue
        if idx >= max_lines:
            raise ValueError(f"The input file has more than {max_lines} requests (a batch's limit).")
        yield _line(batch_id, idx, number, raw, endpoint, validate, seen)
        idx += 1


def _line(
    batch_id: str, idx: int, number: int, raw: bytes, endpoint: str, validate: Validate, seen: set[str]
) -> NewLine:
    def invalid(custom_id: str, code: str, message: str) -> NewLine:
        error = {"code": code, "message": f"Line {number}: {message}"}
        return NewLine(idx, custom_id, None, "failed", unanswered(batch_id, idx, custom_id, error))

    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return invalid("", "invalid_json_line", "This line is not valid JSON.")
    if not isinstance(data, dict):
        return invalid("", "invalid_json_line", "Each line must be a JSON object.")
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return invalid("", "missing_required_parameter", "'custom_id' must be a non-empty string.")
    if custom_id in seen:
        return invalid(custom_id, "duplicate_custom_id", f"The custom_id {custom_id!r} is used before.")
    seen.add(custom_id)
    if data.get("method") != "POST":
        return invalid(custom_id, "invalid_method", "'method' must be \"POST\".")
    if data.get("url") != endpoint:
        return invalid(custom_id, "invalid_url", f"'url' must be the batch's endpoint, {endpoint}.")
    body = data.get("body")
    if not isinstance(body, dict):
        return invalid(custom_id, "invalid_request", "'body' must be a JSON object.")
    if body.get("stream"):
        return invalid(custom_id, "unsupported_value", "'stream' is not supported in a batch.")
    try:
        validate(body)
    except HedgeError as exc:
        return invalid(custom_id, exc.code or "invalid_request", exc.message)
    return NewLine(idx, custom_id, body)


_UNITS = {"m": 60, "h": 3600, "d": 86400}
MAX_WINDOW_S = 7 * 86400


def window_seconds(text: Any) -> float | None:
    """``completion_window`` (``24h``, and Hedge also takes ``30m``, ``2d`` ... up to 7 days) in
    seconds; None if it is not one."""
    if not isinstance(text, str) or len(text) < 2 or text[-1] not in _UNITS or not text[:-1].isdigit():
        return None
    seconds = int(text[:-1]) * _UNITS[text[-1]]
    return float(seconds) if 0 < seconds <= MAX_WINDOW_S else None
