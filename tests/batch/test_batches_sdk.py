"""The batch lane through the official ``openai`` SDK: files, batches, output and error files.

One gateway in front of an OpenAI-style mock; each test uploads a JSONL file with
``client.files.create``, runs it with ``client.batches.create`` and polls ``retrieve`` until the
batch is final, as a user would. Line and file formats are OpenAI's (``BatchRequestInput`` and
``BatchRequestOutput`` in OpenAI's openapi.yaml).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from conftest import MASTER_KEY, Gateway, Mock, start_gateway

PRICE = {"input": 1.0, "output": 2.0}


def config(mock: Mock, **batch: Any) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {"up": {"style": "openai", "base_url": f"{mock.url}/v1", "api_key": "sk-up"}},
        "models": {
            "chat": {"deployments": [{"provider": "up", "model": "gpt-4o-mini", "price": PRICE}]},
            "embed": {"deployments": [{"provider": "up", "model": "text-embedding-3-small", "price": PRICE}]},
        },
        "resilience": {"max_attempts": 1, "breaker": {"failures": 1_000_000}},
        "batch": {"poll_interval_s": 0.1, **batch},
    }


def chat_line(custom_id: str, text: str = "hello", model: str = "chat") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}]},
    }


def jsonl(lines: list[Any]) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines
    )


def wait_final(client: openai.OpenAI, batch_id: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} is still {batch.status}")


def lines_of(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


@pytest.fixture(scope="module")
def gw(mock: Mock, logs: Path) -> Iterator[Gateway]:
    gateway = start_gateway(config(mock), logs)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)


def other_key(gw: Gateway) -> openai.OpenAI:
    resp = httpx.post(
        f"{gw.url}/admin/keys", json={"name": "other"}, headers={"Authorization": f"Bearer {MASTER_KEY}"}
    )
    resp.raise_for_status()
    return openai.OpenAI(base_url=gw.base_url, api_key=resp.json()["key"], max_retries=0, timeout=20)


def test_upload_run_and_download(client: openai.OpenAI) -> None:
    good = [chat_line(f"req-{i}", f"question {i}") for i in range(5)]
    data = jsonl([*good, b"{not json", chat_line("req-0"), chat_line("unknown", model="no-such-alias")])
    uploaded = client.files.create(file=("input.jsonl", data), purpose="batch")
    assert uploaded.object == "file" and uploaded.purpose == "batch" and uploaded.bytes == len(data)
    assert client.files.retrieve(uploaded.id).filename == "input.jsonl"
    assert client.files.content(uploaded.id).read() == data
    assert uploaded.id in [f.id for f in client.files.list(purpose="batch")]

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "nightly"},
    )
    assert batch.status == "validating" and batch.metadata == {"job": "nightly"}
    done = wait_final(client, batch.id)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (8, 5, 3)
    assert done.completed_at and done.in_progress_at and done.finalizing_at

    output = lines_of(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == [f"req-{i}" for i in range(5)]
    for line in output:
        assert set(line) == {"id", "custom_id", "response", "error"}
        assert line["id"].startswith("batch_req_") and line["error"] is None
        response = line["response"]
        assert response["status_code"] == 200 and response["request_id"].startswith("req_")
        assert response["body"]["object"] == "chat.completion"
        number = line["custom_id"].split("-")[1]
        assert f"question {number}" in response["body"]["choices"][0]["message"]["content"]

    errors = {line["custom_id"]: line for line in lines_of(client, done.error_file_id)}
    assert len(errors) == 3
    assert errors[""]["response"] is None and errors[""]["error"]["code"] == "invalid_json_line"
    assert errors["req-0"]["error"]["code"] == "duplicate_custom_id"
    unknown = errors["unknown"]
    assert unknown["error"] is None and unknown["response"]["status_code"] == 404
    assert unknown["response"]["body"]["error"]["param"] == "model"

    hedge = done.model_extra["hedge"] if done.model_extra else {}
    assert hedge["cost_usd"] > 0 and hedge["deadline"] == done.expires_at
    assert hedge["plan"]["run_now"] is True


def test_embeddings_batch(client: openai.OpenAI) -> None:
    lines = [
        {
            "custom_id": f"e{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "embed", "input": "x"},
        }
        for i in range(3)
    ]
    uploaded = client.files.create(file=("e.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    done = wait_final(client, batch.id)
    assert done.status == "completed" and done.error_file_id is None
    output = lines_of(client, done.output_file_id)
    assert {line["response"]["body"]["object"] for line in output} == {"list"}


def test_list_pages_and_cancel(client: openai.OpenAI, mock: Mock) -> None:
    ids = []
    for _ in range(3):
        uploaded = client.files.create(file=("p.jsonl", jsonl([chat_line("only")])), purpose="batch")
        ids.append(
            client.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            ).id
        )
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2] and first.has_more
    second = client.batches.list(limit=2, after=first.data[-1].id)
    assert second.data[0].id == ids[0]
    assert [b.id for b in client.batches.list(limit=2).iter_pages().__next__().data] == ids[::-1][:2]

    mock.configure(latency_ms=400)
    try:
        lines = [chat_line(f"c{i}") for i in range(30)]
        uploaded = client.files.create(file=("c.jsonl", jsonl(lines)), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        cancelling = client.batches.cancel(batch.id)
        assert cancelling.status == "cancelling" and cancelling.cancelling_at
        done = wait_final(client, batch.id)
    finally:
        mock.configure(latency_ms=0)
    assert done.status == "cancelled" and done.cancelled_at
    assert done.request_counts is not None and done.request_counts.completed < 30
    errors = lines_of(client, done.error_file_id)
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert len(errors) + done.request_counts.completed == 30
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_another_key_sees_nothing(client: openai.OpenAI, gw: Gateway) -> None:
    uploaded = client.files.create(file=("s.jsonl", jsonl([chat_line("s")])), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    other = other_key(gw)
    with pytest.raises(openai.NotFoundError):
        other.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        other.files.content(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        other.files.delete(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        other.batches.cancel(batch.id)
    with pytest.raises(openai.NotFoundError):
        other.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert uploaded.id not in [f.id for f in other.files.list()]
    assert batch.id not in [b.id for b in other.batches.list()]
    # The other key's own batch runs under that key, and is booked to it.
    mine = other.files.create(file=("o.jsonl", jsonl([chat_line("o")])), purpose="batch")
    own = other.batches.create(
        input_file_id=mine.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert wait_final(other, own.id).status == "completed"
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve(own.id)


def test_delete_file(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("d.jsonl", jsonl([chat_line("d")])), purpose="batch")
    deleted = client.files.delete(uploaded.id)
    assert deleted.deleted and deleted.id == uploaded.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"endpoint": "/v1/moderations"}, "endpoint"),
        ({"completion_window": "forever"}, "completion_window"),
        ({"metadata": {"n": 1}}, "metadata"),
    ],
)
def test_bad_batch_requests(client: openai.OpenAI, changes: dict[str, Any], param: str) -> None:
    uploaded = client.files.create(file=("b.jsonl", jsonl([chat_line("b")])), purpose="batch")
    args: dict[str, Any] = {
        "input_file_id": uploaded.id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        **changes,
    }
    with pytest.raises(openai.BadRequestError) as err:
        client.batches.create(**args)
    assert err.value.body is not None and err.value.body["param"] == param  # type: ignore[index]


def test_bad_uploads(client: openai.OpenAI, gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("x.jsonl", b"{}\n"), purpose="fine-tune")
    assert "purpose" in str(err.value)
    resp = httpx.post(
        f"{gw.base_url}/files", content=b"{}", headers={"Authorization": f"Bearer {MASTER_KEY}"}
    )
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    with pytest.raises(openai.NotFoundError):
        client.files.content("file-nope")


def test_metrics_count_batch_lines(gw: Gateway, client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("m.jsonl", jsonl([chat_line("m")])), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_final(client, batch.id)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = httpx.get(f"{gw.url}/metrics").text
        if 'hedge_batch_lines{state="succeeded"}' in text and "hedge_batch_cost_usd" in text:
            value = next(
                line for line in text.splitlines() if line.startswith('hedge_batch_lines{state="succeeded"}')
            )
            if float(value.split()[-1]) >= 1:
                return
        time.sleep(0.2)
    raise AssertionError("batch lines never showed in /metrics")


def test_the_dashboard_lists_batches(gw: Gateway, client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("u.jsonl", jsonl([chat_line("u")])), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_final(client, batch.id)
    resp = httpx.get(f"{gw.url}/admin/dashboard/batches", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert resp.status_code == 200
    shown = {b["id"]: b for b in resp.json()["data"]}
    assert shown[batch.id]["status"] == "completed" and "savings_usd" in shown[batch.id]["hedge"]
    other = other_key(gw)
    refused = httpx.get(
        f"{gw.url}/admin/dashboard/batches", headers={"Authorization": f"Bearer {other.api_key}"}
    )
    assert refused.status_code == 403
    page = httpx.get(f"{gw.url}/ui/app.js").text
    assert "renderBatches" in page and 'api("batches")' in page


def test_the_batches_panel_in_a_browser(gw: Gateway, client: openai.OpenAI) -> None:
    from playwright import sync_api

    uploaded = client.files.create(
        file=("w.jsonl", jsonl([chat_line("w1"), chat_line("w2")])), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_final(client, batch.id)
    chromium = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
    if not chromium:
        pytest.skip("chromium not found (/usr/bin/chromium); .ci/run installs it with apt-get")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            errors: list[str] = []
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{gw.url}/ui")
            page.fill("#login-key", MASTER_KEY)
            page.click("#login-submit")
            page.wait_for_selector("body[data-loaded]")
            row = page.locator(f'#batches tr[data-batch="{batch.id}"]')
            cells = row.locator("td").all_text_contents()
            assert cells[0] == batch.id and cells[1] == "completed" and cells[2] == "2 / 2"
            assert "saved" in page.text_content("#batches-note")  # type: ignore[operator]
            assert errors == [], errors
        finally:
            browser.close()


def test_responses_batch(client: openai.OpenAI) -> None:
    def line(custom_id: str, **body: Any) -> dict[str, Any]:
        return {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/responses",
            "body": {"model": "chat", **body},
        }

    lines = [
        line("r1", input="what is two plus two", instructions="Be brief."),
        line("r2", input=[{"role": "user", "content": "say hello"}]),
        line("r3", input="x", previous_response_id="resp_123"),
        line("r4", input="x", temperature="hot"),
    ]
    uploaded = client.files.create(file=("r.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h"
    )
    done = wait_final(client, batch.id)
    assert done.status == "completed"
    output = {line["custom_id"]: line for line in lines_of(client, done.output_file_id)}
    assert set(output) == {"r1", "r2"}
    for custom_id, text in (("r1", "what is two plus two"), ("r2", "say hello")):
        response = output[custom_id]["response"]["body"]
        assert response["object"] == "response" and response["status"] == "completed"
        assert response["id"].startswith("resp_")
        message = next(item for item in response["output"] if item["type"] == "message")
        assert text in message["content"][0]["text"]
    errors = {line["custom_id"]: line["error"] for line in lines_of(client, done.error_file_id)}
    assert errors["r3"]["code"] == "unsupported_parameter"
    assert "temperature" in errors["r4"]["message"]


def test_empty_and_oversized_inputs_are_refused(client: openai.OpenAI, mock: Mock, logs: Path) -> None:
    empty = client.files.create(file=("e.jsonl", b"\n\n"), purpose="batch")
    with pytest.raises(openai.BadRequestError) as err:
        client.batches.create(
            input_file_id=empty.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert "no requests" in str(err.value)
    small = start_gateway(config(mock, max_lines=2), logs)
    try:
        limited = openai.OpenAI(base_url=small.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
        big = limited.files.create(
            file=("b.jsonl", jsonl([chat_line(f"x{i}") for i in range(3)])), purpose="batch"
        )
        with pytest.raises(openai.BadRequestError) as err:
            limited.batches.create(
                input_file_id=big.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        assert "more than 2 requests" in str(err.value)
        assert limited.batches.list().data == []
    finally:
        small.stop()
    import sqlite3

    with sqlite3.connect(
        Path(yaml.safe_load(small.config_path.read_text())["state"]["dir"]) / "hedge.db"
    ) as db:
        assert db.execute("SELECT COUNT(*) FROM hedge_batch_lines").fetchone()[0] == 0  # nothing left behind
