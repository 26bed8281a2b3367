"""The gemini-style mock's batch mode, as an upstream Hedge hands native batches to.

Written from the Gemini API's batch mode reference and the ``google-genai`` SDK's converters
(``batches.py``: ``_CreateBatchJobParameters_to_mldev``, ``_BatchJobSource_to_mldev``,
``_InlinedRequest_to_mldev``, ``_BatchJob_from_mldev``, ``_BatchJobDestination_from_mldev``):
``POST /v1beta/models/{model}:batchGenerateContent`` with ``{"batch": {"displayName",
"inputConfig": {"requests": {"requests": [{"request", "metadata"}]}}}}``, ``GET
/v1beta/batches/{id}`` and ``POST /v1beta/batches/{id}:cancel``. A batch is an operation whose
``metadata`` is the ``GenerateContentBatch``: ``state`` (``BATCH_STATE_PENDING``, ``_RUNNING``,
``_SUCCEEDED``, ``_FAILED``, ``_CANCELLED``, ``_EXPIRED``), ``batchStats`` (int64 counts as
strings, as proto3 JSON writes them) and, once ended, ``output.inlinedResponses.inlinedResponses``:
one ``{"response"}`` or ``{"error"}`` (a ``google.rpc.Status``) per request that ran, in request
order, each with the request's ``metadata``; the ended operation is ``done`` with the same output
as its ``response``. Requests a cancelled or expired batch never ran have no entry.

Each request gets what ``:generateContent`` answers it (refusals included); the ``batch_fail_*``
knobs fail chosen requests with ``INTERNAL``. Only inlined requests are taken (an input file,
``inputConfig.fileName``, is refused with a 400 that says so).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hedge.mock.batches import Job, Line
from hedge.mock.behaviour import digest
from hedge.mock.gemini_style import _auth_error, answer, error, error_body
from hedge.mock.state import BodyTooLarge, MockState

_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta."
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 500: 13, 503: 14, 504: 4}
"""The ``google.rpc.Code`` an inlined error carries for each HTTP status."""


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def _gate(state: MockState, request: Request) -> Response | None:
    denied = _auth_error(state, request)
    if denied is not None:
        return denied
    if state.should_fail():
        return error(state, state.knobs.fail_status)
    return None


def _status(body: dict[str, Any], status: int) -> dict[str, Any]:
    """An error body as the ``google.rpc.Status`` of an inlined response."""
    problem = body.get("error")
    problem = problem if isinstance(problem, dict) else {}
    return {"code": _GRPC_CODES.get(status, 2), "message": str(problem.get("message") or ""), "details": []}


async def create(request: Request) -> Response:
    state: MockState = request.app.state.mock
    try:
        body = await state.read(request)
    except BodyTooLarge as exc:
        return error(state, 400, f"Request payload size exceeds the limit: {exc.limit} bytes.")
    refused = _gate(state, request)
    if refused is not None:
        return refused
    batch = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(batch, dict):
        return error(state, 400, "* BatchGenerateContentRequest.batch: batch is not specified\n")
    source = batch.get("inputConfig")
    if isinstance(source, dict) and "fileName" in source:
        return error(state, 400, "The mock takes inlined requests only, not an input file.")
    requests = source.get("requests") if isinstance(source, dict) else None
    items = requests.get("requests") if isinstance(requests, dict) else None
    if not isinstance(items, list) or not items:
        return error(
            state, 400, "* BatchGenerateContentRequest.batch.input_config: requests are not specified\n"
        )
    model = request.path_params["model"]
    version = request.url.path.split("/")[1]
    lines: list[Line] = []
    for i, item in enumerate(items):
        inner = item.get("request") if isinstance(item, dict) else None
        if not isinstance(inner, dict):
            return error(
                state, 400, f"* batch.input_config.requests.requests[{i}].request: request is not specified\n"
            )
        metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
        key = str(metadata.get("key", i))
        if state.batch_line_fails(key):
            status, answered = 500, error_body(500)
        else:
            status, answered = answer(state, model, inner, version)
        lines.append(Line(key, status, {"answer": answered, "metadata": metadata}))
    name = "batches/" + digest([model, len(state.batches.jobs), time.time()])[:20]
    job = Job(
        name,
        lines,
        polls_needed=max(0, int(state.knobs.batch_polls)),
        expire=bool(state.knobs.batch_expire),
        extra={"model": f"models/{model}", "display_name": str(batch.get("displayName") or name)},
    )
    state.batches.jobs[name] = job
    return _json(operation(job))


def _job(state: MockState, request: Request) -> tuple[Job | None, Response | None]:
    refused = _gate(state, request)
    if refused is not None:
        return None, refused
    name = f"batches/{request.path_params['batch']}"
    job = state.batches.jobs.get(name)
    if job is None:
        return None, error(state, 404, f"Batch {name} not found.")
    return job, None


async def retrieve(request: Request) -> Response:
    state: MockState = request.app.state.mock
    state.note(request, None)
    job, refused = _job(state, request)
    if job is None:
        return refused or error(state, 404)
    job.advance()
    return _json(operation(job))


async def cancel(request: Request) -> Response:
    state: MockState = request.app.state.mock
    state.note(request, None)
    job, refused = _job(state, request)
    if job is None:
        return refused or error(state, 404)
    if job.phase == "ended":
        return error(state, 400, f"Batch {job.id} has already ended and cannot be cancelled.")
    job.cancel()
    return _json({})


def _time(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


_STATES = {"completed": "SUCCEEDED", "expired": "EXPIRED", "cancelled": "CANCELLED", "failed": "FAILED"}


def operation(job: Job) -> dict[str, Any]:
    """The batch as the API returns it: an operation whose metadata is the ``GenerateContentBatch``."""
    ended = job.phase == "ended"
    if ended:
        state = _STATES[str(job.ending)]
    else:
        state = "PENDING" if job.phase == "validating" else "RUNNING"
    answered = job.answered
    ok = sum(line.ok for line in answered)
    total = len(job.lines)
    metadata: dict[str, Any] = {
        "@type": _TYPE + "GenerateContentBatch",
        "model": job.extra["model"],
        "displayName": job.extra["display_name"],
        "name": job.id,
        "createTime": _time(job.created_at),
        "updateTime": _time(job.ended_at or job.in_progress_at or job.created_at),
        "batchStats": {
            "requestCount": str(total),
            "successfulRequestCount": str(ok),
            "failedRequestCount": str(len(answered) - ok),
            "pendingRequestCount": str(0 if ended else total - len(answered)),
        },
        "state": f"BATCH_STATE_{state}",
    }
    out: dict[str, Any] = {"name": job.id, "metadata": metadata}
    if ended:
        metadata["endTime"] = _time(job.ended_at)
        responses = []
        for line in answered:
            entry = (
                {"response": line.body["answer"]}
                if line.ok
                else {"error": _status(line.body["answer"], line.status)}
            )
            responses.append({**entry, "metadata": line.body["metadata"]})
        output = {"inlinedResponses": {"inlinedResponses": responses}}
        metadata["output"] = output
        out["done"] = True
        out["response"] = {"@type": _TYPE + "GenerateContentBatchOutput", **output}
    return out


def routes() -> list[Route]:
    """Listed before the style's own ``models/{rest:path}`` routes, which would take these paths."""
    out: list[Route] = []
    for version in ("v1beta", "v1", "v1alpha"):
        out.append(Route(f"/{version}/models/{{model}}:batchGenerateContent", create, methods=["POST"]))
        out.append(Route(f"/{version}/batches/{{batch}}:cancel", cancel, methods=["POST"]))
        out.append(Route(f"/{version}/batches/{{batch}}", retrieve, methods=["GET"]))
    return out
