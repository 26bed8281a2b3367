"""Shadow traffic through a real gateway: copies start only after the primary response is complete,
are graded against it, kept, and booked as their own spend line, never on the caller's key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conftest import MASTER_KEY
from hedge.api.app import create_app
from hedge.cli.net import free_port, serve_in_loop
from hedge.config import parse_config
from hedge.mock.server import create_mock_app
from hedge.mock.state import Knobs
from hedge.record import RequestRecord

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
PRICE = {"input": 2.0, "output": 8.0}


def _watch(
    app: ASGIApp,
    events: list[str],
    name: str,
    paths: tuple[str, ...],
    before_end: Callable[[], Awaitable[None]] | None = None,
) -> ASGIApp:
    """``app``, noting in ``events`` when a request to one of ``paths`` arrives and when its response
    is complete; ``before_end`` runs before the last body message is sent."""

    async def watched(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in paths:
            await app(scope, receive, send)
            return
        events.append(f"{name} request")

        async def sending(message: Message) -> None:
            last = message["type"] == "http.response.body" and not message.get("more_body", False)
            if last and before_end is not None:
                await before_end()
            await send(message)
            if last:
                events.append(f"{name} response complete")

        await app(scope, receive, sending)

    return watched


def _config(primary: int, candidate: int, tmp_path: Path, **shadow: Any) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "prod": {"style": "openai", "base_url": f"http://127.0.0.1:{primary}/v1", "api_key": "k"},
            "cand": {"style": "openai", "base_url": f"http://127.0.0.1:{candidate}/v1", "api_key": "k"},
        },
        "models": {
            "chat": {
                "deployments": [{"provider": "prod", "model": "m", "price": PRICE}],
                "shadow": [
                    # The same upstream model name: the mock gives the same answer, so it grades 1.0.
                    {"to": "twin", "sample": 1.0, "grader": "exact", **shadow},
                    # Another model answers differently: 0.0.
                    {"to": "cand/other", "sample": 1.0, "grader": "exact", **shadow},
                ],
            },
            "twin": {
                "deployments": [{"provider": "cand", "model": "m", "price": {"input": 0.1, "output": 0.4}}]
            },
            "other": {"deployments": [{"provider": "cand", "model": "other", "price": {"input": 0.1}}]},
        },
        "state": {"dir": str(tmp_path), "flush_interval_s": 0.05},
    }


Run = Callable[[dict[str, Any]], Awaitable[tuple[list[str], httpx.AsyncClient, openai.AsyncOpenAI]]]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Run]:
    """Starts mocks and a gateway in this process: the event log, an admin client and an SDK client."""
    async with AsyncExitStack() as stack:

        async def run(extra: dict[str, Any]) -> tuple[list[str], httpx.AsyncClient, openai.AsyncOpenAI]:
            events: list[str] = []
            primary, candidate, port = free_port(), free_port(), free_port()
            path = ("/v1/chat/completions",)
            await stack.enter_async_context(
                serve_in_loop(_watch(create_mock_app("openai", Knobs()), events, "primary", path), primary)
            )
            await stack.enter_async_context(
                serve_in_loop(
                    _watch(create_mock_app("openai", Knobs()), events, "candidate", path), candidate
                )
            )
            config = parse_config(_config(primary, candidate, tmp_path, **extra), "<test>")
            app = create_app(config)
            runtime = app.state.runtime
            started = runtime.started

            def starting(rec: RequestRecord) -> None:  # the pipeline has planned an attempt
                if rec.shadow:
                    events.append("shadow attempt starts")
                started(rec)

            runtime.started = starting

            async def settle() -> None:
                # A copy started on the primary's path would be under way by now: it waits for one
                # database read before its attempt, and these reads queue behind that one.
                for _ in range(3):
                    await runtime.db.fetch("SELECT 1")

            await stack.enter_async_context(
                serve_in_loop(_watch(app, events, "gateway", (*path, "/v1/messages"), settle), port)
            )
            admin = await stack.enter_async_context(
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=20)
            )
            key = (await admin.post("/admin/keys", json={"name": "app", "budget_usd": 10})).json()
            sdk = openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=key["key"], max_retries=0
            )
            stack.push_async_callback(sdk.close)
            return events, admin, sdk

        yield run


async def _pairs(admin: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    """The shadow summary once ``count`` pairs are stored (polled: the copies run in the background)."""
    for _ in range(400):
        shadow = (await admin.get("/admin/experiments")).json()["shadow"]
        if sum(p["pairs"] for p in shadow) >= count:
            return list(shadow)
        await asyncio.sleep(0.025)
    raise AssertionError(f"fewer than {count} shadow pairs stored: {shadow}")


async def test_shadow_pairs_are_graded_after_the_primary_and_booked_apart(gateway: Run) -> None:
    events, admin, sdk = await gateway({})
    body = {"model": "chat", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}
    whole = await sdk.chat.completions.with_raw_response.create(**body)  # type: ignore[call-overload]
    assert whole.headers["x-hedge-provider"] == "prod"
    await _pairs(admin, 2)
    # The copies reached the candidate only once the client had its whole response.
    assert events[:5] == [
        "gateway request",
        "primary request",
        "primary response complete",
        "gateway response complete",
        "shadow attempt starts",
    ]
    assert events.count("candidate request") == 2

    events.clear()
    stream = await sdk.chat.completions.create(stream=True, **body)  # type: ignore[call-overload]
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text
    shadow = await _pairs(admin, 4)
    assert events.index("gateway response complete") < events.index("shadow attempt starts")

    # The Anthropic dialect's answers are copied too (the pipeline's chat answer is the reference).
    events.clear()
    claude = anthropic.AsyncAnthropic(base_url=str(sdk.base_url).removesuffix("/v1/"), api_key=sdk.api_key)
    message = await claude.messages.create(
        model="chat", max_tokens=64, messages=[{"role": "user", "content": "What is 2 + 2?"}]
    )
    await claude.close()
    assert message.content[0].type == "text"
    shadow = await _pairs(admin, 6)
    assert events.index("gateway response complete") < events.index("shadow attempt starts")

    by_target = {p["target"]: p for p in shadow}
    assert set(by_target) == {"twin", "cand/other"}
    twin, other = by_target["twin"], by_target["cand/other"]
    assert (twin["pairs"], twin["graded"], twin["errors"], twin["score"]) == (3, 3, 0, 1.0)
    assert (other["pairs"], other["graded"], other["errors"], other["score"]) == (3, 3, 0, 0.0)
    assert twin["ci_low"] == pytest.approx(0.4385, abs=1e-4)  # Wilson for 3 of 3
    assert twin["shadow_cost_usd"] > 0 and twin["savings"] > 0.9

    spend = (await admin.get("/admin/spend", params={"by": "key"})).json()
    rows = {r["group"]: r for r in spend["rows"]}
    assert rows["(shadow)"]["requests"] == 6 and rows["(shadow)"]["cost_usd"] > 0
    assert rows["app"]["requests"] == 3  # the key's own line holds only its own requests
    assert spend["total"]["requests"] == 9
    shadow_cost = rows["(shadow)"]["cost_usd"]
    assert rows["app"]["cost_usd"] == pytest.approx(spend["total"]["cost_usd"] - shadow_cost)
    assert rows["app"]["cost_usd"] >= 3 * float(whole.headers["x-hedge-cost-usd"]) * 0.99


async def test_the_daily_cap_stops_shadow_copies(gateway: Run) -> None:
    events, admin, sdk = await gateway({"max_usd_per_day": 1e-9})
    body = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}
    await sdk.chat.completions.create(**body)  # type: ignore[call-overload]
    await _pairs(admin, 2)  # nothing spent yet today: both copies go, and their cost passes the cap
    for _ in range(3):
        await sdk.chat.completions.create(**body)  # type: ignore[call-overload]
    # The copies of these requests look up the day's spend and stop.
    for _ in range(400):
        overview = (await admin.get("/admin/experiments")).json()
        if overview["shadow_copies"]["capped"] == 6:
            break
        await asyncio.sleep(0.025)
    assert overview["shadow_copies"] == {"running": 0, "sent": 2, "dropped": 0, "capped": 6}
    assert sum(p["pairs"] for p in overview["shadow"]) == 2
    assert events.count("candidate request") == 2
