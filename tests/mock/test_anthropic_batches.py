"""The anthropic-style mock's Message Batches API, driven by the official ``anthropic`` SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from conftest import Mock, start_mock

MODEL = "claude-test"


@pytest.fixture(scope="module")
def mock(logs: Path) -> Iterator[Mock]:
    m = start_mock("anthropic", logs, "--seed", "5")
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def _reset(mock: Mock) -> Iterator[None]:
    mock.configure(batch_polls=2, batch_fail_rate=0.0, batch_fail_ids=[], batch_expire=False)
    yield
    mock.reset()


@pytest.fixture
def client(mock: Mock) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mock.url, api_key="k", max_retries=0, timeout=10)


def request(custom_id: str, text: str = "hello", **params: Any) -> Any:
    body = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": text}], **params}
    return {"custom_id": custom_id, "params": body}


def results(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    return {r.custom_id: r.result for r in client.messages.batches.results(batch_id)}


def test_batch_runs_to_ended_and_its_results_parse(client: anthropic.Anthropic, mock: Mock) -> None:
    mock.configure(batch_polls=2)
    batch = client.messages.batches.create(requests=[request(f"r{i}", f"question {i}") for i in range(5)])
    assert batch.id.startswith("msgbatch_") and batch.type == "message_batch"
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 5
    polled = client.messages.batches.retrieve(batch.id)
    assert polled.processing_status == "in_progress"
    # counts stay "processing" until the whole batch has ended, as the API documents
    assert (polled.request_counts.processing, polled.request_counts.succeeded) == (5, 0)
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert ended.results_url == f"{mock.url}/v1/messages/batches/{batch.id}/results"
    assert ended.request_counts.succeeded == 5 and ended.request_counts.processing == 0
    found = results(client, batch.id)
    assert set(found) == {f"r{i}" for i in range(5)}
    first = found["r0"]
    assert first.type == "succeeded"
    assert first.message.type == "message" and first.message.model == MODEL
    assert first.message.usage.output_tokens > 0
    order = [r.custom_id for r in client.messages.batches.results(batch.id)]
    assert order != [f"r{i}" for i in range(5)]  # any order: match by custom_id


def test_refused_and_failed_requests_are_errored_results(client: anthropic.Anthropic, mock: Mock) -> None:
    mock.configure(batch_polls=0, batch_fail_ids=["boom"])
    batch = client.messages.batches.create(
        requests=[
            request("ok"),
            request("boom"),
            request("hot", temperature=3),
            request("streamed", stream=True),
            request("lost", model="no-such-model"),
        ]
    )
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert (ended.request_counts.succeeded, ended.request_counts.errored) == (1, 4)
    found = results(client, batch.id)
    assert found["ok"].type == "succeeded"
    kinds = {cid: r.error.error.type for cid, r in found.items() if r.type == "errored"}
    assert kinds == {
        "boom": "api_error",
        "hot": "invalid_request_error",
        "streamed": "invalid_request_error",
        "lost": "not_found_error",
    }
    assert found["boom"].error.type == "error"


def test_cancel_goes_through_canceling(client: anthropic.Anthropic, mock: Mock) -> None:
    mock.configure(batch_polls=4)
    batch = client.messages.batches.create(requests=[request(f"r{i}") for i in range(8)])
    client.messages.batches.retrieve(batch.id)  # a quarter done
    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert (ended.request_counts.succeeded, ended.request_counts.canceled) == (2, 6)
    kinds = [r.type for r in results(client, batch.id).values()]
    assert sorted(kinds) == ["canceled"] * 6 + ["succeeded"] * 2


def test_expired_batch(client: anthropic.Anthropic, mock: Mock) -> None:
    mock.configure(batch_polls=1, batch_expire=True)
    batch = client.messages.batches.create(requests=[request(f"r{i}") for i in range(4)])
    client.messages.batches.retrieve(batch.id)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.expired > 0
    assert "expired" in {r.type for r in results(client, batch.id).values()}


def test_complete_control_and_results_before_the_end(client: anthropic.Anthropic, mock: Mock) -> None:
    mock.configure(batch_polls=1000)
    batch = client.messages.batches.create(requests=[request("a")])
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        client.messages.batches.results(batch.id)
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    early = httpx.get(f"{mock.url}/v1/messages/batches/{batch.id}/results", headers=headers)
    assert early.status_code == 400
    assert httpx.post(f"{mock.url}/_mock/batches/complete").json()["ended"] >= 1
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
    assert results(client, batch.id)["a"].type == "succeeded"


@pytest.mark.parametrize(
    ("requests", "words"),
    [
        ([], "at least 1"),
        ([request("a b")], "pattern"),
        ([request("x" * 65)], "pattern"),
        ([request("a"), request("a")], "Duplicate custom_id"),
        ([{"custom_id": "a"}], "params"),
    ],
)
def test_the_request_list_is_checked_at_once(client: anthropic.Anthropic, requests: Any, words: str) -> None:
    with pytest.raises(anthropic.BadRequestError, match=words):
        client.messages.batches.create(requests=requests)


def test_unknown_batch_is_404(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_nope")
