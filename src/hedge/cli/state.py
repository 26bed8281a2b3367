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
import sys
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from hedge.access.keys import KeyStore, VirtualKey
from hedge.config import ConfigError, load_config
from hedge.cost import catalogue
from hedge.gateway.runtime import database_url
from hedge.store.db import Database, connect
from hedge.store.ledger import GROUPS, Ledger, parse_since
from hedge.store.responses import ResponseStore
from hedge.store.schema import MIGRATIONS


async def _open(config_path: str) -> Database:
    config = load_config(config_path)
    db = await connect(database_url(config))
    await db.migrate(MIGRATIONS)
    return db


def _key_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in ("name", "team", "models", "budget_usd", "budget_period", "rpm", "tpm", "expires"):
        value = getattr(args, name, None)
        if value is not None:
            fields["expires_at" if name == "expires" else name] = value
    return fields


def _key_table(keys: list[VirtualKey], console: Console) -> None:
    table = Table()
    for col in ("id", "name", "team", "prefix", "models", "budget", "rpm", "tpm", "expires", "status"):
        table.add_column(col)
    for k in keys:
        budget = f"{k.budget_usd:g} USD/{k.budget_period}" if k.budget_usd is not None else "-"
        table.add_row(
            k.id,
            k.name,
            k.team or "-",
            k.key_prefix,
            ",".join(k.models) if k.models else "all",
            budget,
            str(k.rpm or "-"),
            str(k.tpm or "-"),
            _when(k.expires_at),
            "revoked" if k.revoked_at else "active",
        )
    console.print(table)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


async def _keys(args: argparse.Namespace) -> int:
    db = await _open(args.config)
    store = KeyStore(db)
    console = Console()
    try:
        if args.keys_command == "create":
            key, secret = await store.create(_key_fields(args))
            if args.json:
                print(orjson.dumps({**key.public(), "key": secret}).decode())
            else:
                console.print(f"Created key [bold]{key.id}[/] ({key.name}). Its secret is shown only once:")
                print(secret)
            return 0
        if args.keys_command == "list":
            keys = await store.list()
            if args.json:
                print(orjson.dumps([k.public() for k in keys]).decode())
            else:
                _key_table(keys, console)
            return 0
        if args.keys_command == "update":
            updated = await store.update(args.id, _key_fields(args))
        else:
            updated = await store.revoke(args.id)
        if updated is None:
            print(f"hedge: no key with id {args.id!r}", file=sys.stderr)
            return 1
        if args.json:
            print(orjson.dumps(updated.public()).decode())
        else:
            _key_table([updated], console)
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
            "cost_usd",
            "baseline_cost_usd",
            "savings_usd",
        ]
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        for r in [*rows, total]:
            writer.writerow(r.to_dict())
        sys.stdout.write(out.getvalue())
    else:
        table = Table(title=f"Spend by {args.by} since {args.since}")
        for col in (
            args.by,
            "requests",
            "input tok",
            "output tok",
            "cost USD",
            "baseline USD",
            "savings USD",
        ):
            table.add_column(col, justify="left" if col == args.by else "right")
        for i, r in enumerate([*rows, total]):
            if i == len(rows):
                table.add_section()
            table.add_row(
                r.group,
                str(r.requests),
                str(r.input_tokens),
                str(r.output_tokens),
                f"{r.cost_usd:.6f}",
                f"{r.baseline_cost_usd:.6f}",
                f"{r.savings_usd:.6f}",
            )
        Console().print(table)
    return 0


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


def _state_dir(args: argparse.Namespace) -> str:
    if args.config:
        return load_config(args.config).state.dir
    return str(args.dir)


def _prices(args: argparse.Namespace) -> int:
    try:
        if args.prices_command == "update":
            cat = catalogue.install(args.file, _state_dir(args))
            print(f"installed price catalogue version {cat.version} ({len(cat.prices)} models)")
            return 0
        cat = catalogue.load(_state_dir(args))
    except ConfigError as exc:
        print(f"hedge: config error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"hedge: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        prices = {m: p.model_dump() for m, p in sorted(cat.prices.items())}
        print(orjson.dumps({"version": cat.version, "source": cat.source, "models": prices}).decode())
        return 0
    table = Table(title=f"Price catalogue {cat.version} ({cat.source}), USD per 1M tokens")
    for col in ("model", "input", "output", "cached input"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for model, price in sorted(cat.prices.items()):
        cached = f"{price.cached_input:g}" if price.cached_input is not None else "-"
        table.add_row(model, f"{price.input:g}", f"{price.output:g}", cached)
    Console().print(table)
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


def add_parsers(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list, update and revoke virtual keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", required=True, help="the gateway's YAML config (names the state store)")
        p.add_argument("--json", action="store_true", help="print JSON")

    def limits(p: argparse.ArgumentParser) -> None:
        p.add_argument("--team")
        p.add_argument("--models", help="comma-separated aliases this key may use (default: all)")
        p.add_argument("--budget-usd", dest="budget_usd", type=float)
        p.add_argument("--budget-period", dest="budget_period", choices=["day", "week", "month", "total"])
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

    prices = sub.add_parser("prices", help="show the price catalogue, or install a newer one")
    prices.add_argument("--config", help="config whose state.dir holds an installed catalogue")
    prices.add_argument("--dir", default=".hedge", help="state directory when no --config is given")
    prices.add_argument("--format", choices=["table", "json"], default="table")
    prices.set_defaults(func=_prices, prices_command="list")
    prices_sub = prices.add_subparsers(dest="prices_command")
    update = prices_sub.add_parser("update", help="validate and install a newer catalogue file")
    update.add_argument("--file", required=True)
    update.add_argument("--config")
    update.add_argument("--dir", default=".hedge")
