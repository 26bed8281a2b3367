"""``hedge batches list|show|cancel``: the batch lane from the command line.

Opens the state database the config names (as ``hedge keys`` does), so it sees every key's
batches and works with the gateway running or not; a cancel is carried out by a running
gateway's batch worker (lines in flight are answered, waiting ones are not run).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson
from rich.console import Console

from hedge.batch.store import BatchRow, BatchStore, Counts, batch_object
from hedge.cli.state import _open, _when, amount, run
from hedge.cli.tables import Col, fit_table

COLUMNS = (
    Col("id", "id"),
    Col("status", "id"),
    Col("endpoint", "text", drop=3),
    Col("model", "id", drop=4),
    Col("done", "number", justify="right"),
    Col("failed", "number", justify="right"),
    Col("total", "number", justify="right"),
    Col("cost $", "number", justify="right"),
    Col("saved $", "number", justify="right", drop=2),
    Col("deadline", "text", drop=1),
)


def _row(batch: BatchRow, counts: Counts) -> list[str]:
    return [
        batch.id,
        batch.status,
        batch.endpoint,
        batch.model or "-",
        amount(counts.completed),
        amount(counts.failed),
        amount(counts.total),
        f"{counts.cost_usd:.6f}",
        f"{counts.baseline_cost_usd - counts.cost_usd:.6f}",
        _when(batch.deadline),
    ]


def _show(batch: BatchRow, counts: Counts, console: Console) -> None:
    console.print(fit_table(console.width, COLUMNS, [_row(batch, counts)]), crop=False)
    plan = batch.plan or {}
    if plan:
        console.print(f"plan: {plan.get('reason', '-')} (from {_when(plan.get('start_at'))})")
    lines = ", ".join(f"{state} {amount(n)}" for state, n in sorted(counts.by_state.items()))
    console.print(f"lines: {lines or '-'}")
    files = [f"output {batch.output_file_id}" if batch.output_file_id else "", ""]
    if batch.error_file_id:
        files[1] = f"errors {batch.error_file_id}"
    shown = ", ".join(f for f in files if f)
    if shown:
        console.print(f"files: {shown}")


async def _batches(args: argparse.Namespace) -> int:
    db = await _open(args.config)
    store = BatchStore(db)
    console = Console()
    json_out = args.format == "json"
    try:
        if args.batches_command == "list":
            batches, _ = await store.list_batches(None, None, args.limit)
            pairs = [(b, await store.counts(b.id)) for b in batches]
            if json_out:
                print(orjson.dumps([batch_object(b, c) for b, c in pairs]).decode())
            else:
                console.print(fit_table(console.width, COLUMNS, [_row(b, c) for b, c in pairs]), crop=False)
            return 0
        batch = await store.get_batch(args.id)
        if batch is None:
            print(f"hedge: no batch with id {args.id!r}", file=sys.stderr)
            return 1
        if args.batches_command == "cancel" and not await store.cancel(batch, time.time()):
            print(f"hedge: batch {batch.id} is {batch.status}: it cannot be cancelled", file=sys.stderr)
            return 1
        counts = await store.counts(batch.id)
        if json_out:
            print(orjson.dumps(batch_object(batch, counts)).decode())
        else:
            _show(batch, counts, console)
        return 0
    finally:
        await db.close()


def add_parser(sub: Any) -> None:
    batches = sub.add_parser("batches", help="list, show and cancel batches (/v1/batches)")
    batches_sub = batches.add_subparsers(dest="batches_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", required=True, help="the gateway's YAML config (names the state store)")
        p.add_argument("--format", choices=["table", "json"], default="table", help="output format")

    listing = batches_sub.add_parser("list", help="the newest batches, every key's")
    listing.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    common(listing)
    for name, text in (("show", "one batch: progress, cost, plan, files"), ("cancel", "cancel a batch")):
        p = batches_sub.add_parser(name, help=text)
        p.add_argument("id", help="the batch id (batch_...)")
        common(p)
    batches.set_defaults(func=lambda a: run(_batches, a))
