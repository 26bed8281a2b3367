"""Native provider batches through ``native_batches``: submit, poll, collect and cancel against the
openai- and anthropic-style mocks (which advance a batch one step per retrieval)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Mock, start_mock
from hedge.batch.native import BatchNotEnded, NativeBatches, NativeLine, NativeProgress, native_batches
from hedge.config import ProviderConfig
from hedge.errors import InvalidRequest, UpstreamError
from hedge.transport import Transport

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-test", "gemini": "gemini-2.5-flash"}
NOWHERE = {"openai": "batch_nope", "anthropic": "msgbatch_nope", "gemini": "batches/nope"}


@pytest.fixture(scope="module")
def mocks(logs: Path) -> Iterator[dict[str, Mock]]:
    started = {style: start_mock(style, logs, "--seed", "9") for style in MODELS}
    yield started
    for m in started.values():
        m.stop()


@pytest.fixture(params=sorted(MODELS))
def style(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def mock(mocks: dict[str, Mock], style: str) -> Iterator[Mock]:
    m = mocks[style]
    m.configure(batch_polls=2, batch_fail_rate=0.0, batch_fail_ids=[], batch_expire=False, api_key="sk-up")
    yield m
    m.reset()
    m.configure(api_key=None)


def config(mock: Mock, **extra: Any) -> ProviderConfig:
    base = f"{mock.url}/v1" if mock.style == "openai" else mock.url
    return ProviderConfig(style=mock.style, base_url=base, api_key="sk-up", batch=True, **extra)  # type: ignore[arg-type]


@pytest.fixture
async def native(mock: Mock) -> AsyncIterator[NativeBatches]:
    cfg = config(mock)
    transport = Transport({"up": cfg})
    batches = native_batches(transport, "up", cfg)
    assert batches is not None
    yield batches
    await transport.close()


def lines(style: str, count: int, **extra: Any) -> list[NativeLine]:
    return [
        NativeLine(
            f"line-{i}",
            {"model": MODELS[style], "messages": [{"role": "user", "content": f"question {i}"}], **extra},
        )
        for i in range(count)
    ]


async def poll_to_end(native: NativeBatches, upstream_id: str) -> list[NativeProgress]:
    seen = [await native.poll(upstream_id)]
    while seen[-1].status == "running":
        seen.append(await native.poll(upstream_id))
        assert len(seen) < 20
    return seen


async def test_a_slow_batch_is_polled_to_its_end_and_collected(
    native: NativeBatches, mock: Mock, style: str
) -> None:
    mock.configure(batch_polls=4)
    upstream_id = await native.submit(lines(style, 8))
    with pytest.raises(BatchNotEnded):
        await native.results(upstream_id)  # one retrieval: still running
    seen = await poll_to_end(native, upstream_id)
    assert [p.status for p in seen].count("running") >= 2
    assert seen[-1].status == "ended" and seen[-1].total == 8
    assert (seen[-1].completed, seen[-1].failed) == (8, 0)
    if style != "anthropic":  # these counts move while it runs; Anthropic's only at the end
        assert 0 < seen[0].completed < 8
    results = {r.custom_id: r for r in await native.results(upstream_id)}
    assert set(results) == {f"line-{i}" for i in range(8)}
    answer = results["line-3"]
    assert answer.status == 200 and not answer.retryable
    assert answer.body["object"] == "chat.completion"
    assert answer.body["choices"][0]["message"]["role"] == "assistant"
    assert answer.usage is not None and answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    assert answer.body["usage"]["prompt_tokens"] == answer.usage.prompt_tokens


async def test_lines_reach_the_upstream_translated(native: NativeBatches, mock: Mock, style: str) -> None:
    mock.configure(batch_polls=0)
    body = {
        "model": MODELS[style],
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "max_tokens": 7,
        "stop": "END",
    }
    upstream_id = await native.submit([NativeLine("only", body)])
    sent = mock.stats()["last_body"]
    if style == "anthropic":  # the Messages request the chat adapter builds, inside the envelope
        params = sent["requests"][0]["params"]
        assert params["system"] == "be brief" and params["max_tokens"] == 7
        assert params["stop_sequences"] == ["END"]
        assert params["messages"] == [{"role": "user", "content": "hi"}]
    elif style == "gemini":  # the generateContent request the chat adapter builds, inlined
        [item] = sent["batch"]["inputConfig"]["requests"]["requests"]
        assert item["metadata"] == {"key": "only"}
        request = item["request"]
        assert request["systemInstruction"]["parts"] == [{"text": "be brief"}]
        assert request["generationConfig"]["maxOutputTokens"] == 7
        assert request["generationConfig"]["stopSequences"] == ["END"]
    else:  # a JSON body the mock parsed: the batch create call (the file was multipart)
        assert sent["endpoint"] == "/v1/chat/completions" and sent["completion_window"] == "24h"
    assert (await poll_to_end(native, upstream_id))[-1].status == "ended"
    [result] = await native.results(upstream_id)
    assert result.custom_id == "only" and result.status == 200


async def test_partial_failures_are_mapped_by_custom_id(
    native: NativeBatches, mock: Mock, style: str
) -> None:
    mock.configure(batch_polls=1, batch_fail_ids=["line-1", "line-4"])
    batch = lines(style, 6)
    refused = NativeLine("line-5", {**batch[5].body, "max_tokens": 0})  # both APIs refuse it
    upstream_id = await native.submit([*batch[:5], refused])
    final = (await poll_to_end(native, upstream_id))[-1]
    assert (final.status, final.completed, final.failed, final.total) == ("ended", 3, 3, 6)
    results = {r.custom_id: r for r in await native.results(upstream_id)}
    assert {cid for cid, r in results.items() if r.status == 200} == {"line-0", "line-2", "line-3"}
    for cid in ("line-1", "line-4"):  # a server error: the provider's trouble, worth another try
        assert results[cid].status == 502 and results[cid].retryable
        assert results[cid].usage is None
        assert "error" in results[cid].body
    bad = results["line-5"]  # the request's own fault: passed on, never retried
    assert bad.status == 400 and not bad.retryable
    assert bad.body["error"]["type"] == "invalid_request_error"


async def test_cancel_keeps_what_ran(native: NativeBatches, mock: Mock, style: str) -> None:
    mock.configure(batch_polls=4)
    upstream_id = await native.submit(lines(style, 8))
    assert (await native.poll(upstream_id)).status == "running"  # a quarter done
    await native.cancel(upstream_id)
    final = (await poll_to_end(native, upstream_id))[-1]
    assert final.status == "cancelled"
    results = {r.custom_id: r for r in await native.results(upstream_id)}
    ran = [r for r in results.values() if r.status == 200]
    skipped = [r for r in results.values() if r.status is None]
    if style == "gemini":  # Gemini lists only the requests that ran
        assert (len(ran), len(results)) == (2, 2)
        return
    assert (len(ran), len(skipped)) == (2, 6)
    assert all(r.retryable and r.body["error"]["code"] == "batch_cancelled" for r in skipped)


async def test_an_expired_batch_says_which_lines_never_ran(
    native: NativeBatches, mock: Mock, style: str
) -> None:
    mock.configure(batch_polls=2, batch_expire=True)
    upstream_id = await native.submit(lines(style, 4))
    assert (await poll_to_end(native, upstream_id))[-1].status == "expired"
    results = await native.results(upstream_id)
    if style == "gemini":  # only the requests that ran are listed
        assert len(results) < 4 and all(r.status == 200 for r in results)
        return
    assert len(results) == 4
    expired = [r for r in results if r.status is None]
    assert expired and all(r.body["error"]["code"] == "batch_expired" for r in expired)


async def test_a_line_the_adapter_refuses_stops_the_submission(
    native: NativeBatches, mock: Mock, style: str
) -> None:
    before = mock.stats()["requests"]
    if style == "anthropic":  # the OpenAI adapter passes bodies through; the upstream judges them
        empty = NativeLine("bad-line", {"model": MODELS[style], "messages": []})
        with pytest.raises(InvalidRequest, match="bad-line"):
            await native.submit([*lines(style, 2), empty])
    with pytest.raises(InvalidRequest, match="must match"):
        await native.submit([NativeLine("not ok", lines(style, 1)[0].body)])
    with pytest.raises(InvalidRequest, match="twice"):
        await native.submit([*lines(style, 1), *lines(style, 1)])
    assert mock.stats()["requests"] == before


async def test_upstream_errors_are_the_adapters(mock: Mock) -> None:
    cfg = config(mock)
    wrong = ProviderConfig(**{**cfg.model_dump(), "api_key": "sk-wrong"})
    transport = Transport({"up": wrong})
    native = native_batches(transport, "up", wrong)
    assert native is not None
    try:
        with pytest.raises(UpstreamError) as caught:
            await native.poll(NOWHERE[mock.style])
        if mock.style != "gemini":  # Google answers a wrong key with a 400
            assert caught.value.code == "upstream_auth_error"
        assert "sk-wrong" not in str(caught.value)
    finally:
        await transport.close()


async def test_unknown_batch_is_an_upstream_error(native: NativeBatches, style: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        await native.poll(NOWHERE[style])
    assert caught.value.upstream_status == 404


def test_only_declared_batch_providers_get_one() -> None:
    transport = Transport({})
    plain = ProviderConfig(style="openai", base_url="http://127.0.0.1:1/v1")
    assert native_batches(transport, "p", plain) is None
    for style in MODELS:
        declared = ProviderConfig(style=style, base_url="http://127.0.0.1:1", batch=True)  # type: ignore[arg-type]
        assert native_batches(transport, style, declared) is not None


async def test_a_results_url_elsewhere_is_not_sent_the_key(mocks: dict[str, Mock]) -> None:
    mock = mocks["anthropic"]
    mock.configure(batch_polls=0, api_key="sk-up")
    # The mock builds results_url from the Host it was sent: another host than base_url names.
    cfg = config(mock, headers={"host": "results.elsewhere.example"})
    transport = Transport({"up": cfg})
    native = native_batches(transport, "up", cfg)
    assert native is not None
    try:
        upstream_id = await native.submit(lines("anthropic", 2))
        assert (await native.poll(upstream_id)).status == "ended"
        results = await native.results(upstream_id)
        assert {r.custom_id for r in results} == {"line-0", "line-1"}
        assert mock.stats()["last_headers"]["host"] == "results.elsewhere.example"
    finally:
        await transport.close()
        mock.reset()
        mock.configure(api_key=None)


async def test_a_gemini_batch_takes_one_model(mocks: dict[str, Mock]) -> None:
    cfg = config(mocks["gemini"])
    transport = Transport({"up": cfg})
    native = native_batches(transport, "up", cfg)
    assert native is not None
    try:
        other = NativeLine("other", {**lines("gemini", 1)[0].body, "model": "gemini-2.5-pro"})
        with pytest.raises(InvalidRequest, match="one model"):
            await native.submit([*lines("gemini", 1), other])
        with pytest.raises(InvalidRequest, match="batch name"):
            await native.poll("operations/123")
    finally:
        await transport.close()
