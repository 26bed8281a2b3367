"""``/v1/files``: OpenAI's Files API for batch input, and the batches' output and error files.

``POST /v1/files`` takes ``multipart/form-data`` (``purpose=batch`` and ``file``) and writes the
file to disk as it arrives (:class:`hedge.batch.files.FileDisk`), bounded by
``batch.max_file_bytes``, so a large upload never sits in memory. A file belongs to the key that
uploaded it: any other key gets OpenAI's 404, as for a file that does not exist. Output and error
files are rendered from their batch's lines when read, so every replica serves them.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from hedge.api.http import Endpoint, authenticate, error_response, json_response, runtime_of, store_endpoint
from hedge.batch.files import FileDisk
from hedge.batch.lines import output_line
from hedge.batch.store import ERRORED, SUCCEEDED, BatchStore, FileRow, owner_of
from hedge.errors import HedgeError, InvalidRequest, PayloadTooLarge, missing_parameter
from hedge.gateway.runtime import Runtime

PURPOSES = ("batch",)
"""What Hedge stores files for (OpenAI has more purposes; each is refused with a clear 400)."""
CHUNK = 64 * 1024


def openai_errors(endpoint: Endpoint) -> Endpoint:
    """Errors in OpenAI's shape (a HedgeError's status; 503 when the database is down)."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except HedgeError as exc:
            return error_response(exc)

    return store_endpoint(guarded)


def not_found(kind: str, object_id: str) -> HedgeError:
    return HedgeError(f"No such {kind}: {object_id!r}.", status=404, type="invalid_request_error", code=None)


def _stores(runtime: Runtime) -> tuple[BatchStore, FileDisk]:
    return BatchStore(runtime.db), FileDisk(runtime.config.state.dir)


class _Upload:
    """The multipart callbacks: the ``file`` part goes to disk, other (small) fields to memory."""

    def __init__(self, disk: FileDisk, file_id: str, limit: int) -> None:
        self.disk, self.file_id, self.limit = disk, file_id, limit
        self.fields: dict[str, bytes] = {}
        self.filename: str | None = None
        self.size = 0
        self._out: Any = None
        self._name = b""
        self._value = b""
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> Any:  # python-multipart's callback TypedDict
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._add("_header_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("_header_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _add(self, name: str, data: bytes) -> None:
        setattr(self, name, getattr(self, name) + data)

    def _begin(self) -> None:
        self._headers, self._name, self._value = {}, b"", b""

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"")
        if self._name == b"file":  # a second file part replaces the first, as a form field would
            self.filename = options.get(b"filename", b"file.jsonl").decode("utf-8", "replace")
            self.size = 0
            self._out = self.disk.open_new(self.file_id)

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._name == b"file" and self._out is not None:
            self.size += end - start
            if self.size > self.limit:
                raise PayloadTooLarge(f"The file is larger than this gateway's limit of {self.limit} bytes.")
            self._out.write(data[start:end])
        elif len(self._value) + end - start <= 4096:
            self._value += data[start:end]

    def _end(self) -> None:
        if self._name == b"file" and self._out is not None:
            self._out.close()
            self._out = None
        elif self._name:
            self.fields[self._name.decode("utf-8", "replace")] = self._value

    def abort(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        self.disk.discard(self.file_id)


@openai_errors
async def create_file(request: Request) -> Response:
    runtime = runtime_of(request)
    key = await authenticate(request, runtime)
    content_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidRequest("Upload the file as multipart/form-data with fields 'purpose' and 'file'.")
    store, disk = _stores(runtime)
    file_id = "file-" + os.urandom(12).hex()
    upload = _Upload(disk, file_id, runtime.config.batch.max_file_bytes)
    parser = MultipartParser(boundary, upload.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except (HedgeError, ClientDisconnect):
        upload.abort()
        raise
    except Exception:
        upload.abort()
        raise InvalidRequest("The multipart/form-data body could not be parsed.") from None
    purpose = upload.fields.get("purpose", b"").decode("utf-8", "replace")
    if upload.filename is None:
        upload.abort()
        raise missing_parameter("file")
    if purpose not in PURPOSES:
        upload.abort()
        raise InvalidRequest(
            f"Invalid value for 'purpose': {purpose!r}. This gateway stores files for batches only: 'batch'.",
            param="purpose",
            code="invalid_value",
        )
    disk.keep(file_id)
    row = FileRow(
        file_id, owner_of(key.id if key else None), purpose, upload.filename, upload.size, time.time()
    )
    await store.add_file(row)
    return json_response(row.to_openai())


def _limit(request: Request, default: int, most: int) -> int:
    value = request.query_params.get("limit")
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise InvalidRequest(
            f"Invalid value for 'limit': {value!r}; it must be between 1 and {most}.",
            param="limit",
            code="invalid_value",
        )
    return int(value)


def page(data: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    """OpenAI's cursor page."""
    return {
        "object": "list",
        "data": data,
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


@openai_errors
async def list_files(request: Request) -> Response:
    runtime = runtime_of(request)
    key = await authenticate(request, runtime)
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(f"Invalid value for 'order': {order!r}; use asc or desc.", param="order")
    store, _ = _stores(runtime)
    rows, more = await store.list_files(
        owner_of(key.id if key else None),
        request.query_params.get("purpose"),
        request.query_params.get("after"),
        _limit(request, 10000, 10000),
        order,
    )
    return json_response(page([r.to_openai() for r in rows], more))


async def _owned(request: Request) -> tuple[BatchStore, FileDisk, FileRow]:
    runtime = runtime_of(request)
    key = await authenticate(request, runtime)
    store, disk = _stores(runtime)
    file_id = request.path_params["file_id"]
    row = await store.get_file(file_id, owner_of(key.id if key else None))
    if row is None:
        raise not_found("File", file_id)
    return store, disk, row


@openai_errors
async def get_file(request: Request) -> Response:
    _, _, row = await _owned(request)
    return json_response(row.to_openai())


@openai_errors
async def delete_file(request: Request) -> Response:
    store, disk, row = await _owned(request)
    await store.delete_file(row.id, row.owner)
    disk.remove(row.id)
    return json_response({"id": row.id, "object": "file", "deleted": True})


@openai_errors
async def file_content(request: Request) -> Response:
    store, disk, row = await _owned(request)
    if row.batch_id is None:
        source = disk.open(row.id)
        return StreamingResponse(_read(source), media_type="application/octet-stream")
    batch = await store.get_batch(row.batch_id)
    states = (SUCCEEDED,) if batch is not None and batch.output_file_id == row.id else ERRORED
    return StreamingResponse(_rendered(store, row.batch_id, states), media_type="application/octet-stream")


async def _read(source: Any) -> AsyncIterator[bytes]:
    with source:
        while chunk := source.read(CHUNK):
            yield chunk


async def _rendered(store: BatchStore, batch_id: str, states: tuple[str, ...]) -> AsyncIterator[bytes]:
    after = -1
    while rows := await store.lines(batch_id, states, after, 1000):
        yield b"".join(output_line(batch_id, r) + b"\n" for r in rows)
        after = int(rows[-1]["idx"])
