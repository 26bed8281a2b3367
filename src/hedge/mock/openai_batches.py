"""The openai-style mock's Files and Batch APIs, as an upstream that Hedge hands native batches to.

Written from OpenAI's API reference and the ``openai`` SDK's types (``FileObject``, ``Batch``,
``BatchRequestCounts``, ``BatchError``): ``POST /v1/files`` (multipart ``file`` + ``purpose``),
``GET``/``DELETE /v1/files/{id}``, ``GET /v1/files/{id}/content``, ``POST /v1/batches``,
``GET /v1/batches/{id}`` and ``POST /v1/batches/{id}/cancel``.

As OpenAI does, the input file is checked while the batch is ``validating``: a line that is not
JSON (``invalid_json_line``), lacks ``custom_id``, ``method``, ``url`` or ``body``
(``missing_required_parameter``), repeats a ``custom_id`` (``duplicate_custom_id``), names
another endpoint (``url_mismatch``) or another model than the first line (``model_mismatch``),
an empty file (``empty_file``) or more than 50,000 lines (``too_many_tasks``) fail the whole
batch, with ``errors.data`` naming the line. Each accepted line gets what
``POST /v1/chat/completions`` answers it; a refused one (a 4xx) is in the error file with its
status and OpenAI's error body, like a line the ``batch_fail_*`` knobs fail (500). Lines a
cancelled or expired batch never ran are in the error file with ``response: null`` and the error
codes ``batch_cancelled`` / ``batch_expired``. Results come in an order that is not the input's,
as OpenAI warns; ``request_counts`` move as the batch advances (see :mod:`hedge.mock.batches`).
Only ``/v1/chat/completions`` batches are run (other endpoints are refused with a 400 that says so).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hedge.mock.batches import Job, Line, shuffled
from hedge.mock.behaviour import digest
from hedge.mock.openai_style import completion, error, error_body
from hedge.mock.state import MockState

ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions")
"""What ``endpoint`` may name (OpenAI's list); this mock runs ``/v1/chat/completions`` only."""
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MAX_TASKS = 50_000
WINDOW_S = 24 * 3600

_NOT_RUN = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request was not executed because the batch was cancelled."),
}


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _gate(state: MockState, request: Request) -> Response | None:
    """Authentication and injected faults, as every endpoint of the mock has them."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return error(state, 401, "You didn't provide a valid API key.")
    if state.knobs.api_key is not None and key.strip() != state.knobs.api_key:
        return error(state, 401, "Incorrect API key provided.")
    if state.should_fail():
        return error(state, state.knobs.fail_status)
    return None


def _missing(param: str) -> Response:
    body = error_body(
        400, f"Missing required parameter: '{param}'.", param, code="missing_required_parameter"
    )
    return _json(body, 400)


def _no_file(file_id: str) -> Response:
    return _json(error_body(404, f"No such File object: {file_id}", "id", code=None), 404)


def _file_object(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "content"}


# -- files ----------------------------------------------------------------------------------------


async def upload(request: Request) -> Response:
    state: MockState = request.app.state.mock
    state.note(request, None)
    refused = _gate(state, request)
    if refused is not None:
        return refused
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > state.knobs.max_body_bytes:
        return error(
            state, 413, f"The request body is larger than the limit of {state.knobs.max_body_bytes} bytes."
        )
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return _json(error_body(400, "The request must be multipart/form-data.", None), 400)
    async with request.form() as form:
        purpose = form.get("purpose")
        upload = form.get("file")
        if not isinstance(purpose, str):
            return _missing("purpose")
        if purpose not in PURPOSES:
            allowed = ", ".join(f"'{p}'" for p in PURPOSES)
            message = f"Invalid value: '{purpose}'. Supported values are: {allowed}."
            return _json(error_body(400, message, "purpose", code="invalid_value"), 400)
        if not isinstance(upload, UploadFile):
            return _missing("file")
        content = await upload.read()
        filename = upload.filename or "file"
    if purpose == "batch" and not filename.endswith(".jsonl"):
        message = "Invalid file format for Batch API. Must be .jsonl"
        return _json(error_body(400, message, "file", code=None), 400)
    file_id = "file-" + digest([filename, len(state.batches.files), time.time()])[:22]
    entry = {
        "id": file_id,
        "object": "file",
        "bytes": len(content),
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
        "content": content,
    }
    state.batches.files[file_id] = entry
    return _json(_file_object(entry))


async def retrieve_file(request: Request) -> Response:
    state: MockState = request.app.state.mock
    state.note(request, None)
    refused = _gate(state, request)
    if refused is not None:
        return refused
    entry = state.batches.files.get(request.path_params["file_id"])
    return _json(_file_object(entry)) if entry else _no_file(request.path_params["file_id"])


async def file_content(request: Request) -> Response:
    state: MockState = request.app.state.mock
    state.note(request, None)
    refused = _gate(state, request)
    if refused is not None:
        return refused
    entry = state.batches.files.get(request.path_params["file_id"])
    if entry is None:
        return _no_file(request.path_params["file_id"])
    return Response(entry["content"], media_type="application/octet-stream")


async def delete_file(request: Request) -> Response:
    state: MockState = request.app.state.mock
    state.note(request, None)
    refused = _gate(state, request)
    if refused is not None:
        return refused
    file_id = request.path_params["file_id"]
    if state.batches.files.pop(file_id, None) is None:
        return _no_file(file_id)
    return _json({"id": file_id, "object": "file", "deleted": True})


def _store_file(state: MockState, batch_id: str, kind: str, lines: list[dict[str, Any]]) -> str | None:
    """An output or error file of a batch (None when it would be empty, as OpenAI leaves it)."""
    if not lines:
        return None
    content = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    file_id = "file-" + digest([batch_id, kind])[:22]
    state.batches.files[file_id] = {
        "id": file_id,
        "object": "file",
        "bytes": len(content),
        "created_at": int(time.time()),
        "filename": f"{batch_id}_{kind}.jsonl",
        "purpose": "batch_output",
        "status": "processed",
        "expires_at": None,
        "status_details": None,
        "content": content,
    }
    return file_id


# -- batches --------------------------------------------------------------------------------------


def _problems(content: bytes, endpoint: str) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
    """The input file's requests (custom_id, body), and what fails the batch at validation."""
    lines = [raw for raw in content.split(b"\n") if raw.strip()]
    if not lines:
        return [], [
            {"code": "empty_file", "message": "The batch input file is empty.", "param": None, "line": None}
        ]
    if len(lines) > MAX_TASKS:
        message = f"The batch input file has {len(lines)} requests; the limit is {MAX_TASKS}."
        return [], [{"code": "too_many_tasks", "message": message, "param": None, "line": None}]
    found: list[tuple[str, dict[str, Any]]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    model: Any = None

    def fail(code: str, message: str, number: int, param: str | None = None) -> None:
        errors.append({"code": code, "message": message, "param": param, "line": number})

    for number, raw in enumerate(lines, 1):
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            item = None
        if not isinstance(item, dict):
            fail("invalid_json_line", "This line is not parseable as valid JSON.", number)
            continue
        absent = next((k for k in ("custom_id", "method", "url", "body") if k not in item), None)
        if absent is not None:
            fail("missing_required_parameter", f"Missing required parameter: '{absent}'.", number, absent)
            continue
        custom_id, body = item["custom_id"], item["body"]
        if not isinstance(custom_id, str) or not isinstance(body, dict):
            fail("invalid_request", "'custom_id' must be a string and 'body' an object.", number)
            continue
        if custom_id in seen:
            message = (
                "The custom_id for this request is a duplicate of another request. "
                "The custom_id parameter must be unique for each request in a batch."
            )
            fail("duplicate_custom_id", message, number, "custom_id")
            continue
        seen.add(custom_id)
        if item["method"] != "POST":
            fail("invalid_request", "Only the POST method is supported.", number, "method")
            continue
        if item["url"] != endpoint:
            message = "The URL provided for this request does not match the batch endpoint."
            fail("url_mismatch", message, number, "url")
            continue
        if model is None:
            model = body.get("model")
        elif body.get("model") != model:
            message = "The provided model does not match the model of the other requests in this batch."
            fail("model_mismatch", message, number, "body.model")
            continue
        found.append((custom_id, body))
    return found, errors


async def create(request: Request) -> Response:
    state: MockState = request.app.state.mock
    refused = _gate(state, request)
    body = await state.read(request)
    if refused is not None:
        return refused
    if not isinstance(body, dict):
        return error(state, 400, "We could not parse the JSON body of your request.")
    for param in ("input_file_id", "endpoint", "completion_window"):
        if param not in body:
            return _missing(param)
    endpoint, window = body["endpoint"], body["completion_window"]
    if endpoint not in ENDPOINTS:
        allowed = ", ".join(f"'{e}'" for e in ENDPOINTS)
        message = f"Invalid value: '{endpoint}'. Supported values are: {allowed}."
        return _json(error_body(400, message, "endpoint", code="invalid_value"), 400)
    if endpoint != "/v1/chat/completions":
        message = f"The mock runs /v1/chat/completions batches only, not {endpoint}."
        return _json(error_body(400, message, "endpoint", code="invalid_value"), 400)
    if window != "24h":
        message = f"Invalid value: '{window}'. Supported values are: '24h'."
        return _json(error_body(400, message, "completion_window", code="invalid_value"), 400)
    metadata = body.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and len(metadata) <= 16
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        message = "Invalid 'metadata': expected an object of at most 16 string values."
        return _json(error_body(400, message, "metadata", code="invalid_value"), 400)
    entry = state.batches.files.get(str(body["input_file_id"]))
    if entry is None:
        return _no_file(str(body["input_file_id"]))
    if entry["purpose"] != "batch":
        message = f"File {entry['id']} has purpose '{entry['purpose']}'; a batch needs purpose 'batch'."
        return _json(error_body(400, message, "input_file_id", code="invalid_value"), 400)
    requests, problems = _problems(entry["content"], endpoint)
    lines: list[Line] = []
    if not problems:
        for custom_id, line_body in requests:
            if state.batch_line_fails(custom_id):
                lines.append(Line(custom_id, 500, error_body(500)))
            else:
                lines.append(Line(custom_id, *completion(state, {**line_body, "stream": False})))
    batch_id = "batch_" + digest([entry["id"], len(state.batches.jobs), time.time()])[:24]
    job = Job(
        batch_id,
        lines,
        polls_needed=max(0, int(state.knobs.batch_polls)),
        expire=bool(state.knobs.batch_expire),
        failure=problems or None,
        extra={
            "endpoint": endpoint,
            "input_file_id": entry["id"],
            "completion_window": window,
            "metadata": metadata,
            "model": requests[0][1].get("model") if requests else None,
        },
    )
    state.batches.jobs[batch_id] = job
    return _json(batch_object(state, job))


def _job(state: MockState, request: Request) -> Job | Response:
    """The batch the path names, or the answer refusing the request (bad key, no such batch)."""
    refused = _gate(state, request)
    if refused is not None:
        return refused
    batch_id = request.path_params["batch_id"]
    job = state.batches.jobs.get(batch_id)
    if job is None:
        return _json(error_body(404, f"No batch found with id '{batch_id}'.", "batch_id", code=None), 404)
    return job


async def retrieve(request: Request) -> Response:
    state: MockState = request.app.state.mock
    state.note(request, None)
    job = _job(state, request)
    if isinstance(job, Response):
        return job
    job.advance()
    return _json(batch_object(state, job))


async def cancel(request: Request) -> Response:
    state: MockState = request.app.state.mock
    state.note(request, None)
    job = _job(state, request)
    if isinstance(job, Response):
        return job
    if job.phase == "ended":
        message = f"Cannot cancel a batch with status '{_status(job)}'."
        return _json(error_body(409, message, None, code=None, etype="invalid_request_error"), 409)
    job.cancel()
    return _json(batch_object(state, job))


def _status(job: Job) -> str:
    if job.phase == "ended":
        return str(job.ending)
    if job.cancelling:
        return "cancelling"
    return {"validating": "validating", "running": "in_progress", "finalizing": "finalizing"}[job.phase]


def _stamp(value: float | None) -> int | None:
    return int(value) if value is not None else None


def _result_files(state: MockState, job: Job) -> tuple[str | None, str | None]:
    """The output and error files of an ended batch, written the first time they are asked for."""
    if "output_file_id" in job.extra:
        return job.extra["output_file_id"], job.extra["error_file_id"]
    outputs: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for line in shuffled(job.answered, job.id):
        response = {
            "status_code": line.status,
            "request_id": digest([job.id, line.custom_id, "request"])[:32],
            "body": line.body,
        }
        row = {
            "id": "batch_req_" + digest([job.id, line.custom_id])[:24],
            "custom_id": line.custom_id,
            "response": response,
            "error": None,
        }
        (outputs if line.ok else errors).append(row)
    if job.ending in _NOT_RUN:
        code, message = _NOT_RUN[str(job.ending)]
        for line in shuffled(job.unanswered, job.id):
            errors.append(
                {
                    "id": "batch_req_" + digest([job.id, line.custom_id])[:24],
                    "custom_id": line.custom_id,
                    "response": None,
                    "error": {"code": code, "message": message},
                }
            )
    out = _store_file(state, job.id, "output", outputs)
    err = _store_file(state, job.id, "error", errors)
    job.extra["output_file_id"], job.extra["error_file_id"] = out, err
    return out, err


def _usage(job: Job) -> dict[str, Any]:
    prompt = completion_tokens = cached = reasoning = 0
    for line in job.answered:
        usage = line.body.get("usage") if line.ok else None
        if isinstance(usage, dict):
            prompt += int(usage.get("prompt_tokens") or 0)
            completion_tokens += int(usage.get("completion_tokens") or 0)
            cached += int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
            reasoning += int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion_tokens,
    }


def batch_object(state: MockState, job: Job) -> dict[str, Any]:
    """The ``batch`` object as OpenAI returns it from create, retrieve and cancel."""
    ended = job.phase == "ended"
    output_file_id, error_file_id = _result_files(state, job) if ended else (None, None)
    answered = job.answered
    failed = sum(not line.ok for line in answered)
    if ended and job.ending in _NOT_RUN:
        failed += len(job.unanswered)
    total = 0 if job.phase == "validating" or job.ending == "failed" else len(job.lines)
    return {
        "id": job.id,
        "object": "batch",
        "endpoint": job.extra["endpoint"],
        "model": job.extra["model"],
        "errors": {"object": "list", "data": job.failure} if job.failure and ended else None,
        "input_file_id": job.extra["input_file_id"],
        "completion_window": job.extra["completion_window"],
        "status": _status(job),
        "output_file_id": output_file_id,
        "error_file_id": error_file_id,
        "created_at": int(job.created_at),
        "in_progress_at": _stamp(job.in_progress_at),
        "expires_at": int(job.created_at) + WINDOW_S,
        "finalizing_at": _stamp(job.finalizing_at),
        "completed_at": _stamp(job.ended_at) if job.ending == "completed" else None,
        "failed_at": _stamp(job.ended_at) if job.ending == "failed" else None,
        "expired_at": _stamp(job.ended_at) if job.ending == "expired" else None,
        "cancelling_at": _stamp(job.cancelling_at),
        "cancelled_at": _stamp(job.ended_at) if job.ending == "cancelled" else None,
        "request_counts": {
            "total": total,
            "completed": len(answered) - sum(not x.ok for x in answered),
            "failed": failed,
        },
        "usage": _usage(job),
        "metadata": job.extra["metadata"],
    }


def routes() -> list[Route]:
    return [
        Route("/v1/files", upload, methods=["POST"]),
        Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
        Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
        Route("/v1/batches", create, methods=["POST"]),
        Route("/v1/batches/{batch_id}", retrieve, methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", cancel, methods=["POST"]),
    ]
