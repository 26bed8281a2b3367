"""The openai-style mock's Files and Batch APIs, driven by the official ``openai`` SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from conftest import Mock, start_mock

MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def mock(logs: Path) -> Iterator[Mock]:
    m = start_mock("openai", logs, "--seed", "5")
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def _reset(mock: Mock) -> Iterator[None]:
    mock.configure(batch_polls=2, batch_fail_rate=0.0, batch_fail_ids=[], batch_expire=False)
    yield
    mock.reset()


@pytest.fixture
def client(mock: Mock) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mock.url}/v1", api_key="k", max_retries=0, timeout=10)


def line(custom_id: str, text: str = "hello", **body: Any) -> dict[str, Any]:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": text}], **body}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": payload}


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def submit(client: openai.OpenAI, rows: list[dict[str, Any]]) -> Any:
    upload = client.files.create(file=("input.jsonl", jsonl(rows)), purpose="batch")
    return client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def rows_of(client: openai.OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    if file_id is None:
        return {}
    lines = client.files.content(file_id).content.splitlines()
    return {row["custom_id"]: row for row in map(orjson.loads, lines)}


def test_file_upload_and_content(client: openai.OpenAI) -> None:
    data = jsonl([line("a")])
    created = client.files.create(file=("input.jsonl", data), purpose="batch")
    assert created.id.startswith("file-")
    assert (created.object, created.purpose, created.status, created.bytes) == (
        "file",
        "batch",
        "processed",
        len(data),
    )
    assert client.files.retrieve(created.id).filename == "input.jsonl"
    assert client.files.content(created.id).content == data
    assert client.files.delete(created.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)


def test_a_batch_file_must_be_jsonl(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="jsonl"):
        client.files.create(file=("input.txt", b"{}"), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="Supported values"):
        client.files.create(file=("input.jsonl", b"{}"), purpose="nonsense")  # type: ignore[arg-type]


def test_batch_walks_through_its_statuses_to_completed(client: openai.OpenAI, mock: Mock) -> None:
    mock.configure(batch_polls=3)
    rows = [line(f"r{i}", f"question {i}") for i in range(6)]
    batch = submit(client, rows)
    assert batch.id.startswith("batch_") and batch.object == "batch"
    assert batch.status == "validating"
    assert batch.request_counts is not None and batch.request_counts.total == 0
    seen = []
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        batch = client.batches.retrieve(batch.id)
        assert batch.request_counts is not None
        seen.append((batch.status, batch.request_counts.completed))
    assert seen == [("in_progress", 2), ("in_progress", 4), ("finalizing", 6), ("completed", 6)]
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.failed) == (6, 0)
    assert batch.completed_at and batch.in_progress_at and batch.finalizing_at
    assert batch.error_file_id is None
    assert batch.usage is not None and batch.usage.total_tokens > 0
    out = rows_of(client, batch.output_file_id)
    assert set(out) == {f"r{i}" for i in range(6)}
    first = out["r0"]
    assert first["id"].startswith("batch_req_") and first["error"] is None
    assert first["response"]["status_code"] == 200
    body = first["response"]["body"]
    assert body["object"] == "chat.completion" and body["model"] == MODEL
    ordered = [
        orjson.loads(x)["custom_id"] for x in client.files.content(batch.output_file_id).content.splitlines()
    ]
    assert ordered != [f"r{i}" for i in range(6)]  # results come in any order: match by custom_id


def test_failed_and_refused_lines_go_to_the_error_file(client: openai.OpenAI, mock: Mock) -> None:
    mock.configure(batch_polls=0, batch_fail_ids=["boom"])
    rows = [line("ok"), line("boom"), line("bad", max_tokens=0), line("gone", model="no-such-model")]
    rows[3]["body"]["model"] = MODEL  # one model per batch; refuse by parameter instead
    rows[3]["body"]["temperature"] = 7
    batch = client.batches.retrieve(submit(client, rows).id)
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 3)
    assert set(rows_of(client, batch.output_file_id)) == {"ok"}
    errors = rows_of(client, batch.error_file_id)
    assert errors["boom"]["response"]["status_code"] == 500
    assert errors["bad"]["response"]["status_code"] == 400
    assert errors["bad"]["response"]["body"]["error"]["code"] == "integer_below_min_value"
    assert errors["gone"]["response"]["body"]["error"]["param"] == "temperature"


def test_a_share_of_lines_fails(client: openai.OpenAI, mock: Mock) -> None:
    mock.configure(batch_polls=0, batch_fail_rate=0.5)
    batch = client.batches.retrieve(submit(client, [line(f"r{i}") for i in range(40)]).id)
    assert batch.request_counts is not None
    assert 5 < batch.request_counts.failed < 35
    assert batch.request_counts.completed + batch.request_counts.failed == 40


def test_cancel_leaves_unrun_lines_in_the_error_file(client: openai.OpenAI, mock: Mock) -> None:
    mock.configure(batch_polls=4)
    batch = submit(client, [line(f"r{i}") for i in range(8)])
    client.batches.retrieve(batch.id)  # a quarter done
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    done = client.batches.retrieve(batch.id)
    assert done.status == "cancelled" and done.cancelled_at
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 6)
    errors = rows_of(client, done.error_file_id)
    assert len(errors) == 6
    assert all(e["response"] is None and e["error"]["code"] == "batch_cancelled" for e in errors.values())
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_expired_batch(client: openai.OpenAI, mock: Mock) -> None:
    mock.configure(batch_polls=1, batch_expire=True)
    batch = submit(client, [line(f"r{i}") for i in range(4)])
    assert client.batches.retrieve(batch.id).status == "in_progress"
    done = client.batches.retrieve(batch.id)
    assert done.status == "expired" and done.expired_at
    errors = rows_of(client, done.error_file_id)
    assert {e["error"]["code"] for e in errors.values()} == {"batch_expired"}
    assert len(errors) + len(rows_of(client, done.output_file_id)) == 4


def test_complete_control_ends_open_batches(client: openai.OpenAI, mock: Mock) -> None:
    mock.configure(batch_polls=1000)
    batch = submit(client, [line("a"), line("b")])
    ended = httpx.post(f"{mock.url}/_mock/batches/complete").json()
    assert ended["ended"] >= 1
    assert client.batches.retrieve(batch.id).status == "completed"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "empty_file"),
        (b"not json\n", "invalid_json_line"),
        (jsonl([line("a"), line("a")]), "duplicate_custom_id"),
        (jsonl([{**line("a"), "url": "/v1/embeddings"}]), "url_mismatch"),
        (
            jsonl([line("a"), {**line("b"), "body": {**line("b")["body"], "model": "gpt-4o"}}]),
            "model_mismatch",
        ),
        (jsonl([{k: v for k, v in line("a").items() if k != "method"}]), "missing_required_parameter"),
    ],
)
def test_an_invalid_input_file_fails_the_batch(client: openai.OpenAI, content: bytes, code: str) -> None:
    upload = client.files.create(file=("input.jsonl", content), purpose="batch")
    batch = client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.failed_at
    assert failed.errors is not None and failed.errors.data
    assert failed.errors.data[0].code == code
    assert failed.output_file_id is None and failed.error_file_id is None


def test_create_is_refused_for_bad_parameters(client: openai.OpenAI) -> None:
    upload = client.files.create(file=("input.jsonl", jsonl([line("a")])), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="Supported values are: '24h'"):
        client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="1h"
        )  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    assert httpx.get(f"{client.base_url}batches/x").status_code == 401


def test_a_file_over_a_megabyte_is_taken(client: openai.OpenAI, mock: Mock) -> None:
    mock.configure(batch_polls=0)
    filler = "word " * 2000  # ~10 KB a line, ~1.2 MB in all: past form parsers' in-memory part size
    rows = [line(f"r{i}", f"{filler} {i}") for i in range(120)]
    batch = client.batches.retrieve(submit(client, rows).id)
    assert batch.status == "completed"
    assert batch.request_counts is not None and batch.request_counts.completed == 120
