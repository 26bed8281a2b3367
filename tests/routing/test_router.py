"""Routing: strategies, rules, time windows, per-request preferences and escalation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from conftest import MASTER_KEY, Gateway, Mock, start_gateway, start_mock
from hedge.config import Price, ProviderConfig, Timeouts, parse_config
from hedge.errors import InvalidRequest
from hedge.providers import make_adapter
from hedge.providers.openai import OpenAIAdapter
from hedge.routing.context import RouteContext
from hedge.routing.deployment import Deployment
from hedge.routing.escalation import escalation_reason
from hedge.routing.router import Router, apply_preferences
from hedge.routing.strategies import Ordered, Weighted
from hedge.windows import parse_window


def at(hour: int, minute: int = 0, day: int = 2) -> datetime:
    """A UTC time on 2026-11-0<day> (2 = Monday)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "tz", "days", "when", "inside"),
    [
        ("09:00-17:00", "UTC", None, at(9), True),
        ("09:00-17:00", "UTC", None, at(17), False),
        ("22:00-06:00", "UTC", None, at(23), True),
        ("22:00-06:00", "UTC", None, at(5, 59), True),
        ("22:00-06:00", "UTC", None, at(6), False),
        ("22:00-06:00", "UTC", None, at(12), False),
        ("22:00-06:00", "Europe/Zurich", None, at(21, 30), True),  # 22:30 in Zurich (CET)
        ("09:00-17:00", "UTC", ["sat", "sun"], at(10), False),
        ("09:00-17:00", "UTC", ["mon"], at(10), True),
        ("22:00-06:00", "UTC", ["sun"], at(2), True),  # Monday 02:00 belongs to Sunday night's window
        ("00:00-24:00", "UTC", None, at(23, 59), True),
    ],
)
def test_windows(spec: str, tz: str, days: list[str] | None, when: datetime, inside: bool) -> None:
    assert parse_window(spec, tz, days).contains(when) is inside


@pytest.mark.parametrize(
    ("spec", "tz"), [("9-17", "UTC"), ("25:00-26:00", "UTC"), ("09:00-17:00", "Mars/Base")]
)
def test_bad_windows(spec: str, tz: str) -> None:
    with pytest.raises(ValueError):
        parse_window(spec, tz)


NOON = at(12)


def _router(models: dict[str, Any], now: datetime = NOON) -> Router:
    config = parse_config(
        {
            "server": {"master_key": "k"},
            "providers": {
                n: {"style": "openai", "base_url": f"http://127.0.0.1:1/{n}"} for n in ("a", "b", "c")
            },
            "models": models,
        }
    )
    adapters = {n: make_adapter(n, p) for n, p in config.providers.items()}
    return Router(config, adapters, clock=lambda: now)


def _ids(
    router: Router, alias: str, body: dict[str, Any] | None = None, tags: tuple[str, ...] = ()
) -> list[str]:
    ctx = router.context({"messages": [{"role": "user", "content": "hi"}], **(body or {})}, tags)
    return [d.id for d in router.plan(alias, ctx)[1]]


DEPS = [
    {"provider": "a", "model": "big", "price": {"input": 3, "output": 15}, "quality": 0.9},
    {"provider": "b", "model": "mid", "price": {"input": 0.5, "output": 1.5}, "quality": 0.8},
    {"provider": "c", "model": "small", "price": {"input": 0.1, "output": 0.2}, "quality": 0.6},
]


def test_cheapest_respects_quality_and_latency_bars() -> None:
    router = _router(
        {"m": {"strategy": "cheapest", "deployments": DEPS, "min_quality": 0.7, "max_latency_ms": 500}}
    )
    assert _ids(router, "m") == ["b/mid", "a/big", "c/small"], "small is cheapest but below the quality bar"
    for _ in range(20):
        router.stats["b/mid"].start()
        router.stats["b/mid"].end(900.0)
    assert _ids(router, "m")[0] == "a/big", "mid's p95 latency now misses the bar"


def test_cheapest_uses_the_price_in_force() -> None:
    spot = {
        **DEPS[0],
        "price_windows": [
            {"window": "22:00-06:00", "timezone": "UTC", "price": {"input": 0.01, "output": 0.01}}
        ],
    }
    day = _router({"m": {"strategy": "cheapest", "deployments": [spot, DEPS[2]]}}, now=at(12))
    night = _router({"m": {"strategy": "cheapest", "deployments": [spot, DEPS[2]]}}, now=at(23))
    assert _ids(day, "m")[0] == "c/small"
    assert _ids(night, "m")[0] == "a/big", "off-peak price makes the big model the cheapest"


def test_least_latency_and_least_busy() -> None:
    router = _router(
        {
            "lat": {"strategy": "least-latency", "deployments": DEPS},
            "busy": {"strategy": "least-busy", "deployments": DEPS},
        }
    )
    for dep_id, ms in (("a/big", 300.0), ("b/mid", 100.0), ("c/small", 200.0)):
        router.stats[dep_id].start()
        router.stats[dep_id].end(ms, ttft_ms=ms / 10 if dep_id != "c/small" else 1.0)
    assert _ids(router, "lat") == ["b/mid", "c/small", "a/big"]
    assert _ids(router, "lat", {"stream": True})[0] == "c/small", "streams rank by time to first token"
    router.stats["a/big"].start()
    router.stats["b/mid"].start()
    assert _ids(router, "busy")[0] == "c/small"


def test_rules_route_by_tags_size_and_window() -> None:
    models = {
        "chat": {
            "deployments": [DEPS[0]],
            "rules": [
                {"when": {"tags": ["batch"]}, "use": "batch"},
                {"when": {"min_prompt_tokens": 1000}, "use": "long"},
                {"when": {"window": {"window": "22:00-06:00"}}, "use": "night"},
            ],
        },
        "batch": {"deployments": [DEPS[2]]},
        "long": {"deployments": [DEPS[1]]},
        "night": {"deployments": [{**DEPS[2], "model": "night"}]},
    }
    day, night = _router(models, at(12)), _router(models, at(23))
    assert _ids(day, "chat") == ["a/big"]
    assert _ids(day, "chat", tags=("batch",)) == ["c/small"]
    assert _ids(day, "chat", {"metadata": {"tags": ["batch"]}}) == ["c/small"]
    assert _ids(day, "chat", {"messages": [{"role": "user", "content": "x" * 5000}]}) == ["b/mid"]
    assert _ids(night, "chat") == ["c/night"]


def test_preferences_like_openrouter() -> None:
    router = _router({"m": {"strategy": "ordered", "deployments": DEPS}})
    assert _ids(router, "m", {"hedge": {"order": ["c", "b/mid"]}}) == ["c/small", "b/mid", "a/big"]
    assert _ids(router, "m", {"hedge": {"order": ["c"], "allow_fallbacks": False}}) == ["c/small"]
    assert _ids(router, "m", {"hedge": {"allow_fallbacks": False}}) == ["a/big"]
    assert _ids(router, "m", {"hedge": {"only": ["a", "c"]}}) == ["a/big", "c/small"]
    assert _ids(router, "m", {"hedge": {"ignore": ["a"]}}) == ["b/mid", "c/small"]
    assert _ids(router, "m", {"hedge": {"sort": "price"}}) == ["c/small", "b/mid", "a/big"]
    assert _ids(router, "m", {"hedge": {"max_price": {"input": 1}}}) == ["b/mid", "c/small"]
    ctx = RouteContext({})
    with pytest.raises(InvalidRequest):
        apply_preferences(router.aliases["m"].deployments, {"only": ["nobody"]}, ctx)


def _answer(content: str | None, finish: str = "stop", calls: list[dict[str, Any]] | None = None) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return orjson.dumps({"choices": [{"index": 0, "message": message, "finish_reason": finish}]})


WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ALL = ["length", "invalid_json", "empty", "tool_schema"]


def _call(args: str, name: str = "weather") -> list[dict[str, Any]]:
    return [{"id": "c", "type": "function", "function": {"name": name, "arguments": args}}]


@pytest.mark.parametrize(
    ("raw", "request_extra", "expected"),
    [
        (_answer("fine"), {}, None),
        (_answer("cut", "length"), {}, "length"),
        (_answer("  "), {}, "empty"),
        (_answer(None), {}, "empty"),
        (_answer("not json"), {"response_format": {"type": "json_object"}}, "invalid_json"),
        (_answer('{"ok": 1}'), {"response_format": {"type": "json_object"}}, None),
        (_answer(None, "tool_calls", _call('{"city": "Paris"}')), {"tools": [WEATHER]}, None),
        (_answer(None, "tool_calls", _call('{"town": "Paris"}')), {"tools": [WEATHER]}, "tool_schema"),
        (_answer(None, "tool_calls", _call('{"city": 3}')), {"tools": [WEATHER]}, "tool_schema"),
        (_answer(None, "tool_calls", _call("{broken")), {"tools": [WEATHER]}, "tool_schema"),
        (_answer(None, "tool_calls", _call("{}", "nope")), {"tools": [WEATHER]}, "tool_schema"),
    ],
)
def test_escalation_checks(raw: bytes, request_extra: dict[str, Any], expected: str | None) -> None:
    assert escalation_reason(raw, request_extra, ALL) == expected
    assert escalation_reason(raw, request_extra, []) is None


# ---- weighted round robin, on the strategies themselves ----

CTX = RouteContext({})


def _deps(weights: list[float]) -> list[Deployment]:
    cfg = ProviderConfig(style="openai", base_url="http://x")
    adapter = OpenAIAdapter("p", cfg)
    return [Deployment(f"p{i}", f"m{i}", adapter, Price(), w, Timeouts()) for i, w in enumerate(weights)]


@pytest.mark.parametrize(
    ("weights", "rounds", "expected"),
    [
        ([80, 20], 100, [80, 20]),
        ([1, 1, 1], 30, [10, 10, 10]),
        ([5, 0, 1], 60, [50, 0, 10]),
        ([0.7, 0.3], 10, [7, 3]),
    ],
)
def test_weighted_round_robin_is_exact(weights: list[float], rounds: int, expected: list[int]) -> None:
    deps = _deps(weights)
    strategy = Weighted(deps)
    firsts: Counter[str] = Counter(strategy.order(CTX)[0].provider for _ in range(rounds))
    assert [firsts[d.provider] for d in deps] == expected


def test_weighted_interleaves_and_lists_fallbacks() -> None:
    deps = _deps([80, 20])
    strategy = Weighted(deps)
    picks = [strategy.order(CTX) for _ in range(5)]
    assert [p[0].provider for p in picks].count("p1") == 1
    assert all({d.provider for d in p} == {"p0", "p1"} and len(p) == 2 for p in picks)
    assert [d.provider for d in Ordered(deps).order(CTX)] == ["p0", "p1"]


def test_weighted_peek_leaves_the_split_exact() -> None:
    deps = _deps([1, 1])
    strategy = Weighted(deps)
    firsts = []
    for _ in range(6):
        strategy.peek(CTX)  # used as another alias's fallback: must not advance the round-robin
        firsts.append(strategy.order(CTX)[0].provider)
    assert firsts.count("p0") == firsts.count("p1") == 3


# ---- through the gateway ----


@pytest.fixture(scope="module")
def routed(logs: Path) -> Iterator[tuple[Gateway, Mock]]:
    mock = start_mock("openai", logs)
    providers = {
        n: {"style": "openai", "base_url": f"{mock.url}/v1", "api_key": "sk-x"} for n in ("cheap", "strong")
    }
    providers["dead"] = {"style": "openai", "base_url": "http://127.0.0.1:1/v1", "api_key": "sk-x"}
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": providers,
        "models": {
            "chat": {
                "deployments": [
                    {"provider": "cheap", "model": "small", "price": {"input": 0.1, "output": 0.2}}
                ],
                "rules": [{"when": {"tags": ["batch"]}, "use": "batch"}],
                "escalate": {"to": "strong", "when": ["length", "empty"]},
            },
            "batch": {"deployments": [{"provider": "cheap", "model": "batch-model"}]},
            "hopeful": {
                "deployments": [{"provider": "cheap", "model": "small"}],
                "escalate": {"to": "gone", "when": ["length"]},
            },
            "gone": {"deployments": [{"provider": "dead", "model": "big"}], "max_attempts": 1},
            "strong": {
                "deployments": [{"provider": "strong", "model": "large", "price": {"input": 3, "output": 15}}]
            },
            "both": {
                "strategy": "ordered",
                "deployments": [
                    {"provider": "strong", "model": "large"},
                    {"provider": "cheap", "model": "small"},
                ],
            },
        },
    }
    gw = start_gateway(config, logs)
    yield gw, mock
    gw.stop()
    mock.stop()


def _sdk(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0)


def test_tag_header_routes_through_rule(routed: tuple[Gateway, Mock]) -> None:
    gw, _ = routed
    msg: list[Any] = [{"role": "user", "content": "summarise"}]
    raw = _sdk(gw).chat.completions.with_raw_response.create(
        model="chat", messages=msg, extra_headers={"x-hedge-tags": "nightly, batch"}
    )
    assert raw.headers["x-hedge-model"] == "batch-model"
    plain = _sdk(gw).chat.completions.with_raw_response.create(model="chat", messages=msg)
    assert plain.headers["x-hedge-model"] == "small"


def test_escalation_on_truncated_answer(routed: tuple[Gateway, Mock]) -> None:
    gw, _ = routed
    msg: list[Any] = [{"role": "user", "content": "a b c d e f g h"}]
    raw = _sdk(gw).chat.completions.with_raw_response.create(model="chat", messages=msg, max_tokens=3)
    assert raw.headers["x-hedge-escalated"] == "length -> strong"
    assert raw.headers["x-hedge-model"] == "large"
    assert raw.headers["x-hedge-attempts"] == "2"
    assert "escalate:length->strong" in raw.headers["x-hedge-route"]
    usage = raw.parse().usage
    assert usage is not None
    strong_cost = (usage.prompt_tokens * 3 + usage.completion_tokens * 15) / 1e6
    assert float(raw.headers["x-hedge-cost-usd"]) > strong_cost, "both attempts are paid for"
    fine = _sdk(gw).chat.completions.with_raw_response.create(model="chat", messages=msg)
    assert "x-hedge-escalated" not in fine.headers and fine.headers["x-hedge-model"] == "small"


def test_failed_escalation_keeps_the_first_answer(routed: tuple[Gateway, Mock]) -> None:
    gw, _ = routed
    msg: list[Any] = [{"role": "user", "content": "a b c d e f g h"}]
    raw = _sdk(gw).chat.completions.with_raw_response.create(model="hopeful", messages=msg, max_tokens=3)
    assert raw.headers["x-hedge-escalated"] == "length -> gone (failed; first answer kept)"
    assert raw.parse().choices[0].finish_reason == "length"
    assert raw.headers["x-hedge-model"] == "small"


def test_per_request_order_over_http(routed: tuple[Gateway, Mock]) -> None:
    gw, _ = routed
    msg: list[Any] = [{"role": "user", "content": "x"}]
    raw = _sdk(gw).chat.completions.with_raw_response.create(
        model="both", messages=msg, extra_body={"hedge": {"order": ["cheap"], "allow_fallbacks": False}}
    )
    assert raw.headers["x-hedge-provider"] == "cheap"
    with pytest.raises(openai.BadRequestError) as exc:
        _sdk(gw).chat.completions.create(
            model="both", messages=msg, extra_body={"hedge": {"sort": "fastest"}}
        )
    assert exc.value.param == "hedge.sort"


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ({"input": 1, "output": 2}, (100 * 1 + 10 * 2) / 1e6),
        # a cache write dearer than input, a reasoning price dearer than output
        ({"input": 1, "output": 2, "cache_write_input": 1.25, "reasoning": 3}, (100 * 1.25 + 10 * 3) / 1e6),
        # the long-context tier and the priority tier can cost more than the base price
        (
            {
                "input": 1,
                "output": 2,
                "tiers": [{"above_prompt_tokens": 50, "input": 2}],
                "service_tiers": {"priority": {"output": 4}},
            },
            (100 * 2 + 10 * 4) / 1e6,
        ),
        # a per-request fee is reserved too
        ({"input": 1, "output": 2, "per_request": 0.005}, (100 * 1 + 10 * 2) / 1e6 + 0.005),
    ],
)
def test_budget_reservation_assumes_the_dearest_dimension(price: dict[str, Any], expected: float) -> None:
    router = _router({"m": {"deployments": [{"provider": "a", "model": "x", "price": price}]}})
    ctx = router.context({"messages": [{"role": "user", "content": "x" * 384}], "max_tokens": 10})
    assert ctx.prompt_tokens == 100
    assert router.max_cost("m", ctx, 1024) == pytest.approx(expected)
