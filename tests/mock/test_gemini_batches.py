"""The gemini-style mock's batch mode, driven over HTTP in the shapes the ``google-genai`` SDK's
converters write and read (``batches.py`` in https://github.com/googleapis/python-genai: the SDK
itself is not installed here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Mock, start_mock

MODEL = "gemini-2.5-flash"
KEY = {"x-goog-api-key": "k"}


@pytest.fixture(scope="module")
def mock(logs: Path) -> Iterator[Mock]:
    m = start_mock("gemini", logs, "--seed", "5")
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def _reset(mock: Mock) -> Iterator[None]:
    mock.configure(batch_polls=2, batch_fail_rate=0.0, batch_fail_ids=[], batch_expire=False)
    yield
    mock.reset()


def request(key: str, text: str = "hello", **config: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if config:
        body["generationConfig"] = config
    return {"request": body, "metadata": {"key": key}}


def create(mock: Mock, items: list[dict[str, Any]], model: str = MODEL) -> httpx.Response:
    body = {"batch": {"displayName": "nightly", "inputConfig": {"requests": {"requests": items}}}}
    return httpx.post(f"{mock.url}/v1beta/models/{model}:batchGenerateContent", json=body, headers=KEY)


def get(mock: Mock, name: str) -> dict[str, Any]:
    resp = httpx.get(f"{mock.url}/v1beta/{name}", headers=KEY)
    resp.raise_for_status()
    data: dict[str, Any] = resp.json()
    return data


def test_a_batch_runs_pending_running_succeeded(mock: Mock) -> None:
    created = create(mock, [request(f"r{i}", f"question {i}") for i in range(4)])
    assert created.status_code == 200
    op = created.json()
    name = op["name"]
    assert name.startswith("batches/") and op["metadata"]["name"] == name
    meta = op["metadata"]
    assert meta["@type"].endswith("GenerateContentBatch")
    assert (meta["state"], meta["model"], meta["displayName"]) == (
        "BATCH_STATE_PENDING",
        f"models/{MODEL}",
        "nightly",
    )
    assert meta["batchStats"]["requestCount"] == "4"  # int64 as a string, as proto3 JSON writes it
    running = get(mock, name)
    assert running["metadata"]["state"] == "BATCH_STATE_RUNNING" and "done" not in running
    assert running["metadata"]["batchStats"]["pendingRequestCount"] == "2"
    get(mock, name)
    done = get(mock, name)
    assert done["done"] is True and done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert done["metadata"]["endTime"]
    entries = done["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert [e["metadata"]["key"] for e in entries] == ["r0", "r1", "r2", "r3"]  # in request order
    first = entries[0]["response"]
    assert first["candidates"][0]["content"]["role"] == "model"
    assert first["usageMetadata"]["totalTokenCount"] > 0
    assert done["response"]["inlinedResponses"] == done["metadata"]["output"]["inlinedResponses"]


def test_refused_and_failed_requests_are_status_errors(mock: Mock) -> None:
    mock.configure(batch_polls=0, batch_fail_ids=["boom"])
    items = [
        request("ok"),
        request("boom"),
        request("zero", maxOutputTokens=0),
        request("hot", temperature=5),
    ]
    name = create(mock, items).json()["name"]
    done = get(mock, name)
    stats = done["metadata"]["batchStats"]
    assert (stats["successfulRequestCount"], stats["failedRequestCount"]) == ("1", "3")
    entries = {
        e["metadata"]["key"]: e for e in done["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    }
    assert "response" in entries["ok"]
    assert entries["boom"]["error"]["code"] == 13  # INTERNAL, a google.rpc.Code
    assert entries["zero"]["error"]["code"] == 3  # INVALID_ARGUMENT
    assert entries["hot"]["error"]["code"] == 3


def test_cancel_keeps_what_ran(mock: Mock) -> None:
    mock.configure(batch_polls=4)
    name = create(mock, [request(f"r{i}") for i in range(8)]).json()["name"]
    get(mock, name)  # a quarter done
    cancelled = httpx.post(f"{mock.url}/v1beta/{name}:cancel", headers=KEY)
    assert cancelled.status_code == 200 and cancelled.json() == {}
    done = get(mock, name)
    assert done["metadata"]["state"] == "BATCH_STATE_CANCELLED"
    entries = done["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert [e["metadata"]["key"] for e in entries] == ["r0", "r1"]
    assert httpx.post(f"{mock.url}/v1beta/{name}:cancel", headers=KEY).status_code == 400


def test_expired_batch(mock: Mock) -> None:
    mock.configure(batch_polls=1, batch_expire=True)
    name = create(mock, [request(f"r{i}") for i in range(4)]).json()["name"]
    get(mock, name)
    assert get(mock, name)["metadata"]["state"] == "BATCH_STATE_EXPIRED"


def test_complete_control(mock: Mock) -> None:
    mock.configure(batch_polls=1000)
    name = create(mock, [request("a")]).json()["name"]
    assert httpx.post(f"{mock.url}/_mock/batches/complete").json()["ended"] >= 1
    assert get(mock, name)["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"batch": {"inputConfig": {"requests": {"requests": []}}}}, 400),
        ({"batch": {"inputConfig": {"fileName": "files/abc"}}}, 400),
        ({"batch": {"inputConfig": {"requests": {"requests": [{"metadata": {"key": "a"}}]}}}}, 400),
    ],
)
def test_bad_create_bodies(mock: Mock, body: dict[str, Any], status: int) -> None:
    resp = httpx.post(f"{mock.url}/v1beta/models/{MODEL}:batchGenerateContent", json=body, headers=KEY)
    assert resp.status_code == status
    assert resp.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_keys_and_unknown_batches(mock: Mock) -> None:
    assert httpx.get(f"{mock.url}/v1beta/batches/nope").status_code == 403
    missing = httpx.get(f"{mock.url}/v1beta/batches/nope", headers=KEY)
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    # the style's own routes still answer beside batch mode
    plain = httpx.post(
        f"{mock.url}/v1beta/models/{MODEL}:generateContent", json=request("x")["request"], headers=KEY
    )
    assert plain.status_code == 200
