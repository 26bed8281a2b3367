"""``/v1/batches``: OpenAI's Batch API, served by the batch lane (:mod:`hedge.batch`).

Creating a batch reads its input file line by line into the database (each line checked as its
endpoint checks a request; a line that fails goes to the error file instead of failing the
batch) and wakes the worker, which schedules and runs the lines. A batch belongs to the key that
created it, as files do: another key gets 404. Every Batch object carries ``hedge``: its cost,
what it would have cost interactively, the difference, its deadline and the scheduler's plan.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import IO, Any

from starlette.requests import Request
from starlette.responses import Response

from hedge.api.files import _limit, not_found, openai_errors, page
from hedge.api.http import authenticate, json_response, read_body, require_master, runtime_of
from hedge.api.validation import parse_json_object, validate_chat, validate_embeddings
from hedge.batch.files import FileDisk
from hedge.batch.lines import ENDPOINTS, Validate, read_lines, window_seconds
from hedge.batch.store import BatchRow, BatchStore, NewLine, batch_object, new_id, owner_of
from hedge.batch.worker import BatchWorker
from hedge.errors import HedgeError, InvalidRequest, invalid_type, missing_parameter
from hedge.providers.responses_inbound import to_chat


def validate_responses(body: dict[str, Any]) -> None:
    """A Responses API line: what ``POST /v1/responses`` accepts, less what needs the response
    store (a batch's responses are not stored)."""
    if body.get("previous_response_id") is not None:
        raise InvalidRequest(
            "'previous_response_id' is not supported in a batch.",
            param="previous_response_id",
            code="unsupported_parameter",
        )
    validate_chat(to_chat(body)[0])


_VALIDATORS: dict[str, Validate] = {
    "/v1/chat/completions": validate_chat,
    "/v1/embeddings": validate_embeddings,
    "/v1/responses": validate_responses,
}


INGEST_CHUNK = 500


def _worker(request: Request) -> BatchWorker | None:
    worker: BatchWorker | None = getattr(request.app.state, "batch_worker", None)
    return worker


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 16:
        raise InvalidRequest("'metadata' must be an object of at most 16 keys.", param="metadata")
    for k, v in value.items():
        if not isinstance(v, str) or len(k) > 64 or len(v) > 512:
            raise InvalidRequest(
                "'metadata' values must be strings (keys up to 64 characters, values up to 512).",
                param="metadata",
                code="invalid_value",
            )
    return value


@openai_errors
async def create_batch(request: Request) -> Response:
    runtime = runtime_of(request)
    key = await authenticate(request, runtime)
    body = parse_json_object(await read_body(request, runtime.config.server.max_body_bytes))
    for name in ("input_file_id", "endpoint", "completion_window"):
        if body.get(name) is None:
            raise missing_parameter(name)
        if not isinstance(body[name], str):
            raise invalid_type(name, "a string", body[name])
    endpoint = body["endpoint"]
    if endpoint not in ENDPOINTS:
        raise InvalidRequest(
            f"Invalid value for 'endpoint': {endpoint!r}; supported: {', '.join(ENDPOINTS)}.",
            param="endpoint",
            code="invalid_value",
        )
    window = window_seconds(body["completion_window"])
    if window is None:
        raise InvalidRequest(
            f"Invalid value for 'completion_window': {body['completion_window']!r}; use e.g. 24h "
            "(minutes, hours or days, up to 7d).",
            param="completion_window",
            code="invalid_value",
        )
    metadata = _metadata(body.get("metadata"))
    owner = owner_of(key.id if key else None)
    store = BatchStore(runtime.db)
    file = await store.get_file(body["input_file_id"], owner)
    if file is None or file.batch_id is not None:
        raise not_found("File", body["input_file_id"])
    disk = FileDisk(runtime.config.state.dir)
    now = time.time()
    batch = BatchRow(
        id=new_id("batch_"),
        owner=owner,
        key_id=key.id if key else None,
        endpoint=endpoint,
        model=None,
        input_file_id=file.id,
        completion_window=body["completion_window"],
        status="validating",
        created_at=now,
        deadline=now + window,
        metadata=metadata,
    )
    source = disk.open(file.id)
    try:
        count = await _ingest(store, batch, source, runtime.config.batch.max_lines)
    except BaseException:
        await store.drop_lines(batch.id)
        raise
    finally:
        source.close()
    if not count:
        raise InvalidRequest("The input file holds no requests.", param="input_file_id", code="empty_file")
    await store.create_batch(batch)
    worker = _worker(request)
    if worker is not None:
        worker.wake()
    return json_response(batch_object(batch, await store.counts(batch.id)))


async def _ingest(store: BatchStore, batch: BatchRow, source: IO[bytes], max_lines: int) -> int:
    """Read the input file into the batch's lines, a chunk at a time: parsed and checked in a
    thread (a large file must not hold up the server), written between chunks; how many lines."""
    lines = read_lines(batch.id, source, batch.endpoint, _VALIDATORS[batch.endpoint], max_lines)

    def chunk() -> list[NewLine]:
        return list(itertools.islice(lines, INGEST_CHUNK))

    count = 0
    while True:
        try:
            part = await asyncio.to_thread(chunk)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="input_file_id", code="too_many_requests") from None
        if not part:
            return count
        if batch.model is None:
            batch.model = next((str(ln.body.get("model")) for ln in part if ln.body is not None), None)
        await store.add_lines(batch.id, part)
        count += len(part)


async def _owned(request: Request) -> tuple[BatchStore, BatchRow]:
    runtime = runtime_of(request)
    key = await authenticate(request, runtime)
    store = BatchStore(runtime.db)
    batch_id = request.path_params["batch_id"]
    batch = await store.get_batch(batch_id, owner_of(key.id if key else None))
    if batch is None:
        raise not_found("batch", batch_id)
    return store, batch


@openai_errors
async def get_batch(request: Request) -> Response:
    store, batch = await _owned(request)
    return json_response(batch_object(batch, await store.counts(batch.id)))


@openai_errors
async def list_batches(request: Request) -> Response:
    runtime = runtime_of(request)
    key = await authenticate(request, runtime)
    store = BatchStore(runtime.db)
    rows, more = await store.list_batches(
        owner_of(key.id if key else None), request.query_params.get("after"), _limit(request, 20, 100)
    )
    return json_response(page([batch_object(b, await store.counts(b.id)) for b in rows], more))


@openai_errors
async def cancel_batch(request: Request) -> Response:
    store, batch = await _owned(request)
    if not await store.cancel(batch, time.time()):
        raise HedgeError(
            f"Cannot cancel a batch with status '{batch.status}'.",
            status=409,
            type="invalid_request_error",
            code="batch_not_cancellable",
        )
    worker = _worker(request)
    if worker is not None:
        worker.wake()
    return json_response(batch_object(batch, await store.counts(batch.id)))


@openai_errors
async def dashboard_batches(request: Request) -> Response:
    """``GET /admin/dashboard/batches`` (master key): the newest batches of every key, with their
    progress, deadline, plan, cost and saving, for the dashboard's Batches panel."""
    runtime = runtime_of(request)
    require_master(request, runtime)
    store = BatchStore(runtime.db)
    rows, more = await store.list_batches(None, None, _limit(request, 20, 100))
    return json_response(page([batch_object(b, await store.counts(b.id)) for b in rows], more))
