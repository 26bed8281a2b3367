"""The dashboard: ``/admin/dashboard/*`` against known traffic, the analytics SQL on SQLite and
PostgreSQL, the body log, and ``/ui`` in a real headless Chromium.

Known traffic goes through a real gateway (plain and streamed chat on a weighted alias, a virtual
key's requests, failovers, a cache hit, an upstream failure and an unknown model); every number
the dashboard API gives is checked against what the client saw: statuses, the usage returned and
the ``x-hedge-cost-usd`` headers (or, for streams, ``usage.hedge_cost_usd``).
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import MASTER_KEY, Gateway, Mock, start_gateway, start_mock
from hedge.access.keys import KeyStore
from hedge.api.app import create_app
from hedge.api.dashboard import baseline_info, read_conformance
from hedge.cli.net import free_port, serve_in_loop
from hedge.config import parse_config
from hedge.mock.server import create_mock_app
from hedge.mock.state import Knobs
from hedge.observe.logs import register_secrets
from hedge.record import Outcome, RequestRecord, RouteStep
from hedge.store.analytics import Analytics, RequestFilter, auto_bucket, percentile
from hedge.store.bodies import BODY_LIMIT, BodyLog, body_text
from hedge.store.conformance import ConformanceRecord, JsonlResultStore
from hedge.store.db import Database
from hedge.store.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"

CHEAP_PRICE = {"input": 0.5, "output": 1.5}
PREMIUM_PRICE = {"input": 2.5, "output": 10.0}
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
ENDPOINTS = ("summary", "timeseries", "latency", "breakers", "requests", "conformance")


# -- a gateway with known traffic --------------------------------------------------------------------


@dataclass
class Sent:
    """One request as the client saw it."""

    alias: str
    status: int
    request_id: str
    provider: str | None = None
    model: str | None = None
    cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stream: bool = False
    key: str = "master key"
    attempts: int = 0
    cache_hit: bool = False
    route: list[tuple[str, str]] = field(default_factory=list)
    """``x-hedge-route`` as (deployment, reason) pairs: ``ok``, a skip, or a failure's error code."""

    def attempts_on(self, deployment: str) -> tuple[int, int]:
        """(served, failed) attempts on ``deployment`` as the route header tells them."""
        skips = {o.value for o in Outcome if not o.attempted}
        mine = [reason for target, reason in self.route if target == deployment]
        served = sum(reason == "ok" for reason in mine)
        failed = sum(reason not in skips and reason not in ("ok", "cancelled") for reason in mine)
        return served, failed

    @property
    def baseline(self) -> float:
        """What the ledger books as the baseline: the premium price for alias ``chat``, else the cost."""
        if self.alias != "chat" or self.status >= 400:
            return self.cost
        return (
            self.prompt_tokens * PREMIUM_PRICE["input"] + self.completion_tokens * PREMIUM_PRICE["output"]
        ) / 1e6


@dataclass
class Traffic:
    gateway: Gateway
    state_dir: Path
    alice_key: str
    sent: list[Sent] = field(default_factory=list)

    def send(self, alias: str, content: str, key: str | None = None, stream: bool = False) -> Sent:
        body: dict[str, Any] = {"model": alias, "messages": [{"role": "user", "content": content}]}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        headers = {"authorization": f"Bearer {key or MASTER_KEY}"}
        url = f"{self.gateway.url}/v1/chat/completions"
        with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as resp:
            raw = resp.read()
            h = resp.headers
        sent = Sent(
            alias=alias,
            status=resp.status_code,
            request_id=h["x-hedge-request-id"],
            provider=h.get("x-hedge-provider"),
            model=h.get("x-hedge-model"),
            stream=stream,
            key="alice" if key else "master key",
            attempts=int(h.get("x-hedge-attempts", "0")),
            cache_hit=h.get("x-hedge-cache") == "hit",
            route=[
                (target, reason)
                for target, _, reason in (
                    step.rpartition("=") for step in h.get("x-hedge-route", "").split(", ")
                )
                if target
            ],
        )
        if resp.status_code == 200:
            if stream:
                usage = None
                for line in raw.decode().splitlines():
                    if line.startswith("data: {"):
                        chunk = json.loads(line[6:])
                        usage = chunk.get("usage") or usage
                assert usage is not None, raw
                sent.cost = float(usage["hedge_cost_usd"])
            else:
                usage = json.loads(raw)["usage"]
                sent.cost = float(h["x-hedge-cost-usd"])
            if not sent.cache_hit:  # a cache hit books no tokens
                sent.prompt_tokens = usage["prompt_tokens"]
                sent.completion_tokens = usage["completion_tokens"]
        self.sent.append(sent)
        return sent


def dashboard_config(good: Mock, flaky: Mock, state_dir: Path) -> dict[str, Any]:
    def dep(provider: str, model: str, price: dict[str, float], weight: float = 1) -> dict[str, Any]:
        return {"provider": provider, "model": model, "price": price, "weight": weight}

    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "cheap": {"style": "openai", "base_url": f"{good.url}/v1", "api_key": "sk-a"},
            "premium": {"style": "openai", "base_url": f"{good.url}/v1", "api_key": "sk-b"},
            "flaky": {"style": "openai", "base_url": f"{flaky.url}/v1", "api_key": "sk-c"},
        },
        "models": {
            "chat": {
                "strategy": "weighted",
                "baseline": "yardstick",
                "deployments": [
                    dep("cheap", "small", CHEAP_PRICE, 2),
                    dep("premium", "big", PREMIUM_PRICE, 1),
                ],
            },
            "yardstick": {"deployments": [dep("premium", "big", PREMIUM_PRICE)]},
            "failover": {
                "strategy": "ordered",
                "deployments": [dep("flaky", "m1", CHEAP_PRICE), dep("cheap", "small", CHEAP_PRICE)],
            },
            "broken": {"max_attempts": 1, "deployments": [dep("flaky", "m1", CHEAP_PRICE)]},
            "cached": {"cache_ttl_s": 600, "deployments": [dep("cheap", "small", CHEAP_PRICE)]},
        },
        "resilience": {"breaker": {"failures": 3, "cooldown_s": 600}, "backoff": {"base_ms": 1, "max_ms": 5}},
        "state": {"dir": str(state_dir), "flush_interval_s": 0.2},
    }


def _conformance_file(state_dir: Path) -> None:
    when = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    store = JsonlResultStore(state_dir / "conformance.jsonl")

    def rec(dep: str, case: str, status: str) -> ConformanceRecord:
        return ConformanceRecord(when, "0.1.0", dep, case, status, "", 12.0)

    store.append(
        [
            rec("cheap/small", "plain", "pass"),
            rec("cheap/small", "stream", "pass"),
            rec("premium/big", "plain", "pass"),
            rec("premium/big", "stream", "fail"),
            rec("elsewhere/unrouted", "plain", "pass"),  # not in this config: not shown
        ]
    )


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    logs = tmp_path_factory.mktemp("dashboard")
    state_dir = logs / "state"
    state_dir.mkdir()
    _conformance_file(state_dir)
    good = start_mock("openai", logs, "--seed", "1")
    flaky = start_mock("openai", logs, "--fail-rate", "1", "--fail-status", "503")
    gw = start_gateway(dashboard_config(good, flaky, state_dir), logs)
    try:
        created = httpx.post(f"{gw.url}/admin/keys", json={"name": "alice", "team": "research"}, headers=AUTH)
        assert created.status_code == 201, created.text
        t = Traffic(gw, state_dir, created.json()["key"])
        for i in range(4):
            assert t.send("chat", f"hello number {i} from the dashboard test").status == 200
        for i in range(2):
            assert t.send("chat", f"stream {i} please", stream=True).status == 200
        for i in range(2):
            assert t.send("chat", f"alice asks {i}", key=t.alice_key).status == 200
        for _ in range(2):
            assert t.send("failover", "first attempt fails").attempts == 2
        assert t.send("cached", "same question twice").status == 200
        assert t.send("cached", "same question twice").cache_hit
        broken = t.send("broken", "nothing can answer this")
        assert broken.status >= 500
        # An error response names no provider; the ledger has the one deployment it was sent to.
        broken.provider, broken.model = "flaky", "m1"
        assert t.send("no-such-model", "unknown alias").status == 404
        yield t
    finally:
        gw.stop()
        good.stop()
        flaky.stop()


@dataclass
class FailingOver:
    """A gateway without a baseline whose first deployment starts failing mid-run and fails over."""

    gateway: Gateway
    sent: list[Sent]
    flaky_served: int
    failed_over: int


@pytest.fixture(scope="module")
def failing_over(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FailingOver]:
    logs = tmp_path_factory.mktemp("failing-over")
    flaky = start_mock("openai", logs, "--seed", "3")
    steady = start_mock("openai", logs, "--seed", "4")
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "flaky": {"style": "openai", "base_url": f"{flaky.url}/v1", "api_key": "sk-f"},
            "steady": {"style": "openai", "base_url": f"{steady.url}/v1", "api_key": "sk-s"},
        },
        "models": {  # no alias has a baseline
            "chat": {
                "strategy": "ordered",
                "deployments": [
                    {"provider": "flaky", "model": "m1", "price": CHEAP_PRICE},
                    {"provider": "steady", "model": "m2", "price": PREMIUM_PRICE},
                ],
            }
        },
        # The breaker stays closed, so every request tries flaky/m1 first.
        "resilience": {"breaker": {"failures": 1000}, "backoff": {"base_ms": 1, "max_ms": 5}},
        "state": {"dir": str(logs / "state"), "flush_interval_s": 0.2},
    }
    gw = start_gateway(config, logs)
    try:
        t = Traffic(gw, logs, "")
        for i in range(3):
            assert t.send("chat", f"flaky still answers {i}").provider == "flaky"
        flaky.configure(fail_first=4, fail_status=503)
        for i in range(4):
            sent = t.send("chat", f"flaky fails, steady answers {i}")
            assert (sent.status, sent.provider, sent.attempts) == (200, "steady", 2), sent
        yield FailingOver(gw, t.sent, flaky_served=3, failed_over=4)
    finally:
        gw.stop()
        flaky.stop()
        steady.stop()


def get(t: Traffic | FailingOver, path: str, **params: Any) -> Any:
    resp = httpx.get(f"{t.gateway.url}/admin/dashboard/{path}", params=params, headers=AUTH, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


# -- the JSON API ------------------------------------------------------------------------------------


def test_summary_matches_what_the_client_saw(traffic: Traffic) -> None:
    s = get(traffic, "summary", since="1h")
    sent = traffic.sent
    assert s["requests"] == len(sent)
    assert s["errors"] == sum(x.status >= 400 for x in sent) == 2
    assert s["error_rate"] == pytest.approx(2 / len(sent))
    assert s["failovers"] == sum(x.attempts > 1 for x in sent) == 2
    assert s["failover_rate"] == pytest.approx(2 / len(sent))
    assert s["cache_hits"] == 1
    assert s["streams"] == 2
    assert s["cost_usd"] == pytest.approx(sum(x.cost for x in sent), abs=1e-7)
    assert s["cost_usd"] > 0
    assert s["baseline_cost_usd"] == pytest.approx(sum(x.baseline for x in sent), abs=1e-7)
    assert s["savings_usd"] == pytest.approx(s["baseline_cost_usd"] - s["cost_usd"], abs=1e-9)
    assert s["savings_usd"] > 0, "cheap deployments served most of alias chat"
    assert s["prompt_tokens"] == sum(x.prompt_tokens for x in sent)
    assert s["completion_tokens"] == sum(x.completion_tokens for x in sent)
    assert s["total_tokens"] == s["prompt_tokens"] + s["completion_tokens"]
    # The ledger agrees: /admin/spend counts the same successful requests at the same cost.
    spend = httpx.get(f"{traffic.gateway.url}/admin/spend", params={"since": "1h"}, headers=AUTH).json()
    assert spend["total"]["requests"] == len(sent) - 2
    assert spend["total"]["cost_usd"] == pytest.approx(s["cost_usd"], abs=1e-9)


def test_timeseries_adds_up_to_the_summary(traffic: Traffic) -> None:
    s = get(traffic, "summary", since="1h")
    ts = get(traffic, "timeseries", since="1h", by="provider")
    n = len(ts["buckets"])
    assert 40 <= n <= 101, "auto buckets give 50-100 points"
    assert ts["buckets"] == [ts["start"] + i * ts["bucket_s"] for i in range(n)]
    assert sum(ts["requests"]) == s["requests"]
    assert sum(ts["errors"]) == s["errors"]
    assert sum(ts["failovers"]) == s["failovers"]
    assert sum(ts["cost_usd"]) == pytest.approx(s["cost_usd"], abs=1e-9)
    assert sum(ts["baseline_cost_usd"]) == pytest.approx(s["baseline_cost_usd"], abs=1e-9)
    by_provider = {x["group"]: x for x in ts["series"]}
    expected = Counter(x.provider or "-" for x in traffic.sent)
    assert {g: x["total_requests"] for g, x in by_provider.items()} == dict(expected)
    for group, series in by_provider.items():
        assert len(series["cost_usd"]) == n
        want = sum(x.cost for x in traffic.sent if (x.provider or "-") == group)
        assert series["total_cost_usd"] == pytest.approx(want, abs=1e-7)
    by_key = {
        x["group"]: x["total_requests"] for x in get(traffic, "timeseries", since="1h", by="key")["series"]
    }
    assert by_key == dict(Counter(x.key for x in traffic.sent))
    fixed = get(traffic, "timeseries", since="2h", bucket="600")
    assert fixed["bucket_s"] == 600 and len(fixed["buckets"]) in (12, 13)
    assert sum(fixed["requests"]) == s["requests"]


def test_latency_lists_each_deployment(traffic: Traffic) -> None:
    lat = get(traffic, "latency", since="1h")
    deps = {d["deployment"]: d for d in lat["deployments"]}
    answered = Counter(f"{x.provider}/{x.model}" for x in traffic.sent if x.provider)
    assert set(deps) == set(answered) == {"cheap/small", "premium/big", "flaky/m1"}
    for name, d in deps.items():
        served = sum(x.attempts_on(name)[0] for x in traffic.sent)
        failed = sum(x.attempts_on(name)[1] for x in traffic.sent)
        assert (d["served"], d["failed_attempts"], d["cancelled_attempts"]) == (served, failed, 0), name
        assert d["attempts"] == served + failed
        assert d["failure_rate"] == pytest.approx(failed / (served + failed))
    # Two requests of alias failover failed on flaky/m1 before cheap/small served them, and the
    # request of alias broken failed there: three failed attempts, although only one request ended there.
    assert (deps["flaky/m1"]["served"], deps["flaky/m1"]["failed_attempts"]) == (0, 3)
    assert deps["flaky/m1"]["failure_rate"] == 1.0
    assert deps["cheap/small"]["failed_attempts"] == 0
    assert deps["cheap/small"]["failovers"] == 2, "it served both requests that failed over"
    assert deps["flaky/m1"]["latency_ms"]["p50"] is None, "only successful requests make latency percentiles"
    for name in ("cheap/small", "premium/big"):
        p = deps[name]["latency_ms"]
        assert 0 < p["p50"] <= p["p95"] <= p["p99"]
        # The same percentiles from the request log's latencies.
        rows = get(traffic, "requests", since="1h", provider=name.split("/")[0], status="ok", limit=500)[
            "rows"
        ]
        ordered = sorted(r["latency_ms"] for r in rows)
        assert p["p50"] == pytest.approx(percentile(ordered, 0.5), abs=1e-3)
        assert p["p99"] == pytest.approx(percentile(ordered, 0.99), abs=1e-3)
    streams = Counter(f"{x.provider}/{x.model}" for x in traffic.sent if x.stream)
    for name, d in deps.items():
        assert d["ttft_samples"] == streams.get(name, 0)


def test_failed_attempts_count_on_the_deployment_that_failed(failing_over: FailingOver) -> None:
    """The ledger keeps each request's route: flaky/m1 shows the four attempts it failed, although
    steady/m2 served those requests (the ledger's rows name only steady/m2)."""
    t = failing_over
    deps = {d["deployment"]: d for d in get(t, "latency", since="1h")["deployments"]}
    assert set(deps) == {"flaky/m1", "steady/m2"}
    flaky, steady = deps["flaky/m1"], deps["steady/m2"]
    assert (flaky["served"], flaky["failed_attempts"]) == (t.flaky_served, t.failed_over) == (3, 4)
    assert flaky["failure_rate"] == pytest.approx(4 / 7)
    assert (steady["served"], steady["failed_attempts"]) == (t.failed_over, 0)
    assert steady["failovers"] == 4 and flaky["failovers"] == 0
    for name, d in deps.items():  # the API agrees with the x-hedge-route headers the client got
        assert (d["served"], d["failed_attempts"]) == tuple(
            sum(x.attempts_on(name)[i] for x in t.sent) for i in (0, 1)
        )
    assert get(t, "summary", since="1h")["failovers"] == 4
    failed_over = next(x for x in t.sent if x.provider == "steady")
    route = get(t, f"requests/{failed_over.request_id}")["route"]
    assert [(s["target"], s["outcome"]) for s in route] == [("flaky/m1", "failed"), ("steady/m2", "ok")]


def test_summary_says_when_no_baseline_is_configured(failing_over: FailingOver, traffic: Traffic) -> None:
    s = get(failing_over, "summary", since="1h")
    assert s["requests"] == 7 and s["baseline_requests"] == 0
    assert s["baseline_configured"] is False and s["baselines"] == {}
    assert s["no_baseline"]["reason"] == "not_configured"
    assert s["no_baseline"]["message"] == "no baseline configured"
    assert "baseline: <alias>" in s["no_baseline"]["hint"]
    # With a baseline on alias chat, the savings are real and nothing is said.
    priced = get(traffic, "summary", since="1h")
    assert priced["baseline_configured"] is True and priced["baselines"] == {"chat": "yardstick"}
    assert priced["no_baseline"] is None
    assert priced["baseline_requests"] == sum(x.alias == "chat" and x.status == 200 for x in traffic.sent)


def test_baseline_info_tells_an_unpriced_range_from_no_baseline() -> None:
    def config(**chat: Any) -> Any:
        deployments = [{"provider": "p", "model": "x"}]
        models = {"chat": {"deployments": deployments, **chat}, "big": {"deployments": deployments}}
        raw = {
            "server": {"master_key": MASTER_KEY},
            "providers": {"p": {"style": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "models": models,
        }
        return parse_config(raw, "<test>")

    priced, unpriced = config(baseline="big"), config()
    assert (
        baseline_info(unpriced, {"requests": 0, "baseline_requests": 0})["no_baseline"]["reason"]
        == "not_configured"
    )
    # Traffic only on aliases without one, though alias chat has one: the range has nothing to compare.
    none_in_range = baseline_info(priced, {"requests": 5, "baseline_requests": 0})["no_baseline"]
    assert none_in_range["reason"] == "none_in_range" and "(chat)" in none_in_range["hint"]
    assert baseline_info(priced, {"requests": 0, "baseline_requests": 0})["no_baseline"] is None
    assert baseline_info(priced, {"requests": 5, "baseline_requests": 2}) == {
        "baseline_configured": True,
        "baselines": {"chat": "big"},
        "no_baseline": None,
    }
    # Rows priced before the baseline was removed from the config still show their savings.
    assert baseline_info(unpriced, {"requests": 5, "baseline_requests": 2})["no_baseline"] is None


def test_breakers_show_the_open_one(traffic: Traffic) -> None:
    b = get(traffic, "breakers")
    states = {d["deployment"]: d for d in b["deployments"]}
    assert set(states) == {"cheap/small", "premium/big", "flaky/m1"}
    assert states["flaky/m1"]["state"] == "open", "three 503s open a breaker configured with failures: 3"
    assert states["cheap/small"]["state"] == "closed"
    assert sorted(states["premium/big"]["aliases"]) == ["chat", "yardstick"]
    assert states["cheap/small"]["samples"] > 0 and states["cheap/small"]["ewma_latency_ms"] > 0
    assert all(d["in_flight"] == 0 for d in b["deployments"])


def test_request_log_filters(traffic: Traffic) -> None:
    sent = traffic.sent
    log = get(traffic, "requests", since="1h")
    assert log["total"] == len(sent)
    assert {r["request_id"] for r in log["rows"]} == {x.request_id for x in sent}
    ts = [r["ts"] for r in log["rows"]]
    assert ts == sorted(ts, reverse=True), "newest first"

    premium = get(traffic, "requests", since="1h", provider="premium")
    assert premium["total"] == sum(x.provider == "premium" for x in sent) > 0
    assert {r["provider"] for r in premium["rows"]} == {"premium"}

    errors = get(traffic, "requests", since="1h", status="error")
    assert sorted(r["status"] for r in errors["rows"]) == sorted(x.status for x in sent if x.status >= 400)
    ok = get(traffic, "requests", since="1h", status="ok")
    assert ok["total"] == len(sent) - errors["total"]

    assert get(traffic, "requests", since="1h", key="alice")["total"] == 2
    assert get(traffic, "requests", since="1h", key="master")["total"] == len(sent) - 2
    failover = get(traffic, "requests", since="1h", alias="failover")
    assert failover["total"] == 2 and {r["attempts"] for r in failover["rows"]} == {2}
    assert get(traffic, "requests", since="1h", model="big")["total"] == sum(x.model == "big" for x in sent)

    one = sent[3]
    found = get(traffic, "requests", since="1h", q=one.request_id.upper())
    assert [r["request_id"] for r in found["rows"]] == [one.request_id], "search is case-insensitive"
    assert get(traffic, "requests", since="1h", q="flaky")["total"] == 1
    assert get(traffic, "requests", since="1h", q="ALICE")["total"] == 2, "key names are searched"
    assert get(traffic, "requests", since="1h", q="%")["total"] == 0, "LIKE wildcards are escaped"

    first = get(traffic, "requests", since="1h", limit=5, offset=0)["rows"]
    second = get(traffic, "requests", since="1h", limit=5, offset=5)["rows"]
    assert len(first) == len(second) == 5
    assert not {r["request_id"] for r in first} & {r["request_id"] for r in second}
    assert first[-1]["ts"] >= second[0]["ts"]

    facets = get(traffic, "requests", since="1h", limit=1, facets=1)["facets"]
    assert facets["provider"] == ["cheap", "flaky", "premium"]


def test_request_detail(traffic: Traffic) -> None:
    alice = next(x for x in traffic.sent if x.key == "alice")
    d = get(traffic, f"requests/{alice.request_id}")
    assert d["request_id"] == alice.request_id
    assert d["key_name"] == "alice" and d["team"] == "research"
    assert d["cost_usd"] == pytest.approx(alice.cost, abs=1e-8)
    assert d["request_body"] is None and d["response_body"] is None, "server.log_bodies is off"
    missing = httpx.get(f"{traffic.gateway.url}/admin/dashboard/requests/req_nope", headers=AUTH)
    assert missing.status_code == 404


def test_conformance_matrix(traffic: Traffic) -> None:
    c = get(traffic, "conformance")
    got = {(r["deployment"], r["case"]): r["status"] for r in c["results"]}
    assert got == {
        ("cheap/small", "plain"): "pass",
        ("cheap/small", "stream"): "pass",
        ("premium/big", "plain"): "pass",
        ("premium/big", "stream"): "fail",
    }


def test_conformance_without_runs(tmp_path: Path) -> None:
    assert read_conformance(tmp_path / "conformance.jsonl", ["cheap/small"]) == {"results": []}


def test_bad_parameters(traffic: Traffic) -> None:
    for path, params in [
        ("summary", {"since": "yesterday"}),
        ("timeseries", {"by": "colour"}),
        ("timeseries", {"bucket": "0"}),
        ("timeseries", {"since": "30d", "bucket": "1"}),
        ("requests", {"status": "maybe"}),
        ("requests", {"limit": "100000"}),
    ]:
        resp = httpx.get(f"{traffic.gateway.url}/admin/dashboard/{path}", params=params, headers=AUTH)
        assert resp.status_code == 400, (path, params, resp.text)
        assert resp.json()["error"]["type"] == "invalid_request_error"


def test_master_key_only(traffic: Traffic) -> None:
    base = f"{traffic.gateway.url}/admin/dashboard"
    for name in (*ENDPOINTS, "requests/req_x"):
        assert httpx.get(f"{base}/{name}").status_code == 401
        wrong = httpx.get(f"{base}/{name}", headers={"authorization": "Bearer sk-not-the-master-key"})
        assert wrong.status_code == 403, name
        assert wrong.json()["error"]["code"] == "master_key_required"
        virtual = httpx.get(f"{base}/{name}", headers={"authorization": f"Bearer {traffic.alice_key}"})
        assert virtual.status_code == 403, "a virtual key is not enough"


def test_ui_is_static_and_needs_no_key(traffic: Traffic) -> None:
    page = httpx.get(f"{traffic.gateway.url}/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'src="ui/app.js"' in page.text and MASTER_KEY not in page.text
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        asset = httpx.get(f"{traffic.gateway.url}/ui/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        text = asset.text.replace("http://www.w3.org/2000/svg", "")  # a namespace name, not a fetch
        assert "http://" not in text and "https://" not in text, "nothing is fetched from elsewhere"
    assert httpx.get(f"{traffic.gateway.url}/ui/secrets.py").status_code == 404
    assert httpx.get(f"{traffic.gateway.url}/ui/", follow_redirects=True).url.path == "/ui"


# -- the analytics SQL on both databases ------------------------------------------------------------


T0 = float((int(time.time()) // 3600) * 3600 - 3600)
"""A whole hour, an hour or so ago: buckets of 60 s start exactly there."""


async def _known_ledger(db: Database) -> str:
    key, _ = await KeyStore(db).create({"name": "alice"})
    ledger = Ledger(db, flush_interval_s=60)

    def rec(i: int, **kw: Any) -> RequestRecord:
        base: dict[str, Any] = {"request_id": f"req_{i}", "endpoint": "chat", "alias": "chat", "attempts": 1}
        return RequestRecord(**{**base, **kw})

    cheap = {"provider": "cheap", "model": "small"}
    first = {"cost_usd": 0.001, "baseline_cost_usd": 0.01, "prompt_tokens": 10, "completion_tokens": 5}
    served = [RouteStep("cheap/small", Outcome.OK)]
    ledger(rec(1, started_at=T0 + 5, **cheap, **first, latency_ms=100.0, route=served))
    premium = {"provider": "premium", "model": "big", "cost_usd": 0.01, "baseline_cost_usd": 0.01}
    ledger(
        rec(
            2,
            started_at=T0 + 110,
            **premium,
            latency_ms=200.0,
            ttft_ms=50.0,
            stream=True,
            attempts=2,
            key_id=key.id,
            alias="other",
            route=[
                RouteStep("cheap/small", Outcome.FAILED, "upstream_503"),
                RouteStep("premium/big", Outcome.OK),
            ],
        )
    )
    ledger(
        rec(
            3,
            started_at=T0 + 70,
            **cheap,
            status=502,
            latency_ms=10.0,
            error="upstream 100% broken_thing",
            route=[RouteStep("cheap/small", Outcome.FAILED, "upstream_error")],
        )
    )
    hit = [RouteStep("cache", Outcome.CACHE_HIT)]
    ledger(
        rec(
            4,
            started_at=T0 + 200,
            **cheap,
            cost_usd=0.002,
            latency_ms=300.0,
            cache_hit=True,
            attempts=0,
            route=hit,
        )
    )
    ledger(rec(5, started_at=T0 - 1000, provider="cheap", model="small", cost_usd=5.0))  # before the window
    await ledger.close()
    return key.id


async def test_analytics_summary_and_timeseries(db: Database) -> None:
    await _known_ledger(db)
    a = Analytics(db)
    s = await a.summary(T0, T0 + 240)
    assert (s["requests"], s["errors"], s["failovers"], s["cache_hits"], s["streams"]) == (4, 1, 1, 1, 1)
    assert s["cost_usd"] == pytest.approx(0.013)
    assert s["baseline_cost_usd"] == pytest.approx(0.022), "no baseline counts as the cost itself"
    assert s["savings_usd"] == pytest.approx(0.009)
    assert s["prompt_tokens"] == 10 and s["completion_tokens"] == 5

    ts = await a.timeseries(T0, "provider", 60, T0 + 240)
    assert ts["start"] == T0 and ts["buckets"] == [T0, T0 + 60, T0 + 120, T0 + 180]
    assert ts["requests"] == [1, 2, 0, 1], "110 s is in the second minute (floored, not rounded)"
    assert ts["errors"] == [0, 1, 0, 0] and ts["failovers"] == [0, 1, 0, 0]
    assert ts["cost_usd"] == pytest.approx([0.001, 0.01, 0.0, 0.002])
    series = {x["group"]: x["cost_usd"] for x in ts["series"]}
    assert series["cheap"] == pytest.approx([0.001, 0.0, 0.0, 0.002])
    assert series["premium"] == pytest.approx([0.0, 0.01, 0.0, 0.0])
    assert [x["group"] for x in ts["series"]] == ["premium", "cheap"], "costliest first"
    by_key = await a.timeseries(T0, "key", 60, T0 + 240)
    assert {x["group"]: x["total_requests"] for x in by_key["series"]} == {"master key": 3, "alice": 1}
    auto = await a.timeseries(T0, "alias", None, T0 + 240)
    assert auto["bucket_s"] == auto_bucket(240 - 5) and sum(auto["requests"]) == 4
    with pytest.raises(ValueError):
        await a.timeseries(T0, "colour", 60, T0 + 240)


async def test_analytics_latency_and_requests(db: Database) -> None:
    key_id = await _known_ledger(db)
    a = Analytics(db)
    lat = {d["deployment"]: d for d in (await a.latency(T0, T0 + 240))["deployments"]}
    cheap, premium = lat["cheap/small"], lat["premium/big"]
    assert (cheap["served"], cheap["failed_attempts"]) == (1, 2), "the cache served req_4, not cheap/small"
    assert cheap["failure_rate"] == pytest.approx(2 / 3)
    assert (premium["served"], premium["failed_attempts"], premium["failovers"]) == (1, 0, 1)
    assert cheap["cost_usd"] == pytest.approx(0.003), "cost stays on the deployment the row names"
    assert cheap["latency_ms"] == {"p50": 200.0, "p95": 290.0, "p99": 298.0}, "the 502 is left out"
    assert cheap["ttft_ms"] == {"p50": None, "p95": None, "p99": None}
    assert premium["latency_ms"]["p99"] == 200.0 and premium["ttft_ms"]["p50"] == 50.0
    sampled = await a.latency(T0, T0 + 240, row_cap=1)
    assert sampled["sampled"] and sum(d["latency_samples"] for d in sampled["deployments"]) == 1

    def ids(page: dict[str, Any]) -> list[str]:
        return [r["request_id"] for r in page["rows"]]

    window = RequestFilter(T0, T0 + 240)
    assert ids(await a.requests(window)) == ["req_4", "req_2", "req_3", "req_1"]
    assert ids(await a.requests(window, limit=2, offset=2)) == ["req_3", "req_1"]
    assert (await a.requests(window, limit=2))["total"] == 4

    def where(**kw: Any) -> RequestFilter:
        return RequestFilter(T0, T0 + 240, **kw)

    assert ids(await a.requests(where(q="100%"))) == ["req_3"]
    assert ids(await a.requests(where(q="%"))) == ["req_3"], "% is a literal"
    assert ids(await a.requests(where(q="BROKEN_"))) == ["req_3"]
    assert ids(await a.requests(where(q="alice"))) == ["req_2"]
    assert ids(await a.requests(where(provider="cheap", status="ok"))) == ["req_4", "req_1"]
    assert ids(await a.requests(where(status="error"))) == ["req_3"]
    assert ids(await a.requests(where(key="alice"))) == ["req_2"]
    assert ids(await a.requests(where(key=key_id))) == ["req_2"]
    assert ids(await a.requests(where(key="master"))) == ["req_4", "req_3", "req_1"]
    assert ids(await a.requests(where(alias="other"))) == ["req_2"]
    assert ids(await a.requests(where(model="big"))) == ["req_2"]
    assert (await a.requests(RequestFilter(0)))["total"] == 5

    detail = await a.request("req_2")
    assert detail is not None and detail["key_name"] == "alice" and detail["stream"] is True
    assert await a.request("req_none") is None
    facets = await a.facets(T0, T0 + 240)
    assert facets == {"provider": ["cheap", "premium"], "model": ["big", "small"], "alias": ["chat", "other"]}


async def test_analytics_counts_each_deployments_attempts_from_the_routes(db: Database) -> None:
    """Failed attempts count on the deployment that failed, whoever served the request; rows written
    before routes were kept count by their deployment as they always did."""
    ledger = Ledger(db, flush_interval_s=60)

    def rec(i: int, route: list[RouteStep], **kw: Any) -> RequestRecord:
        base: dict[str, Any] = {"started_at": T0 + i, "provider": "b", "model": "m", "attempts": len(route)}
        return RequestRecord(f"req_{i}", "chat", "chat", route=route, **{**base, **kw})

    a_failed, b_ok = RouteStep("a/m", Outcome.FAILED, "upstream_503"), RouteStep("b/m", Outcome.OK)
    ledger(rec(1, [a_failed, b_ok]))  # a failed over to b
    ledger(rec(2, [a_failed, RouteStep("a/m", Outcome.FAILED, "upstream_timeout"), b_ok]))
    ledger(rec(3, [RouteStep("a/m", Outcome.CIRCUIT_OPEN), b_ok]))  # skipped: not an attempt
    ledger(rec(4, [RouteStep("a/m", Outcome.OK)], provider="a", stream=True, status=502))  # broke mid-stream
    ledger(rec(5, [RouteStep("a/m", Outcome.OK)], provider="a", stream=True, status=499))  # the client left
    ledger(rec(6, [a_failed, RouteStep("b/m", Outcome.CANCELLED)], status=504))  # the deadline passed
    ledger(rec(7, [RouteStep("a/m", Outcome.OK)], provider="a"))
    ledger(
        rec(
            8,
            [b_ok, RouteStep("c", Outcome.ESCALATED, "refusal"), RouteStep("c/m", Outcome.OK)],
            provider="c",
        )
    )
    await ledger.close()
    for i, status in ((9, 200), (10, 500)):  # written before migration 5: no route
        await db.execute(
            "INSERT INTO hedge_requests (request_id, ts, provider, model, status, stream, prompt_tokens, "
            "completion_tokens, cached_tokens, cost_usd, attempts, cache_hit) "
            "VALUES (?, ?, 'a', 'm', ?, 0, 0, 0, 0, 0, 1, 0)",
            [f"req_{i}", T0 + i, status],
        )
    deps = {d["deployment"]: d for d in (await Analytics(db).latency(T0, T0 + 240))["deployments"]}
    got = {n: (d["served"], d["failed_attempts"], d["cancelled_attempts"]) for n, d in deps.items()}
    assert got == {"a/m": (2, 6, 1), "b/m": (4, 0, 1), "c/m": (1, 0, 0)}
    assert deps["a/m"]["failure_rate"] == pytest.approx(6 / 8), "cancelled attempts are no verdict"
    assert [d["deployment"] for d in (await Analytics(db).latency(T0, T0 + 240))["deployments"]] == [
        "a/m",
        "b/m",
        "c/m",
    ], "most attempts first"
    detail = await Analytics(db).request("req_1")
    assert detail is not None and detail["route"] == [
        {"target": "a/m", "outcome": "failed", "detail": "upstream_503"},
        {"target": "b/m", "outcome": "ok", "detail": ""},
    ]
    old = await Analytics(db).request("req_9")
    assert old is not None and old["route"] is None


async def test_body_log(db: Database) -> None:
    register_secrets(["sk-provider-secret-123"])
    bodies = BodyLog(db, flush_interval_s=60, limit=BODY_LIMIT)
    bodies(RequestRecord("req_plain", "chat", "chat"))  # nothing to keep
    request = b'{"messages": [{"role": "user", "content": "my key is sk-provider-secret-123"}]}'
    bodies(RequestRecord("req_b", "chat", "chat", request_body=request, response_body=b'{"ok": true}'))
    big = ("é" * BODY_LIMIT).encode()  # two bytes a character: the cut falls inside none of them
    bodies(RequestRecord("req_big", "chat", "chat", request_body=big))
    assert bodies.pending == 2
    await bodies.close()
    rows = {r["request_id"]: r for r in await db.fetch("SELECT * FROM hedge_bodies")}
    assert set(rows) == {"req_b", "req_big"}
    assert (
        "sk-provider-secret-123" not in rows["req_b"]["request"] and "my key is" in rows["req_b"]["request"]
    )
    assert rows["req_b"]["response"] == '{"ok": true}'
    kept = rows["req_big"]["request"]
    assert kept.startswith("é" * 1000) and "truncated" in kept and rows["req_big"]["response"] is None
    assert len(kept.split("\n")[0].encode()) <= BODY_LIMIT
    ledger = Ledger(db)
    ledger(RequestRecord("req_b", "chat", "chat"))
    await ledger.close()
    detail = await Analytics(db).request("req_b")
    assert detail is not None and detail["response_body"] == '{"ok": true}'


async def test_log_bodies_end_to_end_in_process(tmp_path: Path) -> None:
    """``server.log_bodies`` puts a body sink on the runtime; the detail endpoint shows what it kept."""
    config = parse_config(
        {
            "server": {"master_key": MASTER_KEY, "log_bodies": True},
            "providers": {"p": {"style": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "models": {"m": {"deployments": [{"provider": "p", "model": "x"}]}},
            "state": {"dir": str(tmp_path), "flush_interval_s": 60},
        },
        "<test>",
    )
    app = create_app(config)
    runtime = app.state.runtime
    async with app.router.lifespan_context(app):
        assert sum(isinstance(s, BodyLog) for s in runtime.sinks) == 1
        rec = RequestRecord("req_logged", "chat", "m", provider="p", model="x")
        rec.request_body, rec.response_body = b'{"model": "m"}', b'{"choices": []}'
        runtime.record(rec)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            detail = (await client.get("/admin/dashboard/requests/req_logged", headers=AUTH)).json()
    assert detail["request_body"] == '{"model": "m"}' and detail["response_body"] == '{"choices": []}'

    config = parse_config({**config.model_dump(), "server": {"master_key": MASTER_KEY}}, "<test>")
    assert not any(isinstance(s, BodyLog) for s in create_app(config).state.runtime.sinks)


async def test_log_bodies_through_the_gateway(tmp_path: Path) -> None:
    """With ``server.log_bodies`` every kind of answer keeps its bodies: whole, cached, streamed, error."""
    mock_port, gateway_port = free_port(), free_port()
    config = parse_config(
        {
            "server": {"master_key": MASTER_KEY, "log_bodies": True},
            "providers": {
                "p": {"style": "openai", "base_url": f"http://127.0.0.1:{mock_port}/v1", "api_key": "k"}
            },
            "models": {"m": {"cache_ttl_s": 60, "deployments": [{"provider": "p", "model": "x"}]}},
            "state": {"dir": str(tmp_path)},
        },
        "<test>",
    )
    bodies = [
        {"model": "m", "messages": [{"role": "user", "content": "hello there"}]},
        {"model": "m", "messages": [{"role": "user", "content": "hello there"}]},  # the cache answers
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "stream this"}]},
        {"model": "nope", "messages": [{"role": "user", "content": "unknown"}]},
    ]
    async with (
        serve_in_loop(create_mock_app("openai", Knobs()), mock_port),
        serve_in_loop(create_app(config), gateway_port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway_port}", headers=AUTH) as client,
    ):
        answers = [await client.post("/v1/chat/completions", json=body) for body in bodies]
        details = [
            (await client.get(f"/admin/dashboard/requests/{a.headers['x-hedge-request-id']}")).json()
            for a in answers
        ]
    for body, answer, detail in zip(bodies, answers, details, strict=True):
        assert json.loads(detail["request_body"]) == body
        assert detail["response_body"] == answer.text
    assert [d["status"] for d in details] == [200, 200, 200, 404] and details[1]["cache_hit"]
    assert details[2]["response_body"].rstrip().endswith("data: [DONE]")


def test_body_text_cuts_whole_characters() -> None:
    assert body_text(None) is None
    assert body_text(b"abc") == "abc"
    cut = body_text("aé".encode(), limit=2)  # the limit falls inside 'é'
    assert cut is not None and cut.startswith("a\n") and "\ufffd" not in cut
    assert body_text(b"\xff\xfeok") == "\ufffd\ufffdok"


def test_auto_bucket_gives_50_to_100_points() -> None:
    for span in (60, 600, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400):
        points = math.ceil(span / auto_bucket(span))
        assert 50 <= points <= 100, (span, points)
    assert auto_bucket(86400) == 900
    assert auto_bucket(400 * 86400) % 86400 == 0


def test_percentile_interpolates() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == pytest.approx(50.5)
    assert percentile(values, 0.95) == pytest.approx(95.05)
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_demo_serve_keeps_the_dashboard_up(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "demo.out"
    # Without the batch and experimentation acts (tests/batch/test_demo.py and tests/cli/test_demo.py
    # have them): these are the interactive figures.
    cmd = [sys.executable, "-m", "hedge", "demo", "--serve", "--requests", "24", "--port", str(port)]
    cmd += ["--batch-lines", "0", "--eval-items", "0"]
    with out.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while f"127.0.0.1:{port}/ui" not in out.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        text = out.read_text()
        assert f"http://127.0.0.1:{port}/ui" in text and "sk-hedge-demo" in text, text
        headers = {"authorization": "Bearer sk-hedge-demo"}
        summary = httpx.get(f"http://127.0.0.1:{port}/admin/dashboard/summary", headers=headers).json()
        assert summary["requests"] == 24
        assert summary["savings_usd"] > 0 and summary["no_baseline"] is None
        latency = httpx.get(f"http://127.0.0.1:{port}/admin/dashboard/latency", headers=headers).json()
        deps = latency["deployments"]
        assert sum(d["served"] for d in deps) == summary["requests"] - summary["errors"], deps
        assert sum(d["failed_attempts"] for d in deps) >= summary["failovers"], "each failover failed once"
        assert httpx.get(f"http://127.0.0.1:{port}/ui").status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == (1 if summary["errors"] else 0), out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- the page in a real browser ----------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    path = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
    if not path:
        pytest.skip("chromium not found (/usr/bin/chromium); .ci/run installs it with apt-get")
    return path


def test_dashboard_in_a_browser(traffic: Traffic) -> None:
    from playwright import sync_api  # a dev dependency: missing, it is a setup error, not a skip

    executable = _chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    summary = get(traffic, "summary", since="24h")
    series = get(traffic, "timeseries", since="24h", by="provider")
    latency = get(traffic, "latency", since="24h")
    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as exc:  # a broken install: say why instead of failing on the environment
            pytest.skip(f"chromium could not be launched: {exc}")
        try:
            _drive_dashboard(browser, traffic, summary, series, latency)
        finally:
            browser.close()


def test_failed_attempts_and_no_baseline_in_a_browser(failing_over: FailingOver) -> None:
    from playwright import sync_api

    executable = _chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as exc:
            pytest.skip(f"chromium could not be launched: {exc}")
        try:
            errors: list[str] = []
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{failing_over.gateway.url}/ui")
            page.fill("#login-key", MASTER_KEY)
            page.click("#login-submit")
            page.wait_for_selector("body[data-loaded]")

            # The deployments table: served and failed attempts, from the routes.
            def cells(deployment: str) -> list[str]:
                row = page.locator(f'#table-latency tbody tr[data-deployment="{deployment}"]')
                return row.locator("td").all_text_contents()[1:4]

            assert cells("flaky/m1") == ["3", "4 (57.1%)", "0"]
            assert cells("steady/m2") == ["4", "0", "0"]
            assert page.locator("#table-latency tbody tr.has-failures").count() == 1

            # No baseline: said so, with how to set one, instead of "$0.00 saved".
            assert page.text_content("#savings-big") == "No baseline configured"
            assert page.get_attribute("#savings-big", "data-baseline") == "not_configured"
            assert page.text_content("#savings-pct") == ""
            assert page.is_visible("#savings-hint")
            assert "baseline: <alias>" in page.text_content("#savings-hint")
            assert page.text_content("#kpi-savings") == "\N{EN DASH}"
            assert page.text_content("#kpi-savings-sub") == "no baseline configured"
            assert page.locator("svg[data-chart=savings]").count() == 0
            assert "No baseline" in page.text_content("#chart-savings")
            page.screenshot(path=str(ARTIFACTS / "failover-no-baseline.png"), full_page=True)

            # The detail view shows the route.
            steady = next(x for x in failing_over.sent if x.provider == "steady")
            page.click(f'#table-log tbody tr[data-id="{steady.request_id}"]')
            page.wait_for_selector("#detail", state="visible")
            shown = ", ".join(f"{target}={reason}" for target, reason in steady.route)  # as x-hedge-route
            assert shown.startswith("flaky/m1=") and shown.endswith(", steady/m2=ok")
            assert "Route" + shown in page.text_content("#detail-fields")
            ctx.close()
            assert errors == [], errors
        finally:
            browser.close()


def _drive_dashboard(
    browser: Any, t: Traffic, summary: dict[str, Any], series: dict[str, Any], latency: dict[str, Any]
) -> None:
    errors: list[str] = []
    # First under the page's own strict policy: the app must run without eval or inline script.
    strict = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = strict.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{t.gateway.url}/ui")
    page.fill("#login-key", MASTER_KEY)
    page.click("#login-submit")
    page.wait_for_selector("body[data-loaded]")
    assert page.text_content("#kpi-requests") == str(summary["requests"])
    assert errors == [], errors
    strict.close()

    # bypass_csp: Playwright's own polling (wait_for_function) evaluates strings, which the page's strict
    # policy forbids; the page itself is still served with its CSP header, which another test checks.
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="light", bypass_csp=True)
    page = ctx.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{t.gateway.url}/ui")

    # Login: a wrong key is refused and the page says so; the master key opens the dashboard.
    page.wait_for_selector("#login-form", state="visible")
    page.screenshot(path=str(ARTIFACTS / "login.png"))
    page.fill("#login-key", "sk-wrong")
    page.click("#login-submit")
    page.wait_for_function("document.getElementById('login-error').textContent.length > 0")
    assert "not the master key" in page.text_content("#login-error")
    assert page.is_hidden("#app")
    page.fill("#login-key", MASTER_KEY)
    page.click("#login-submit")
    page.wait_for_selector("body[data-loaded]")
    assert page.evaluate("sessionStorage.getItem('hedge.masterKey')") == MASTER_KEY

    # The numbers shown are the API's.
    assert page.text_content("#kpi-requests") == str(summary["requests"]) == str(len(t.sent))
    assert float(page.get_attribute("#kpi-cost", "data-value")) == pytest.approx(summary["cost_usd"])
    assert float(page.get_attribute("#savings-big", "data-value")) == pytest.approx(summary["savings_usd"])
    assert page.text_content("#savings-big").startswith("$0.")
    assert page.text_content("#kpi-errors") == f"{summary['error_rate'] * 100:.1f}%"

    # Charts are drawn from data: stacked bars per provider that spent anything, a slot per bucket.
    spend = page.locator("svg[data-chart=spend]")
    assert spend.get_attribute("data-points") == str(len(series["buckets"]))
    spenders = [x["group"] for x in series["series"] if x["total_cost_usd"] > 0]
    assert set(spenders) == {"cheap", "premium"}
    drawn = page.eval_on_selector_all(
        "svg[data-chart=spend] g[data-series]", "gs => gs.map(g => g.dataset.series)"
    )
    assert sorted(drawn) == sorted(spenders)
    heights = page.eval_on_selector_all(
        "svg[data-chart=spend] g[data-series] rect", "rs => rs.map(r => r.getBBox().height)"
    )
    assert heights and max(heights) > 20, "the bars rise above the axis"
    assert page.text_content("#legend-spend").count("$") == len(spenders)
    assert page.locator("svg[data-chart=savings] path.area-savings").count() == 1
    assert page.locator("svg[data-chart=traffic] g.bar-error rect").count() >= 1
    bars = page.eval_on_selector_all(
        "svg[data-chart=latency] g[data-deployment]", "gs => gs.map(g => g.dataset.deployment)"
    )
    assert bars == [d["deployment"] for d in latency["deployments"]]
    assert page.locator("#table-latency tbody tr").count() == len(latency["deployments"])
    assert page.locator("#breakers li[data-state=open]").get_attribute("data-deployment") == "flaky/m1"
    assert page.locator("#conformance .badge.fail").count() == 1
    assert page.locator("#conformance .badge.pass").count() == 3

    # The request log, then its filters.
    rows = page.locator("#table-log tbody tr")
    assert rows.count() == len(t.sent)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header belongs at the top
    page.screenshot(path=str(ARTIFACTS / "dashboard-light.png"), full_page=True)
    premium = sum(x.provider == "premium" for x in t.sent)
    found = get(t, "requests", since="24h", q="premium")
    assert found["total"] == premium, [(r["provider"], r["alias"], r["error"]) for r in found["rows"]]
    page.fill("#log-q", "premium")
    page.wait_for_function(
        "n => { const rs = [...document.querySelectorAll('#table-log tbody tr')];"
        " return rs.length === n && rs.every(r => r.dataset.provider === 'premium'); }",
        arg=premium,
    )
    page.fill("#log-q", "")
    page.select_option("#log-status", "error")
    page.wait_for_function(
        "n => { const rs = [...document.querySelectorAll('#table-log tbody tr')];"
        " return rs.length === n && rs.every(r => Number(r.dataset.status) >= 400); }",
        arg=sum(x.status >= 400 for x in t.sent),
    )
    page.select_option("#log-provider", "flaky")
    page.wait_for_function(
        "() => { const rs = [...document.querySelectorAll('#table-log tbody tr')];"
        " return rs.length === 1 && rs[0].dataset.provider === 'flaky'; }"
    )
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header belongs at the top
    page.screenshot(path=str(ARTIFACTS / "request-log-filtered.png"), full_page=True)

    # The detail view of one request.
    page.click("#table-log tbody tr[data-status]")
    page.wait_for_selector("#detail", state="visible")
    flaky = next(x for x in t.sent if x.provider == "flaky")
    assert page.text_content("#detail-title") == f"Request {flaky.request_id}"
    assert "server.log_bodies" in page.text_content("#detail-request")
    page.screenshot(path=str(ARTIFACTS / "request-detail.png"))
    page.keyboard.press("Escape")
    page.wait_for_selector("#detail", state="hidden")

    # Auto-refresh picks up new traffic without a reload.
    t.send("chat", "one more, seen by auto-refresh")
    page.wait_for_function(
        "n => document.getElementById('kpi-requests').textContent === String(n)",
        arg=len(t.sent),
        timeout=20_000,
    )

    page.click("#logout")
    page.wait_for_selector("#login-form", state="visible")
    assert page.evaluate("sessionStorage.getItem('hedge.masterKey')") is None
    ctx.close()

    dark = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="dark", bypass_csp=True)
    page = dark.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{t.gateway.url}/ui")
    page.fill("#login-key", MASTER_KEY)
    page.click("#login-submit")
    page.wait_for_selector("body[data-loaded]")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background != "rgb(244, 246, 249)", "prefers-color-scheme: dark changes the palette"
    page.screenshot(path=str(ARTIFACTS / "dashboard-dark.png"))
    page.set_viewport_size({"width": 420, "height": 900})
    page.wait_for_timeout(300)  # the charts redraw after a resize (debounced); only for the screenshot
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 420, "narrow screens get one column, no sideways scrolling"
    page.screenshot(path=str(ARTIFACTS / "dashboard-narrow.png"), full_page=True)
    dark.close()
    assert errors == [], errors
