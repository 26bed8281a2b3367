"""``hedge demo``'s batch act: a few hundred requests that can wait, run in the batch lane.

Two batches through the Files and Batches API on alias ``nightly``, whose backup deployment has
two price windows: a discounted one open now, and a deeper discount starting in three hours. The
first batch is due in an hour, so the scheduler runs it at once in today's window; the second is
due in a day, so it waits for the cheaper window (the demo shows its plan, then cancels it). The
saving is against running the same lines interactively on the baseline (premium).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hedge.cli.tables import Col, fit_table

BACKUP_PRICE = {"input": 0.88, "output": 0.88}
NOW_PRICE = {"input": 0.44, "output": 0.44}
"""Today's off-peak discount, in force while the demo runs."""
LATER_PRICE = {"input": 0.22, "output": 0.22}
"""A deeper discount that opens in three hours."""


def _window(start: datetime, minutes: int) -> str:
    return f"{start:%H:%M}-{start + timedelta(minutes=minutes):%H:%M}"


def nightly_alias(now: datetime | None = None) -> dict[str, Any]:
    """The batch act's alias: windows relative to ``now`` (UTC), so the demo always shows both."""
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    return {
        "baseline": "premium",
        "deployments": [
            {
                "provider": "backup",
                "model": "llama-3.1-70b",
                "price": BACKUP_PRICE,
                "price_windows": [
                    {"window": _window(now - timedelta(minutes=1), 90), "price": NOW_PRICE},
                    {"window": _window(now + timedelta(hours=3), 120), "price": LATER_PRICE},
                ],
            }
        ],
    }


def _lines(count: int, prompts: list[str]) -> bytes:
    out = []
    for i in range(count):
        body = {
            "model": "nightly",
            "messages": [{"role": "user", "content": f"{prompts[i % len(prompts)]} (document {i})"}],
            "max_tokens": 64,
        }
        out.append(
            orjson.dumps(
                {"custom_id": f"doc-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
            )
        )
    return b"\n".join(out) + b"\n"


async def _batch(session: aiohttp.ClientSession, base: str, data: bytes, window: str) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("purpose", "batch")
    form.add_field("file", data, filename="nightly.jsonl", content_type="application/jsonl")
    async with session.post(f"{base}/v1/files", data=form) as resp:
        uploaded = await resp.json()
    create = {
        "input_file_id": uploaded["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": window,
    }
    async with session.post(f"{base}/v1/batches", json=create) as resp:
        batch: dict[str, Any] = await resp.json()
    return batch


async def _get(session: aiohttp.ClientSession, base: str, batch_id: str) -> dict[str, Any]:
    async with session.get(f"{base}/v1/batches/{batch_id}") as resp:
        batch: dict[str, Any] = await resp.json()
    return batch


async def batch_act(base: str, key: str, count: int, prompts: list[str], console: Console) -> bool:
    """Run the act against the gateway at ``base``; whether the due-soon batch completed."""
    headers = {"authorization": f"Bearer {key}"}
    data = _lines(count, prompts)
    async with aiohttp.ClientSession(headers=headers) as session:
        soon = await _batch(session, base, data, "1h")
        later = await _batch(session, base, data, "24h")
        started = time.perf_counter()
        with Progress(
            TextColumn("[bold]batch lane"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("lines", total=count)
            while True:
                soon = await _get(session, base, soon["id"])
                counts = soon["request_counts"]
                progress.update(task, completed=counts["completed"] + counts["failed"])
                if soon["status"] in ("completed", "failed", "expired", "cancelled"):
                    break
                if time.perf_counter() - started > 300:
                    break
                await asyncio.sleep(0.2)
        later = await _get(session, base, later["id"])
        async with session.post(f"{base}/v1/batches/{later['id']}/cancel") as resp:
            await resp.read()

    columns = (
        Col("batch", "id"),
        Col("due in", "id"),
        Col("status", "id"),
        Col("cost (USD)", "number", justify="right"),
        Col("interactive on premium", "number", justify="right", drop=2),
        Col("saving", "number", justify="right"),
        Col("plan", "text", drop=1, squeeze=24),
    )
    rows = []
    for batch, due in ((soon, "1 hour"), (later, "24 hours")):
        h = batch["hedge"]
        plan = h["plan"] or {}
        rows.append(
            [
                batch["id"],
                due,
                batch["status"],
                f"{h['cost_usd']:.6f}",
                f"{h['baseline_cost_usd']:.6f}" if h["baseline_cost_usd"] else "-",
                f"{h['savings_usd']:.6f}" if h["baseline_cost_usd"] else "-",
                str(plan.get("reason", "-")),
            ]
        )
    table = fit_table(
        console.width, columns, rows, title=f"The batch lane: {count} requests on alias 'nightly'", caption=""
    )
    console.print(table)
    h = soon["hedge"]
    base_cost, cost = h["baseline_cost_usd"], h["cost_usd"]
    if base_cost:
        share = (base_cost - cost) / base_cost * 100
        console.print(
            f"The batch due in an hour ran at once in today's off-peak window: [bold]{cost:.6f} USD[/] "
            f"against [bold]{base_cost:.6f} USD[/] interactively on premium, saving "
            f"[bold green]{base_cost - cost:.6f} USD ({share:.1f}%)[/]."
        )
    waiting = (later["hedge"]["plan"] or {}).get("reason", "-")
    console.print(f"The batch due in a day: {waiting} (cancelled here: the demo does not wait for it).")
    return bool(soon["status"] == "completed")
