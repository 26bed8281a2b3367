"""``GET /metrics``: exact counts for known traffic, multi-worker aggregation, and ``hedge top``.

Known traffic goes through a real gateway (5 plain requests, 3 streams with
usage, one request that fails over, one whose only upstream fails, one unknown
model), then one scrape is parsed and every number is checked against what
the client saw: statuses, the usage returned, the ``x-hedge-cost-usd`` headers.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import MASTER_KEY, Gateway, Mock, start_gateway, start_mock
from hedge.cli.net import free_port
from hedge.cli.top import parse, quantile
from hedge.observe.metrics import LabelCap, Metrics, error_kind
from hedge.record import Outcome, RequestRecord, RouteStep

Samples = list[tuple[str, dict[str, str], float]]

CHAT_PRICE = {"input": 0.5, "output": 1.5}
BASELINE_PRICE = {"input": 5.0, "output": 15.0}

LATENCY_SUM = "hedge_request_duration_seconds_sum"  # a histogram of the request latencies
LATENCY_COUNT = "hedge_request_duration_seconds_count"


def scrape(url: str) -> Samples:
    resp = httpx.get(f"{url}/metrics", timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return [
        (s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    ]


def by(samples: Samples, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """Sum the samples called ``name`` grouped by ``labels``."""
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for sample_name, sample_labels, value in samples:
        if sample_name == name:
            out[tuple(sample_labels[label] for label in labels)] += value
    return dict(out)


def total(samples: Samples, name: str, **match: str) -> float:
    return sum(
        v for n, labels, v in samples if n == name and all(labels.get(k) == want for k, want in match.items())
    )


def metrics_config(good: Mock, flaky: Mock) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "good": {"style": "openai", "base_url": f"{good.url}/v1", "api_key": "sk-good-provider-0001"},
            "flaky": {"style": "openai", "base_url": f"{flaky.url}/v1", "api_key": "sk-flaky-provider-0002"},
        },
        "models": {
            "chat": {
                "baseline": "premium",
                "deployments": [{"provider": "good", "model": "small", "price": CHAT_PRICE}],
            },
            "premium": {"deployments": [{"provider": "good", "model": "big", "price": BASELINE_PRICE}]},
            "failover": {
                "strategy": "ordered",
                "deployments": [
                    {"provider": "flaky", "model": "m1", "price": CHAT_PRICE},
                    {"provider": "good", "model": "small", "price": CHAT_PRICE},
                ],
            },
            "down": {"max_attempts": 1, "deployments": [{"provider": "flaky", "model": "m2"}]},
        },
        # One failure opens a breaker, and it stays open for the whole module.
        "resilience": {"breaker": {"failures": 1, "cooldown_s": 3600}},
    }


@dataclass
class Seen:
    """What the client was told."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    baseline: float = 0.0
    by_alias_tokens: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class Traffic:
    gateway: Gateway
    good: Mock
    seen: Seen
    samples: Samples


@pytest.fixture(scope="module")
def traffic(logs: Path) -> Iterator[Traffic]:
    good = start_mock("openai", logs, "--seed", "11")
    flaky = start_mock("openai", logs, "--seed", "12")
    flaky.configure(fail_rate=1.0, fail_status=500)
    gw = start_gateway(metrics_config(good, flaky), logs)
    try:
        client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
        seen = Seen()

        def book(alias: str, prompt: int, completion: int, cost: float) -> None:
            seen.prompt_tokens += prompt
            seen.completion_tokens += completion
            seen.cost += cost
            seen.by_alias_tokens[alias] += prompt + completion
            if alias == "chat":
                seen.baseline += (
                    prompt * BASELINE_PRICE["input"] + completion * BASELINE_PRICE["output"]
                ) / 1e6
            else:
                seen.baseline += cost

        for i in range(5):
            raw = client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": f"plain request number {i}"}]
            )
            usage = raw.parse().usage
            assert usage is not None
            book("chat", usage.prompt_tokens, usage.completion_tokens, float(raw.headers["x-hedge-cost-usd"]))
        for i in range(3):
            stream = client.chat.completions.create(
                model="chat",
                messages=[{"role": "user", "content": f"streamed request {i} with a few more words"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            final = [chunk.usage for chunk in stream if chunk.usage is not None]
            assert len(final) == 1
            extra = final[0].model_dump()
            book("chat", final[0].prompt_tokens, final[0].completion_tokens, float(extra["hedge_cost_usd"]))
        raw = client.chat.completions.with_raw_response.create(
            model="failover", messages=[{"role": "user", "content": "first choice is down"}]
        )
        assert raw.headers["x-hedge-provider"] == "good"
        usage = raw.parse().usage
        assert usage is not None
        book("failover", usage.prompt_tokens, usage.completion_tokens, float(raw.headers["x-hedge-cost-usd"]))
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(model="down", messages=[{"role": "user", "content": "x"}])
        assert failed.value.status_code == 502
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])

        yield Traffic(gw, good, seen, scrape(gw.url))
    finally:
        gw.stop()
        good.stop()
        flaky.stop()


def test_requests_counted_by_alias_and_status(traffic: Traffic) -> None:
    requests = by(traffic.samples, "hedge_requests_total", "alias", "provider", "status", "status_class")
    assert requests == {
        ("chat", "good", "200", "2xx"): 8,
        ("failover", "good", "200", "2xx"): 1,
        ("down", "flaky", "502", "5xx"): 1,
        ("none", "none", "404", "4xx"): 1,
    }
    assert by(traffic.samples, "hedge_requests_total", "deployment")[("good/small",)] == 9
    assert by(traffic.samples, "hedge_requests_total", "team") == {("none",): 11}


def test_errors_by_status_and_kind(traffic: Traffic) -> None:
    errors = by(traffic.samples, "hedge_request_errors_total", "alias", "status", "kind")
    assert errors == {("down", "502", "upstream_error"): 1, ("none", "404", "not_found"): 1}


def test_tokens_equal_the_usage_returned(traffic: Traffic) -> None:
    seen = traffic.seen
    assert seen.prompt_tokens > 0 and seen.completion_tokens > 0
    assert total(traffic.samples, "hedge_input_tokens_total") == seen.prompt_tokens
    assert total(traffic.samples, "hedge_output_tokens_total") == seen.completion_tokens
    for alias, tokens in seen.by_alias_tokens.items():
        counted = total(traffic.samples, "hedge_input_tokens_total", alias=alias) + total(
            traffic.samples, "hedge_output_tokens_total", alias=alias
        )
        assert counted == tokens, alias
    assert total(traffic.samples, "hedge_cached_input_tokens_total") == 0


def test_cost_equals_the_cost_reported_to_clients(traffic: Traffic) -> None:
    seen = traffic.seen
    assert seen.cost > 0
    assert total(traffic.samples, "hedge_cost_usd_total") == pytest.approx(seen.cost, rel=1e-6)
    baseline = total(traffic.samples, "hedge_baseline_cost_usd_total")
    assert baseline == pytest.approx(seen.baseline, rel=1e-6)
    assert baseline > seen.cost  # the chat alias is cheaper than its baseline: savings show


def test_latency_and_ttft_histograms(traffic: Traffic) -> None:
    samples = traffic.samples
    counts = by(samples, "hedge_request_duration_seconds_count", "alias", "result")
    assert counts == {("chat", "ok"): 8, ("failover", "ok"): 1, ("down", "error"): 1, ("none", "error"): 1}
    inf = by(samples, "hedge_request_duration_seconds_bucket", "alias", "result", "le")
    for (alias, result), count in counts.items():
        assert inf[(alias, result, "+Inf")] == count
    assert by(samples, "hedge_time_to_first_token_seconds_count", "alias", "provider") == {
        ("chat", "good"): 3
    }
    assert total(samples, "hedge_time_to_first_token_seconds_sum") > 0
    assert total(samples, LATENCY_SUM, alias="chat") > 0


def test_attempts_retries_and_failovers(traffic: Traffic) -> None:
    samples = traffic.samples
    attempts = by(samples, "hedge_upstream_attempts_total", "alias", "deployment", "outcome")
    assert attempts == {
        ("chat", "good/small", "ok"): 8,
        ("failover", "flaky/m1", "upstream_error"): 1,
        ("failover", "good/small", "ok"): 1,
        ("down", "flaky/m2", "upstream_error"): 1,
    }
    assert by(samples, "hedge_retries_total", "alias") == {("failover",): 1}
    assert by(samples, "hedge_failovers_total", "alias", "provider") == {("failover", "good"): 1}
    assert total(samples, "hedge_deployment_skips_total") == 0
    assert total(samples, "hedge_cache_hits_total") == 0


def test_breaker_gauge(traffic: Traffic) -> None:
    states = by(traffic.samples, "hedge_breaker_state", "provider", "deployment")
    assert states == {
        ("flaky", "flaky/m1"): 2,
        ("flaky", "flaky/m2"): 2,
        ("good", "good/small"): 0,
        ("good", "good/big"): 0,
    }


def test_metrics_needs_no_key_and_counts_no_scrapes(traffic: Traffic) -> None:
    before = scrape(traffic.gateway.url)
    again = scrape(traffic.gateway.url)
    assert total(again, "hedge_requests_total") == total(before, "hedge_requests_total") == 11


@contextlib.contextmanager
def slow_stream(traffic: Traffic, latency_ms: int) -> Iterator[openai.Stream[Any]]:
    """A stream of alias ``chat`` from an upstream slowed to ``latency_ms`` (reset afterwards)."""
    client = openai.OpenAI(base_url=traffic.gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=30)
    traffic.good.configure(latency_ms=latency_ms)
    try:
        yield client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "a slow stream of several words"}],
            stream=True,
        )
    finally:
        traffic.good.configure(latency_ms=0)


def test_in_flight_gauge_follows_a_stream(traffic: Traffic) -> None:
    with slow_stream(traffic, 1500) as stream:
        chunks = iter(stream)
        next(chunks)  # the request is under way
        during = by(scrape(traffic.gateway.url), "hedge_requests_in_flight", "alias")
        for _ in chunks:
            pass
        after = by(scrape(traffic.gateway.url), "hedge_requests_in_flight", "alias")
    assert during.get(("chat",)) == 1
    assert after.get(("chat",)) == 0


def test_a_client_leaving_a_stream_is_booked_as_gone(traffic: Traffic) -> None:
    """The client closes a slow stream after its first chunk: the gateway stops pumping, books the
    request as 499 and it leaves the in-flight gauge, long before the upstream would have ended."""
    url = traffic.gateway.url
    gone_before = total(scrape(url), "hedge_requests_total", alias="chat", status="499")
    with slow_stream(traffic, 20_000) as stream:
        next(iter(stream))
        stream.close()  # the client leaves
        deadline = time.monotonic() + 10
        while True:
            samples = scrape(url)
            gone = total(samples, "hedge_requests_total", alias="chat", status="499")
            in_flight = by(samples, "hedge_requests_in_flight", "alias").get(("chat",))
            if gone == gone_before + 1 and in_flight == 0:
                break
            assert time.monotonic() < deadline, (gone, in_flight)
            time.sleep(0.05)


def run_top(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "hedge", "top", "--url", url, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_hedge_top_shows_aliases_and_breakers(traffic: Traffic) -> None:
    proc = run_top(traffic.gateway.url, "--interval", "0.1", "--iterations", "1")
    assert proc.returncode == 0, proc.stderr
    for text in ("chat", "failover", "down", "flaky/m1", "open", "good/small", "closed"):
        assert text in proc.stdout, text


def test_hedge_top_fails_when_it_cannot_scrape() -> None:
    proc = run_top(f"http://127.0.0.1:{free_port()}", "--interval", "0.05", "--iterations", "1")
    assert proc.returncode == 1
    assert "failed" in proc.stdout


def test_multiple_workers_share_counters(logs: Path, tmp_path: Path) -> None:
    good = start_mock("openai", logs, "--seed", "13")
    config = metrics_config(good, good)
    gw = start_gateway(config, logs, "--workers", "2", env={"TMPDIR": str(tmp_path)})
    try:
        dirs = list(tmp_path.glob("hedge-metrics-*"))
        assert len(dirs) == 1, "serve --workers 2 makes a fresh PROMETHEUS_MULTIPROC_DIR"
        shared = dirs[0]
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"authorization": f"Bearer {MASTER_KEY}"}
        sent = 0
        pids: set[str] = set()
        # New connection per request, until both workers have served (and counted) some.
        while len(pids) < 2 and sent < 500:
            resp = httpx.post(f"{gw.base_url}/chat/completions", json=body, headers=headers, timeout=20)
            assert resp.status_code == 200, resp.text
            sent += 1
            pids = {p.stem.rpartition("_")[2] for p in shared.glob("counter_*.db")}
        assert len(pids) == 2, f"one worker served all {sent} requests"
        for _ in range(4):  # whichever worker answers the scrape reports the sum
            samples = scrape(gw.url)
            assert by(samples, "hedge_requests_total", "alias", "status") == {("chat", "200"): sent}
            assert total(samples, LATENCY_COUNT) == sent
            assert ("good", "good/small") in by(samples, "hedge_breaker_state", "provider", "deployment")
    finally:
        gw.stop()
        good.stop()
    assert not shared.exists(), "the directory Hedge made is removed when it stops"


# -- in-process units ------------------------------------------------------------------------------


def _record(**fields: Any) -> RequestRecord:
    rec = RequestRecord("req_1", "chat", alias="chat")
    for name, value in fields.items():
        setattr(rec, name, value)
    return rec


def _samples(metrics: Metrics) -> Samples:
    return [
        (s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    ]


def test_label_cap_folds_overflow_into_other() -> None:
    cap = LabelCap(2, seed=["configured"])
    assert [cap(v) for v in ("configured", "a", "b", "c", "a", "configured")] == [
        "configured",
        "a",
        "b",
        "other",
        "a",
        "configured",
    ]


def test_unbounded_upstream_codes_are_capped() -> None:
    metrics = Metrics(aliases=["chat"], providers=["p"], deployments=["p/m"], max_label_values=3)
    for i in range(10):
        metrics.observe(
            _record(
                route=[RouteStep("p/m", Outcome.FAILED, f"weird_code_{i}")],
                status=502,
                provider="p",
                model="m",
            )
        )
    outcomes = by(_samples(metrics), "hedge_upstream_attempts_total", "outcome")
    assert outcomes == {("weird_code_0",): 1, ("weird_code_1",): 1, ("weird_code_2",): 1, ("other",): 7}


def test_in_flight_callable() -> None:
    metrics = Metrics(aliases=["chat"])
    rec = _record()
    metrics.started(rec)
    metrics.started(rec)  # idempotent
    assert by(_samples(metrics), "hedge_requests_in_flight", "alias") == {("chat",): 1}
    metrics.observe(rec)
    assert by(_samples(metrics), "hedge_requests_in_flight", "alias") == {("chat",): 0}
    metrics.observe(_record(route=[]))  # never started: the gauge does not go negative
    assert by(_samples(metrics), "hedge_requests_in_flight", "alias") == {("chat",): 0}


def test_what_waits_for_a_scrape_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients choose aliases: without a scrape, the series waiting to be flushed must not grow
    with every new label set the series cache starts again for."""
    import hedge.observe.metrics as metrics_module

    monkeypatch.setattr(metrics_module, "MAX_SERIES_SETS", 8)
    metrics = Metrics(aliases=["chat"], max_label_values=4)
    for i in range(100):
        metrics.observe(_record(alias=f"made-up-{i}"))
        assert len(metrics._dirty) <= 8
    assert sum(by(_samples(metrics), "hedge_requests_total", "alias").values()) == 100


def _histogram(samples: Samples, name: str) -> dict[str, float]:
    """A histogram's buckets by ``le`` plus its ``_sum`` and ``_count``."""
    out: dict[str, float] = {}
    for sample_name, labels, value in samples:
        if sample_name == f"{name}_bucket":
            out[labels["le"]] = out.get(labels["le"], 0.0) + value
        elif sample_name in (f"{name}_sum", f"{name}_count"):
            part = sample_name.rpartition("_")[2]
            out[part] = out.get(part, 0.0) + value
    return out


def test_pending_observations_render_as_observe_would_have() -> None:
    """The request path only adds to plain numbers; a scrape must show exactly what calling
    prometheus-client once per request shows, bucket boundaries (``le``: value <= bound) included,
    across several scrapes."""
    from prometheus_client import CollectorRegistry, Histogram

    from hedge.observe.metrics import LATENCY_BUCKETS, TTFT_BUCKETS

    registry = CollectorRegistry()
    latency = Histogram("lat", "", buckets=LATENCY_BUCKETS, registry=registry)
    ttft = Histogram("ttft", "", buckets=TTFT_BUCKETS, registry=registry)
    metrics = Metrics(aliases=["chat"], providers=["p"], deployments=["p/m"])
    seconds = [0.0, 0.005, 0.0050001, 0.01, 0.3, 1.0, 2.5, 599.0, 600.0, 601.0, 10_000.0]
    for round_ in range(3):  # a scrape between rounds: what was flushed is not added twice
        for i, s in enumerate(seconds):
            rec = _record(provider="p", model="m", route=[RouteStep("p/m", Outcome.OK)], attempts=1)
            rec.request_id = f"req_{round_}_{i}"
            rec.latency_ms, rec.ttft_ms = s * 1000, s * 1000
            rec.prompt_tokens, rec.completion_tokens, rec.cost_usd = 3, 2, 0.25
            metrics.started(rec)
            metrics.observe(rec)
            latency.observe(s)
            ttft.observe(s)
        samples = _samples(metrics)
        expected = [(n, dict(labels), float(v)) for f in registry.collect() for n, labels, v, *_ in f.samples]
        assert _histogram(samples, "hedge_request_duration_seconds") == _histogram(expected, "lat")
        assert _histogram(samples, "hedge_time_to_first_token_seconds") == _histogram(expected, "ttft")
        done = (round_ + 1) * len(seconds)
        assert by(samples, "hedge_requests_total", "alias") == {("chat",): done}
        assert by(samples, "hedge_input_tokens_total", "alias") == {("chat",): 3 * done}
        assert by(samples, "hedge_cost_usd_total", "alias") == {("chat",): pytest.approx(0.25 * done)}
        assert by(samples, "hedge_upstream_attempts_total", "outcome") == {("ok",): done}
        assert by(samples, "hedge_requests_in_flight", "alias") == {("chat",): 0}


def test_error_kinds() -> None:
    assert error_kind(_record(status=499)) == "client_disconnected"
    assert error_kind(_record(status=404)) == "not_found"
    assert (
        error_kind(_record(status=502, route=[RouteStep("a/b", Outcome.FAILED, "upstream_timeout")]))
        == "upstream_timeout"
    )
    assert error_kind(_record(status=502, route=[RouteStep("a/b", Outcome.OK)])) == "stream_interrupted"
    assert (
        error_kind(_record(status=503, route=[RouteStep("a/b", Outcome.CIRCUIT_OPEN)]))
        == "no_deployment_available"
    )
    assert (
        error_kind(_record(status=400, route=[RouteStep("a/b", Outcome.FAILED, "400")])) == "invalid_request"
    )


def test_top_quantiles_from_buckets() -> None:
    buckets = {0.1: 0.0, 0.5: 50.0, 1.0: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.5)
    assert quantile(0.75, buckets) == pytest.approx(0.75)
    assert quantile(0.5, {float("inf"): 0.0}) is None
    assert quantile(0.99, {1.0: 1.0, float("inf"): 10.0}) == 1.0


def test_top_parses_a_scrape() -> None:
    metrics = Metrics(aliases=["chat"], providers=["p"], deployments=["p/m"])
    metrics.observe(
        _record(provider="p", model="m", prompt_tokens=3, completion_tokens=4, cost_usd=0.5, latency_ms=200)
    )
    metrics.observe(
        _record(
            provider="p", model="m", status=502, route=[RouteStep("p/m", Outcome.FAILED, "upstream_error")]
        )
    )
    snap = parse(metrics.render().decode())
    row = snap.rows[("chat", "p")]
    assert (row.requests, row.errors, row.input_tokens, row.output_tokens) == (2, 1, 3, 4)
    assert row.cost == 0.5 and row.baseline == 0.5
    assert quantile(0.5, row.latency) == pytest.approx(0.175)
    assert snap.breakers == {"p/m": 0}
