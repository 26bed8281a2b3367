"""Online A/B through the gateway: sticky arms, the experiment header, feedback only from the key
that made the request, per-arm results, and adaptive weights that converge under a fake clock."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import MASTER_KEY
from hedge.api.app import create_app
from hedge.cli.net import free_port, serve_in_loop
from hedge.config import parse_config
from hedge.experiments.service import Experiments
from hedge.gateway.runtime import Runtime, open_runtime
from hedge.mock.server import create_mock_app
from hedge.mock.state import Knobs

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
INTERVAL_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


def _config(upstream: int, tmp_path: Path, **experiment: Any) -> dict[str, Any]:
    base = f"http://127.0.0.1:{upstream}/v1"
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "big": {"style": "openai", "base_url": base, "api_key": "k"},
            "small": {"style": "openai", "base_url": base, "api_key": "k"},
        },
        "models": {
            "chat": {
                "deployments": [{"provider": "big", "model": "large", "price": {"input": 5, "output": 15}}]
            },
            "mini": {
                "deployments": [
                    {"provider": "small", "model": "mini", "price": {"input": 0.1, "output": 0.4}}
                ]
            },
        },
        "experiments": {
            "pick": {
                "alias": "chat",
                "arms": {"control": {"use": "chat", "weight": 90}, "cheap": {"use": "mini", "weight": 10}},
                "assign_by": "header:x-user",
                "metric": "thumbs",
                "margin": 0.1,
                "adaptive": {
                    "min_samples": 15,
                    "max_step": 20,
                    "control_floor": 10,
                    "confidence": 0.95,
                    "interval_s": INTERVAL_S,
                },
                **experiment,
            }
        },
        "state": {"dir": str(tmp_path), "flush_interval_s": 60},
    }


@dataclass
class Setup:
    client: httpx.AsyncClient
    experiments: Experiments
    clock: Clock
    key: str
    other_key: str
    config: dict[str, Any]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    upstream = free_port()
    raw = _config(upstream, tmp_path)
    config = parse_config(raw, "<test>")
    clock = Clock()
    experiments = Experiments(Runtime(config), clock=clock)
    app = create_app(config, experiments=experiments)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(serve_in_loop(create_mock_app("openai", Knobs()), upstream))
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=20)
        )
        keys = [
            (await client.post("/admin/keys", json={"name": n}, headers=AUTH)).json()["key"] for n in "ab"
        ]
        yield Setup(client, experiments, clock, keys[0], keys[1], raw)


async def _ask(s: Setup, user: str) -> tuple[str, str]:
    """One request as ``user``: (its request id, its arm)."""
    resp = await s.client.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "rate me"}]},
        headers={"Authorization": f"Bearer {s.key}", "x-user": user},
    )
    assert resp.status_code == 200, resp.text
    name, _, arm = resp.headers["x-hedge-experiment"].partition("/")
    assert name == "pick"
    assert resp.headers["x-hedge-model"] == {"control": "large", "cheap": "mini"}[arm]
    return resp.headers["x-hedge-request-id"], arm


async def _cli(*args: str) -> str:
    """``hedge experiments ARGS``' output, at 160 columns."""
    cmd = [sys.executable, "-m", "hedge", "experiments", *args]
    env = {**os.environ, "COLUMNS": "160"}
    done = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, check=True, env=env)
    return done.stdout


async def _rate(s: Setup, request_id: str, value: Any, key: str | None = None) -> httpx.Response:
    return await s.client.post(
        "/v1/feedback",
        json={"request_id": request_id, "metric": "thumbs", "value": value},
        headers={"Authorization": f"Bearer {key or s.key}"},
    )


async def test_arms_are_sticky_and_only_the_requesting_key_may_rate(setup: Setup) -> None:
    s = setup
    arms = {user: (await _ask(s, user))[1] for user in (f"user-{i}" for i in range(60))}
    assert set(arms.values()) == {"control", "cheap"}
    for user, arm in list(arms.items())[:10]:  # the same unit keeps its arm
        assert (await _ask(s, user))[1] == arm
    request_id, _ = await _ask(s, "user-0")

    assert (await _rate(s, request_id, True)).status_code == 200
    assert (await _rate(s, request_id, 0.5)).json()["value"] == 0.5  # the latest value wins
    refused = await _rate(s, request_id, True, key=s.other_key)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "request_not_found"
    assert (await _rate(s, request_id, True, key=MASTER_KEY)).status_code == 404
    assert (await _rate(s, "req_unknown", True)).status_code == 404
    for bad in ("yes", None, [1]):
        resp = await _rate(s, request_id, bad)
        assert resp.status_code == 400 and resp.json()["error"]["param"] == "value"
    overflow = json.dumps({"request_id": request_id, "metric": "thumbs", "value": 1}).replace(
        ": 1}", ": 1e999}"
    )
    resp = await s.client.post("/v1/feedback", content=overflow, headers={"Authorization": f"Bearer {s.key}"})
    assert resp.status_code == 400  # not a finite number
    resp = await s.client.post(
        "/v1/feedback",
        json={"request_id": request_id, "metric": "m" * 65, "value": 1},
        headers={"Authorization": f"Bearer {s.key}"},
    )
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "metric"
    assert (await s.client.post("/v1/feedback", json={"request_id": request_id})).status_code == 401


async def test_a_key_restricted_away_from_an_arm_stays_out_of_the_experiment(setup: Setup) -> None:
    s = setup
    made = await s.client.post("/admin/keys", json={"name": "chat-only", "models": ["chat"]}, headers=AUTH)
    key = made.json()["key"]
    for i in range(20):
        resp = await s.client.post(
            "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key}", "x-user": f"u{i}"},
        )
        assert resp.status_code == 200 and resp.headers["x-hedge-model"] == "large"
        assert "x-hedge-experiment" not in resp.headers  # not in it at all: on one arm only, a bias


async def test_feedback_moves_weights_to_the_cheap_arm_that_is_not_worse(
    setup: Setup, tmp_path: Path
) -> None:
    s = setup
    weights = [dict(s.experiments.weights["pick"])]
    assert weights[0] == pytest.approx({"control": 90.0, "cheap": 10.0})
    served: Counter[str] = Counter()
    for round_ in range(12):
        for i in range(60):
            request_id, arm = await _ask(s, f"r{round_}-u{i}")
            served[arm] += 1
            good = arm == "control" or served[arm] % 25 != 0  # cheap: 96 % thumbs up; control: all
            assert (await _rate(s, request_id, good)).status_code == 200
        s.clock.now += INTERVAL_S
        await s.experiments.tick()
        weights.append(dict(s.experiments.weights["pick"]))
        if weights[-1]["control"] == pytest.approx(10.0):
            break
    # Guardrails: never more than max_step at once, never below the control floor; it converged.
    steps = [abs(b["control"] - a["control"]) for a, b in itertools.pairwise(weights)]
    assert max(steps) <= 20.0 + 1e-6 and min(w["control"] for w in weights) >= 10.0 - 1e-6
    assert weights[-1] == pytest.approx({"control": 10.0, "cheap": 90.0})
    assert sum(1 for step in steps if step > 0) == 4  # 90 -> 70 -> 50 -> 30 -> 10

    report = (await s.client.get("/admin/experiments/pick", headers=AUTH)).json()
    assert report["recommended"] == "cheap"
    arms = {a["arm"]: a for a in report["arms"]}
    cheap, control = arms["cheap"], arms["control"]
    assert control["metric_mean"] == 1.0 and 0.9 < cheap["metric_mean"] < 1.0
    assert cheap["ci_low"] < cheap["metric_mean"] < cheap["ci_high"]
    assert cheap["diff_ci_low"] < cheap["diff_to_control"] < 0
    assert cheap["cost_per_request_usd"] < control["cost_per_request_usd"]
    assert cheap["savings_vs_control"] > 0.9 and cheap["latency_ms"] is not None
    assert cheap["n"] == served["cheap"] and control["n"] == served["control"]
    changes = report["changes"]
    assert len(changes) == 4 and changes[0]["weights"] == pytest.approx({"control": 10.0, "cheap": 90.0})
    evidence = changes[-1]["evidence"]  # the first change: why it moved
    assert evidence["target"] == "cheap" and evidence["arms"]["cheap"]["qualifies"] is True
    assert evidence["before"] == pytest.approx({"control": 90.0, "cheap": 10.0})

    listed = (await s.client.get("/admin/experiments", headers=AUTH)).json()
    assert [e["name"] for e in listed["experiments"]] == ["pick"] and listed["shadow"] == []
    assert (await s.client.get("/admin/experiments/nope", headers=AUTH)).status_code == 404
    assert (
        await s.client.get("/admin/experiments", headers={"Authorization": f"Bearer {s.key}"})
    ).status_code == 403

    # Another replica on the same database assigns with the same weights.
    replica = await open_runtime(parse_config(s.config, "<test>"))
    try:
        other = Experiments(replica)
        await other.refresh()
        assert other.weights["pick"] == pytest.approx(s.experiments.weights["pick"])
    finally:
        await replica.close()

    # The command line reports the same.
    path = tmp_path / "hedge.yaml"
    path.write_text(yaml.safe_dump(s.config))
    out = await _cli("report", "pick", "--config", str(path), "--format", "json")
    assert json.loads(out)["recommended"] == "cheap"
    table = await _cli("report", "pick", "--config", str(path))
    assert "recommended cheap" in table and "toward cheap" in table
    listing = await _cli("list", "--config", str(path))
    assert "Experiment pick on chat" in listing


async def test_a_cheap_arm_that_is_worse_loses_traffic(setup: Setup) -> None:
    s = setup
    served: Counter[str] = Counter()
    for round_ in range(6):
        for i in range(60):
            request_id, arm = await _ask(s, f"r{round_}-u{i}")
            served[arm] += 1
            good = arm == "control" or served[arm] % 2 == 0  # cheap: half as good
            await _rate(s, request_id, good)
        s.clock.now += INTERVAL_S
        await s.experiments.tick()
    assert s.experiments.weights["pick"] == pytest.approx({"control": 100.0, "cheap": 0.0})
    report = (await s.client.get("/admin/experiments/pick", headers=AUTH)).json()
    assert report["recommended"] == "control"
    assert {a["arm"]: a["qualifies"] for a in report["arms"]} == {"control": True, "cheap": False}
