"""The dashboard's Experiments panel, in a browser: per-arm results with the recommendation, and
the shadow pairs, as ``/admin/dashboard/experiments`` gives them."""

from __future__ import annotations

import asyncio
import shutil
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import MASTER_KEY
from hedge.api.app import create_app
from hedge.cli.net import free_port, serve_in_loop
from hedge.config import parse_config
from hedge.mock.server import create_mock_app
from hedge.mock.state import Knobs

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def _config(upstream: int, tmp_path: Path) -> dict[str, Any]:
    base = f"http://127.0.0.1:{upstream}/v1"
    return {
        "server": {"master_key": MASTER_KEY},
        "providers": {"p": {"style": "openai", "base_url": base, "api_key": "k"}},
        "models": {
            "chat": {
                "deployments": [{"provider": "p", "model": "big", "price": {"input": 5, "output": 15}}],
                "shadow": [{"to": "mini", "sample": 1.0, "grader": "contains"}],
            },
            "mini": {
                "deployments": [{"provider": "p", "model": "mini", "price": {"input": 0.1, "output": 0.4}}]
            },
        },
        "experiments": {
            "trial": {
                "alias": "chat",
                "arms": {"control": {"use": "chat", "weight": 50}, "small": {"use": "mini", "weight": 50}},
                "assign_by": "user",
                "metric": "ok",
                "bar": 0.5,
            }
        },
        "state": {"dir": str(tmp_path)},
    }


def _browse(url: str) -> dict[str, Any]:
    from playwright import sync_api

    path = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
    if not path:
        pytest.skip("chromium not found (/usr/bin/chromium); .ci/run installs it with apt-get")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            errors: list[str] = []
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/ui")
            page.fill("#login-key", MASTER_KEY)
            page.click("#login-submit")
            page.wait_for_selector("body[data-loaded]")
            shown = {
                "note": page.text_content("#experiments-note"),
                "recommended": page.text_content("#experiments .recommended"),
                "arms": [
                    page.locator(f'#experiments tr[data-arm="{arm}"] td').all_text_contents()
                    for arm in ("control", "small")
                ],
                "shadow": page.locator('#experiments tr[data-target="mini"] td').all_text_contents(),
                "errors": errors,
            }
            return shown
        finally:
            browser.close()


async def test_the_experiments_panel_shows_arms_and_shadow_pairs(tmp_path: Path) -> None:
    upstream, port = free_port(), free_port()
    app = create_app(parse_config(_config(upstream, tmp_path), "<test>"))
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(serve_in_loop(create_mock_app("openai", Knobs()), upstream))
        await stack.enter_async_context(serve_in_loop(app, port))
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=20)
        )
        on_control = 0
        for i in range(40):
            resp = await client.post(
                "/v1/chat/completions",
                json={"model": "chat", "user": f"u{i}", "messages": [{"role": "user", "content": "hi"}]},
            )
            rid = resp.headers["x-hedge-request-id"]
            on_control += resp.headers["x-hedge-experiment"] == "trial/control"
            await client.post("/v1/feedback", json={"request_id": rid, "metric": "ok", "value": True})
        for _ in range(400):  # the shadow copies of control's requests run in the background
            data = (await client.get("/admin/dashboard/experiments")).json()
            if data["shadow"] and data["shadow"][0]["pairs"] == on_control:
                break
            await asyncio.sleep(0.025)
        shown = await asyncio.to_thread(_browse, f"http://127.0.0.1:{port}")
    report = data["experiments"][0]
    assert shown["errors"] == []
    assert shown["recommended"] == report["recommended"] == "small"
    arms = {a["arm"]: a for a in report["arms"]}
    control, small = shown["arms"]
    assert control[0] == "control" and small[0] == "small ★"
    assert small[3] == str(arms["small"]["n"]) and control[3] == str(arms["control"]["n"])
    assert small[4].startswith("1.000 [") and "✓ qualifies" in small[-1]
    assert shown["shadow"][:3] == ["chat", "mini", "contains"]
    assert shown["shadow"][3] == str(data["shadow"][0]["pairs"])
    # Requests the cheap arm served (by the shadow target itself) were not copied to it.
    assert data["shadow_copies"]["sent"] == on_control == arms["control"]["requests"] < 40
    assert "1 experiment" in shown["note"]
