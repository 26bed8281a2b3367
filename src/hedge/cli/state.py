"""``hedge keys``, ``hedge spend``, ``hedge prices`` and ``hedge responses``: the state store from the
command line.

They open the database the config names (the same one ``hedge serve`` uses), so
they work with the gateway running or not.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import math
import sys
import time
from argparse import SUPPRESS
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.table import Table

from hedge.access.keys import KeyStore, VirtualKey
from hedge.cli.tables import Col, fit_table
from hedge.config import ConfigError, load_config
from hedge.gateway.runtime import database_url
from hedge.store import rollup
from hedge.store.db import Database, connect
from hedge.store.ledger import CHARGES, GROUPS, Ledger, SpendRow, parse_since
from hedge.store.responses import ResponseStore
from hedge.store.schema import MIGRATIONS


async def _open(config_path: str) -> Database:
    config = load_config(config_path)
    db = await connect(database_url(config))
    await db.migrate(MIGRATIONS)
    return db


def _key_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in (
        "name",
        "team",
        "models",
        "budget_usd",
        "budget_period",
        "hard_budget_usd",
        "budget_fallback",
        "rpm",
        "tpm",
        "expires",
    ):
        value = getattr(args, name, None)
        if value is not None:
            fields["expires_at" if name == "expires" else name] = value
    return fields


def amount(value: float) -> str:
    """A number as written, never rounded away: thousands separated, no trailing zeros."""
    if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
        return f"{int(value):,}"
    return f"{value:,.12f}".rstrip("0").rstrip(".")


def _status(k: VirtualKey, now: float) -> str:
    if k.revoked_at:
        return "revoked"
    if k.expires_at is not None and k.expires_at <= now:
        return "expired"
    return "active"


def _key_json(k: VirtualKey, now: float) -> dict[str, Any]:
    """What ``--format json`` prints for a key: the admin API's fields, and the table's status."""
    return {**k.public(), "status": _status(k, now)}


# A key list must keep the id whole (it is what update and revoke take), its name and its status.
# Left out first when narrow: the prefix (it only matches a secret you hold; the id names the key),
# then the expiry (an expired key says so in status), the token and request rate limits, the team
# (a reporting label), the models the key may use, and last its budget.
KEY_COLUMNS = (
    Col("id", "id"),
    Col("name", squeeze=12),
    Col("team", drop=5),
    Col("prefix", "id", drop=1),
    Col("models", drop=6),
    Col("budget\nUSD", "number", drop=7, justify="right"),
    Col("rpm", "number", drop=4, justify="right"),
    Col("tpm", "number", drop=3, justify="right"),
    Col("expires", drop=2),
    Col("status", "id"),
)


def _key_table(keys: list[VirtualKey], console: Console, now: float) -> None:
    rows = []
    for k in keys:
        budget = f"{amount(k.budget_usd)}/{k.budget_period}" if k.budget_usd is not None else "-"
        rows.append(
            [
                k.id,
                k.name,
                k.team or "-",
                k.key_prefix,
                ", ".join(k.models) if k.models else "all",
                budget,
                amount(k.rpm) if k.rpm else "-",
                amount(k.tpm) if k.tpm else "-",
                _when(k.expires_at),
                _status(k, now),
            ]
        )
    console.print(fit_table(console.width, KEY_COLUMNS, rows), crop=False)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


async def _keys(args: argparse.Namespace) -> int:
    db = await _open(args.config)
    store = KeyStore(db, aliases=load_config(args.config).models)
    console = Console()
    now = time.time()
    json_out = args.format == "json"
    try:
        if args.keys_command == "create":
            key, secret = await store.create(_key_fields(args))
            if json_out:
                print(orjson.dumps({**_key_json(key, now), "key": secret}).decode())
            else:
                console.print(f"Created key [bold]{key.id}[/] ({key.name}). Its secret is shown only once:")
                print(secret)
            return 0
        if args.keys_command == "list":
            keys = await store.list()
            if json_out:
                print(orjson.dumps([_key_json(k, now) for k in keys]).decode())
            else:
                _key_table(keys, console, now)
            return 0
        if args.keys_command == "update":
            updated = await store.update(args.id, _key_fields(args))
        else:
            updated = await store.revoke(args.id)
        if updated is None:
            print(f"hedge: no key with id {args.id!r}", file=sys.stderr)
            return 1
        if json_out:
            print(orjson.dumps(_key_json(updated, now)).decode())
        else:
            _key_table([updated], console, now)
        return 0
    finally:
        await db.close()


async def _spend(args: argparse.Namespace) -> int:
    db = await _open(args.config)
    try:
        rows, total = await Ledger(db).spend(args.by, parse_since(args.since))
    finally:
        await db.close()
    if args.format == "json":
        print(orjson.dumps({"rows": [r.to_dict() for r in rows], "total": total.to_dict()}).decode())
    elif args.format == "csv":
        out = io.StringIO()
        fields = [
            "group",
            "requests",
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "cost_usd",
            "baseline_cost_usd",
            "savings_usd",
            *(f"{name}_cost_usd" for name in CHARGES),
            "price_missing",
            "usage_missing",
        ]
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        for r in [*rows, total]:
            row = r.to_dict()
            charges = row.pop("charges_usd")
            row.update({f"{name}_cost_usd": charges.get(name, 0.0) for name in CHARGES})
            writer.writerow(row)
        sys.stdout.write(out.getvalue())
    else:
        console = Console()
        console.print(_spend_table(args.by, args.since, rows, total, console.width), crop=False)
        for line in spend_notes(total):
            console.print(line, highlight=False, markup=False)
    return 0


_CHARGE_NAMES = {
    "input": "input",
    "cache_read": "cache reads",
    "cache_write": "cache writes",
    "output": "output",
    "reasoning": "reasoning",
    "request": "request fees",
    "unsplit": "not split (older rows)",
}


def spend_notes(total: SpendRow) -> list[str]:
    """Where the money went (by token class), and the requests whose cost is not what they cost."""
    parts = [f"{_CHARGE_NAMES[k]} {v:,.6f}" for k, v in total.charges.items() if v]
    notes = [f"Where it went (USD): {' · '.join(parts)}"] if parts else []
    if total.cached_tokens or total.cache_write_tokens or total.reasoning_tokens:
        notes.append(
            f"Of the input tokens {total.cached_tokens:,} were cache reads and {total.cache_write_tokens:,} "
            f"cache writes; of the output tokens {total.reasoning_tokens:,} were reasoning."
        )
    if total.price_missing:
        notes.append(
            f"Warning: {total.price_missing:,} requests were booked at 0 USD because their deployment has "
            "no price ('hedge prices check --config F' names them)."
        )
    if total.usage_missing:
        notes.append(f"Warning: {total.usage_missing:,} requests had no usage from their upstream.")
    return notes


def _spend_table(by: str, since: str, rows: list[SpendRow], total: SpendRow, width: int) -> Table:
    # The group, what it cost and what it saved always show. Left out first when narrow: the
    # baseline (cost plus savings), then the token counts, then the request count.
    columns = (
        Col(by, squeeze=16),
        Col("requests", "number", drop=4, justify="right"),
        Col("input\ntokens", "number", drop=2, justify="right"),
        Col("output\ntokens", "number", drop=3, justify="right"),
        Col("cost\nUSD", "number", justify="right"),
        Col("baseline\nUSD", "number", drop=1, justify="right"),
        Col("savings\nUSD", "number", justify="right"),
    )

    def cells(r: SpendRow) -> list[str]:
        return [
            r.group,
            f"{r.requests:,}",
            f"{r.input_tokens:,}",
            f"{r.output_tokens:,}",
            f"{r.cost_usd:,.6f}",
            f"{r.baseline_cost_usd:,.6f}",
            f"{r.savings_usd:,.6f}",
        ]

    return fit_table(
        width,
        columns,
        [cells(r) for r in rows],
        footer=cells(total),
        title=f"Spend by {by} since {since}",
        box=box.SIMPLE,
    )


async def _responses(args: argparse.Namespace) -> int:
    """``hedge responses prune``: delete stored Responses API responses past their retention."""
    days = args.days if args.days is not None else load_config(args.config).state.responses_retention_days
    if not days > 0:
        raise ValueError("--days must be a positive number of days")
    db = await _open(args.config)
    try:
        count = await ResponseStore(db, days).prune()
    finally:
        await db.close()
    print(f"pruned {count} stored response{'' if count == 1 else 's'} older than {days:g} days")
    return 0


async def _rollups(args: argparse.Namespace) -> int:
    """``hedge rollups rebuild``: recompute the hourly rollups from the ledger."""
    db = await _open(args.config)
    started = time.perf_counter()
    try:
        await db.transaction(rollup.rebuild_statements(db.dialect))
        rows = await db.fetch(f"SELECT COUNT(*) AS n, SUM(requests) AS requests FROM {rollup.TABLE}")
        keyed = await db.fetch(f"SELECT COUNT(*) AS n FROM {rollup.BY_KEY.table}")
    finally:
        await db.close()
    print(
        f"rebuilt {rows[0]['n'] or 0} + {keyed[0]['n'] or 0} hourly rollup rows from "
        f"{rows[0]['requests'] or 0} requests "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


def run(coro_fn: Any, args: argparse.Namespace) -> int:
    try:
        code: int = asyncio.run(coro_fn(args))
        return code
    except ConfigError as exc:
        print(f"hedge: config error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"hedge: {exc}", file=sys.stderr)
        return 2


def budget_options(p: argparse.ArgumentParser) -> None:
    """The options of a budget that degrades (keys and teams alike)."""
    p.add_argument(
        "--hard-budget-usd",
        dest="hard_budget_usd",
        type=float,
        help="refuse requests (429) past this spend, fallback or not",
    )
    p.add_argument(
        "--budget-fallback",
        dest="budget_fallback",
        metavar="ALIAS",
        help="past --budget-usd, serve requests with this (cheaper) alias instead of refusing them",
    )


def add_parsers(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list, update and revoke virtual keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", required=True, help="the gateway's YAML config (names the state store)")
        p.add_argument(
            "--format",
            choices=["table", "json"],
            default="table",
            help="table (default), or JSON: the key's fields (a list of them for list), with its status",
        )
        p.add_argument(
            "--json",
            dest="format",
            action="store_const",
            const="json",
            default=SUPPRESS,
            help="same as --format json",
        )

    def limits(p: argparse.ArgumentParser) -> None:
        p.add_argument("--team")
        p.add_argument("--models", help="comma-separated aliases this key may use (default: all)")
        p.add_argument("--budget-usd", dest="budget_usd", type=float)
        p.add_argument("--budget-period", dest="budget_period", choices=["day", "week", "month", "total"])
        budget_options(p)
        p.add_argument("--rpm", type=int, help="requests per minute")
        p.add_argument("--tpm", type=int, help="tokens per minute")
        p.add_argument("--expires", help="epoch seconds, ISO date/time, or a duration like 30d")

    create = keys_sub.add_parser("create", help="create a key; its secret is printed once")
    common(create)
    create.add_argument("--name", required=True)
    limits(create)
    listing = keys_sub.add_parser("list", help="list keys (never their secrets)")
    common(listing)
    update = keys_sub.add_parser("update", help="change a key's limits")
    common(update)
    update.add_argument("id")
    update.add_argument("--name")
    limits(update)
    revoke = keys_sub.add_parser("revoke", help="revoke a key for good")
    common(revoke)
    revoke.add_argument("id")
    keys.set_defaults(func=lambda a: run(_keys, a))

    spend = sub.add_parser("spend", help="cost, tokens and savings from the ledger")
    spend.add_argument("--config", required=True)
    spend.add_argument("--by", choices=GROUPS, default="provider")
    spend.add_argument("--since", default="7d", help="how far back: 7d, 24h, 30m, or epoch seconds")
    spend.add_argument("--format", choices=["table", "json", "csv"], default="table")
    spend.set_defaults(func=lambda a: run(_spend, a))

    rollups = sub.add_parser("rollups", help="the ledger's hourly rollups (spend reports, the dashboard)")
    rollups_sub = rollups.add_subparsers(dest="rollups_command", required=True)
    rebuild = rollups_sub.add_parser("rebuild", help="recompute them from the ledger")
    rebuild.add_argument("--config", required=True, help="the gateway's YAML config (names the state store)")
    rollups.set_defaults(func=lambda a: run(_rollups, a))

    responses = sub.add_parser("responses", help="stored Responses API responses (/v1/responses)")
    responses_sub = responses.add_subparsers(dest="responses_command", required=True)
    prune = responses_sub.add_parser("prune", help="delete responses older than the retention period")
    prune.add_argument("--config", required=True, help="the gateway's YAML config (names the state store)")
    prune.add_argument(
        "--days",
        type=float,
        help="delete responses older than this (default: state.responses_retention_days)",
    )
    responses.set_defaults(func=lambda a: run(_responses, a))
