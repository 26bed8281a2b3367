"""The gateway pipeline without HTTP: what a batch worker or a replay job sees.

``Exchange.serve`` returns result objects; the record is final and reaches the sinks exactly
once: when a whole answer returns, and for a stream only when the stream is closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from conftest import Mock
from hedge.config import parse_config
from hedge.errors import HedgeError
from hedge.gateway.pipeline import Completion, Exchange
from hedge.gateway.runtime import Runtime, open_runtime
from hedge.gateway.stream import Stream
from hedge.record import Outcome, RequestRecord, RouteStep, render_route
from hedge.wire.sse import DONE

BODY = {"model": "chat", "messages": [{"role": "user", "content": "Say hello."}]}


@pytest.fixture
async def runtime(cheap: Mock, premium: Mock, tmp_path: Path) -> AsyncIterator[Runtime]:
    config = parse_config(
        {
            "server": {"master_key": "sk-master-exchange"},
            "providers": {
                "a": {"style": "openai", "base_url": f"{cheap.url}/v1", "api_key": "sk-a"},
                "b": {"style": "openai", "base_url": f"{premium.url}/v1", "api_key": "sk-b"},
            },
            "models": {
                "chat": {
                    "strategy": "ordered",
                    "deployments": [
                        {"provider": "a", "model": "m1", "price": {"input": 1.0, "output": 2.0}},
                        {"provider": "b", "model": "m2", "price": {"input": 3.0, "output": 6.0}},
                    ],
                }
            },
            "resilience": {"breaker": {"failures": 1_000_000}},
            "state": {"dir": str(tmp_path)},
        },
        "<test>",
    )
    rt = await open_runtime(config)
    try:
        yield rt
    finally:
        await rt.close()


def _records(rt: Runtime) -> list[RequestRecord]:
    seen: list[RequestRecord] = []
    rt.sinks.append(seen.append)
    return seen


async def test_a_whole_answer_is_a_completion_recorded_once(runtime: Runtime) -> None:
    seen = _records(runtime)
    result = await Exchange(runtime, "chat", "req_whole", {}).serve(dict(BODY), None)
    assert isinstance(result, Completion)
    assert orjson.loads(result.body)["choices"][0]["message"]["content"]
    assert (result.provider, result.model) == ("a", "m1")
    assert [r.request_id for r in seen] == ["req_whole"]
    rec = seen[0]
    assert rec.status == 200 and rec.prompt_tokens > 0 and rec.completion_tokens > 0
    assert rec.cost_usd == pytest.approx(result.cost_usd) and rec.cost_usd > 0
    assert rec.route == [RouteStep("a/m1", Outcome.OK)]


async def test_a_failed_attempt_is_a_typed_step_and_failover_serves(runtime: Runtime, cheap: Mock) -> None:
    cheap.configure(fail_rate=1.0, fail_status=503)
    seen = _records(runtime)
    result = await Exchange(runtime, "chat", "req_failover", {}).serve(dict(BODY), None)
    assert isinstance(result, Completion) and result.provider == "b"
    (rec,) = seen
    assert [s.outcome for s in rec.route] == [Outcome.FAILED, Outcome.OK]
    assert rec.route[0].target == "a/m1" and rec.route[0].failed
    assert render_route(rec.route).endswith("b/m2=ok")
    assert rec.attempts == 2


async def test_an_error_is_raised_and_recorded_once(runtime: Runtime) -> None:
    seen = _records(runtime)
    with pytest.raises(HedgeError) as caught:
        await Exchange(runtime, "chat", "req_unknown", {}).serve({**BODY, "model": "no-such-alias"}, None)
    assert caught.value.status == 404
    assert [(r.request_id, r.status) for r in seen] == [("req_unknown", 404)]


async def _drain(stream: Stream) -> bytes:
    parts: list[bytes] = []
    async for events in stream:
        parts += events
    return b"".join(parts + stream.tail())


async def test_a_stream_books_and_records_itself_when_closed(runtime: Runtime) -> None:
    seen = _records(runtime)
    body: dict[str, Any] = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    stream = await Exchange(runtime, "chat", "req_stream", {}).serve(body, None)
    assert isinstance(stream, Stream)
    sse = await _drain(stream)
    assert sse.endswith(DONE)
    usage = orjson.loads(sse.split(b"data: ")[-2])["usage"]
    assert usage["hedge_cost_usd"] > 0
    assert seen == [], "a stream is recorded when it is closed, not before"
    await stream.close()
    await stream.close()  # closing twice still records once
    (rec,) = seen
    assert rec.stream and rec.status == 200 and rec.ttft_ms is not None
    assert rec.completion_tokens == usage["completion_tokens"]
    assert rec.cost_usd == pytest.approx(usage["hedge_cost_usd"])


async def test_a_stream_left_early_is_a_499_and_still_booked(runtime: Runtime) -> None:
    seen = _records(runtime)
    body = {**BODY, "stream": True, "max_tokens": 200}
    stream = await Exchange(runtime, "chat", "req_left", {}).serve(body, None)
    assert isinstance(stream, Stream)
    async for _first in stream:
        break  # the client read its first token and left
    await stream.close(client_gone=True)
    (rec,) = seen
    assert rec.status == 499
    assert rec.prompt_tokens > 0, "the provider bills the prompt: it is booked (or estimated), not dropped"
    assert rec.cost_usd > 0
