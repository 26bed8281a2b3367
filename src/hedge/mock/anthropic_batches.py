"""The anthropic-style mock's Message Batches API, as an upstream Hedge hands native batches to.

Written from Anthropic's API reference and the ``anthropic`` SDK's types (``MessageBatch``,
``MessageBatchRequestCounts``, ``MessageBatchIndividualResponse``): ``POST /v1/messages/batches``
(``{"requests": [{"custom_id", "params"}]}``), ``GET /v1/messages/batches/{id}``,
``POST /v1/messages/batches/{id}/cancel`` and ``GET /v1/messages/batches/{id}/results`` (JSONL,
``application/x-jsonl``, read from the batch's ``results_url``, which is set only once processing
has ended).

As Anthropic does, the request list itself is checked at once (a 400 for no requests, more than
100,000, a ``custom_id`` outside ``^[a-zA-Z0-9_-]{1,64}$`` or used twice, ``params`` that are not
an object), while each request's ``params`` are checked as ``POST /v1/messages`` checks them and a
refused one becomes an ``errored`` result (so does ``stream: true``, which batches do not take,
and a line the ``batch_fail_*`` knobs fail: ``api_error``). ``processing_status`` goes
``in_progress`` -> (``canceling``) -> ``ended``; ``request_counts`` stay all ``processing`` until
the batch has ended, as the API documents; requests a cancelled or expired batch never ran are
``canceled`` / ``expired`` results. Results come in an order that is not the requests'.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hedge.mock.anthropic_style import answer, error, error_body
from hedge.mock.batches import Job, Line, shuffled
from hedge.mock.behaviour import digest
from hedge.mock.state import MockState

MAX_REQUESTS = 100_000
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
WINDOW_S = 24 * 3600


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _key(request: Request) -> str:
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    return key


def _gate(state: MockState, request: Request) -> Response | None:
    """Authentication, the version header and injected faults, as ``POST /v1/messages`` has them."""
    key = _key(request)
    if not key:
        return error(state, 401, "x-api-key header is required")
    if state.knobs.api_key is not None and key != state.knobs.api_key:
        return error(state, 401, "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return error(state, 400, "anthropic-version: header is required")
    if state.should_fail():
        return error(state, state.knobs.fail_status)
    return None


def _check(requests: Any) -> str | None:
    """The first problem the API reports at once for a ``requests`` list, if any."""
    if not isinstance(requests, list):
        return "requests: Field required" if requests is None else "requests: Input should be a valid list"
    if not requests:
        return "requests: List should have at least 1 item after validation, not 0"
    if len(requests) > MAX_REQUESTS:
        return (
            f"requests: List should have at most {MAX_REQUESTS} items after validation, not {len(requests)}"
        )
    seen: set[str] = set()
    for i, item in enumerate(requests):
        if not isinstance(item, dict):
            return f"requests.{i}: Input should be an object"
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str):
            return f"requests.{i}.custom_id: Field required"
        if not CUSTOM_ID.fullmatch(custom_id):
            return f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        if custom_id in seen:
            return f"Duplicate custom_id in batch: {custom_id}"
        seen.add(custom_id)
        if not isinstance(item.get("params"), dict):
            return f"requests.{i}.params: Field required"
    return None


def _line(state: MockState, custom_id: str, params: dict[str, Any]) -> Line:
    if state.batch_line_fails(custom_id):
        return Line(custom_id, 500, error_body(500))
    if params.get("stream"):
        return Line(custom_id, 400, error_body(400, "stream: Streaming is not supported in batches"))
    return Line(custom_id, *answer(state, params))


async def create(request: Request) -> Response:
    state: MockState = request.app.state.mock
    refused = _gate(state, request)
    body = await state.read(request)
    if refused is not None:
        return refused
    if not isinstance(body, dict):
        return error(state, 400, "There was an error parsing the body of your request as JSON.")
    problem = _check(body.get("requests"))
    if problem:
        return error(state, 400, problem)
    lines = [_line(state, item["custom_id"], item["params"]) for item in body["requests"]]
    batch_id = "msgbatch_" + digest([len(state.batches.jobs), time.time(), len(lines)])[:24]
    job = Job(
        batch_id,
        lines,
        polls_needed=max(0, int(state.knobs.batch_polls)),
        expire=bool(state.knobs.batch_expire),
        extra={"base_url": str(request.base_url).rstrip("/")},
    )
    state.batches.jobs[batch_id] = job
    return _json(batch_object(job))


def _job(state: MockState, request: Request) -> tuple[Job | None, Response | None]:
    refused = _gate(state, request)
    if refused is not None:
        return None, refused
    job = state.batches.jobs.get(request.path_params["batch_id"])
    if job is None:
        return None, error(state, 404, f"Message batch {request.path_params['batch_id']} not found")
    return job, None


async def retrieve(request: Request) -> Response:
    state: MockState = request.app.state.mock
    state.note(request, None)
    job, refused = _job(state, request)
    if job is None:
        return refused or error(state, 404)
    job.advance()
    return _json(batch_object(job))


async def cancel(request: Request) -> Response:
    state: MockState = request.app.state.mock
    state.note(request, None)
    job, refused = _job(state, request)
    if job is None:
        return refused or error(state, 404)
    job.cancel()  # cancelling an ended batch changes nothing, as the API answers it
    return _json(batch_object(job))


async def results(request: Request) -> Response:
    state: MockState = request.app.state.mock
    state.note(request, None)
    job, refused = _job(state, request)
    if job is None:
        return refused or error(state, 404)
    if job.phase != "ended":
        return error(state, 400, f"Message batch {job.id} is still processing; results are not ready.")
    rows: list[bytes] = []
    for line in shuffled(job.answered, job.id):
        result: dict[str, Any]
        if line.ok:
            result = {"type": "succeeded", "message": line.body}
        else:
            request_id = "req_" + digest([job.id, line.custom_id])[:24]
            result = {"type": "errored", "error": {**line.body, "request_id": request_id}}
        rows.append(orjson.dumps({"custom_id": line.custom_id, "result": result}) + b"\n")
    kind = "expired" if job.ending == "expired" else "canceled"
    for line in shuffled(job.unanswered, job.id):
        rows.append(orjson.dumps({"custom_id": line.custom_id, "result": {"type": kind}}) + b"\n")
    return Response(b"".join(rows), media_type="application/x-jsonl")


def _time(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def batch_object(job: Job) -> dict[str, Any]:
    """The ``message_batch`` object as Anthropic returns it from create, retrieve and cancel."""
    ended = job.phase == "ended"
    counts = {"processing": len(job.lines), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if ended:
        answered = job.answered
        ok = sum(line.ok for line in answered)
        counts.update(processing=0, succeeded=ok, errored=len(answered) - ok)
        counts["expired" if job.ending == "expired" else "canceled"] = len(job.unanswered)
    status = "ended" if ended else "canceling" if job.cancelling else "in_progress"
    return {
        "id": job.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "ended_at": _time(job.ended_at),
        "created_at": _time(job.created_at),
        "expires_at": _time(job.created_at + WINDOW_S),
        "archived_at": None,
        "cancel_initiated_at": _time(job.cancelling_at),
        "results_url": f"{job.extra['base_url']}/v1/messages/batches/{job.id}/results" if ended else None,
    }


def routes() -> list[Route]:
    return [
        Route("/v1/messages/batches", create, methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}", retrieve, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}/cancel", cancel, methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}/results", results, methods=["GET"]),
    ]
