"""``hedge prices``: show the price catalogue, merge a newer one in, import a public price list, and
check that every deployment of a config has a price.

* ``hedge prices [--config F]``: the catalogue in use (table or JSON).
* ``hedge prices update --file F [--replace] [--dry-run]``: merge a catalogue file into the one in
  use (its models added or replaced, the others kept); ``--replace`` installs it as it is and warns
  naming every model that disappears.
* ``hedge prices import --format litellm|openrouter FILE_OR_URL [--only GLOB] [--dry-run]``: merge
  LiteLLM's ``model_prices_and_context_window.json`` or OpenRouter's ``/api/v1/models`` answer
  (:mod:`hedge.cost.formats`), prices and context windows, each price keeping ``source``/``as_of``.
* ``hedge prices check --config F``: name every deployment without a price (exit 1 if any), and
  warn about those whose upstream sent no usage for requests of the last 7 days (from the ledger).

Each change prints its diff first (``+`` added, ``~`` changed, ``-`` removed); ``--dry-run`` stops there.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from hedge.cli.tables import Col, fit_table
from hedge.config import Config, ConfigError, Price, load_config
from hedge.cost import catalogue
from hedge.cost.catalogue import Catalogue
from hedge.cost.formats import FORMATS, read_format
from hedge.gateway.runtime import database_url
from hedge.store import rollup
from hedge.store.db import connect
from hedge.store.schema import MIGRATIONS

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
HEADER = (
    "# Hedge price catalogue, installed by 'hedge prices update' / 'hedge prices import'.\n"
    "# USD per million tokens; each imported price names its source and as_of date.\n"
)


def amount(value: float) -> str:
    """A number as written, never rounded away: thousands separated, no trailing zeros."""
    if value == int(value) and abs(value) < 2**53:
        return f"{int(value):,}"
    return f"{value:,.12f}".rstrip("0").rstrip(".")


def _state_dir(args: argparse.Namespace) -> str:
    if args.config:
        return load_config(args.config).state.dir
    return str(args.dir)


def _fetch(where: str) -> bytes:
    """A price list from a file, or an http(s) URL (read at most :data:`MAX_DOWNLOAD_BYTES`)."""
    if where.startswith(("http://", "https://")):
        request = urllib.request.Request(where, headers={"accept": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            data: bytes = answer.read(MAX_DOWNLOAD_BYTES + 1)
        if len(data) > MAX_DOWNLOAD_BYTES:
            raise ValueError(f"{where}: larger than {MAX_DOWNLOAD_BYTES} bytes")
        return data
    return Path(where).read_bytes()


def _apply(args: argparse.Namespace, current: Catalogue, result: Catalogue, what: str) -> int:
    """Preview the change, then (unless ``--dry-run``) install it."""
    change = catalogue.diff(current, result)
    print(f"{what}: catalogue {current.version} -> {result.version}")
    for line in change.lines():
        print(line)
    if change.removed:
        print(
            f"hedge: warning: {len(change.removed)} model(s) disappear from the catalogue: "
            f"{', '.join(change.removed)}",
            file=sys.stderr,
        )
    if args.dry_run:
        print("dry run: nothing installed")
        return 0
    path = catalogue.install(result, _state_dir(args), HEADER)
    print(f"installed price catalogue version {result.version} ({len(result.prices)} models) in {path}")
    return 0


def _update(args: argparse.Namespace) -> int:
    current = catalogue.load(_state_dir(args))
    incoming = catalogue.read(args.file)
    if incoming.version < current.version:
        raise ValueError(
            f"{args.file}: version {incoming.version} is older than the catalogue in use ({current.version})"
        )
    if args.replace:
        result = Catalogue(incoming.version, incoming.prices, args.file, incoming.context_windows)
    else:
        result = catalogue.merge(current, incoming, args.file)
    return _apply(args, current, result, f"{'replace with' if args.replace else 'merge'} {args.file}")


def _import(args: argparse.Namespace) -> int:
    try:
        data = orjson.loads(_fetch(args.source))
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{args.source}: not JSON ({exc})") from None
    as_of = args.as_of or datetime.now(UTC).strftime("%Y-%m-%d")
    entries = read_format(args.format, data, f"{args.format}:{args.source}", as_of)
    if args.only:
        entries = {
            name: entry
            for name, entry in entries.items()
            if any(fnmatch.fnmatch(name.lower(), pattern.lower()) for pattern in args.only)
        }
    if not entries:
        raise ValueError(f"{args.source}: no token-priced models found (format {args.format})")
    current = catalogue.load(_state_dir(args))
    incoming = Catalogue(
        max(current.version, as_of),
        {name: price for name, (price, _) in entries.items()},
        f"{args.format}:{args.source}",
        {name: window for name, (_, window) in entries.items() if window is not None},
    )
    result = catalogue.merge(current, incoming, incoming.source)
    return _apply(args, current, result, f"import {len(entries)} models from {args.source}")


def _check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    cat = catalogue.load(config.state.dir)
    missing = catalogue.unpriced(config, cat)
    deployments = [(f"{d.provider}/{d.model}", d) for m in config.models.values() for d in m.deployments]
    seen: set[str] = set()
    for name, dep in deployments:
        if name in seen:
            continue
        seen.add(name)
        found = cat.lookup(dep.model)
        if dep.price is not None:
            where = "config"
        elif found is not None:
            where = f"catalogue ({found.source or cat.source}{', ' + found.as_of if found.as_of else ''})"
        else:
            where = "NO PRICE"
        print(f"  {name}: {where}")
    for line in _usage_missing(config):
        print(f"hedge: warning: {line}", file=sys.stderr)
    if missing:
        level = "error" if config.pricing.on_missing == "reject" else "warning"
        print(
            f"hedge: {level}: {catalogue.missing_prices(missing, config.pricing.on_missing)}", file=sys.stderr
        )
        return 0 if config.pricing.on_missing == "zero" else 1
    print(f"{args.config}: every deployment has a price (catalogue {cat.version})")
    return 0


USAGE_WINDOW_S = 7 * 86400


def _usage_missing(config: Config) -> list[str]:
    """The deployments whose upstream sent no usage for some requests in the last 7 days (from the
    ledger's hourly rollup): their tokens and cost are not what was billed."""

    async def query() -> list[dict[str, Any]]:
        db = await connect(database_url(config), config.state.db_timeout_s)
        try:
            await db.migrate(MIGRATIONS)
            return await db.fetch(
                f"SELECT provider, model, SUM(requests) AS requests, SUM(usage_missing) AS missing "
                f"FROM {rollup.BY_DEPLOYMENT.table} WHERE hour >= ? GROUP BY provider, model "
                "HAVING SUM(usage_missing) > 0 ORDER BY provider, model",
                [int(time.time() - USAGE_WINDOW_S) // rollup.HOUR * rollup.HOUR],
            )
        finally:
            await db.close()

    try:
        rows = asyncio.run(query())
    except Exception as exc:  # the check of prices must not fail for want of the ledger
        return [f"could not read the ledger for missing usage ({type(exc).__name__}: {exc})"]
    return [
        f"{r['provider']}/{r['model']}: {int(r['missing']):,} of {int(r['requests']):,} requests in the "
        "last 7 days came without usage from the upstream (booked as 0 tokens, flagged usage_missing)"
        for r in rows
    ]


def _list(args: argparse.Namespace) -> int:
    cat = catalogue.load(_state_dir(args))
    if args.format == "json":
        models: dict[str, Any] = {}
        for m, p in sorted(cat.prices.items()):
            models[m] = p.model_dump()
            if m in cat.context_windows:
                models[m]["context_window"] = cat.context_windows[m]
        print(orjson.dumps({"version": cat.version, "source": cat.source, "models": models}).decode())
        return 0
    # The model name is copied into configs, so it is never cut; the cache prices go first.
    columns = (
        Col("model", "id"),
        Col("input", "number", justify="right"),
        Col("output", "number", justify="right"),
        Col("cache\nread", "number", drop=2, justify="right"),
        Col("cache\nwrite", "number", drop=1, justify="right"),
    )

    def optional(price: Price, name: str) -> str:
        value = getattr(price, name)
        return amount(value) if value is not None else "-"

    rows = [
        [
            model,
            amount(p.input),
            amount(p.output),
            optional(p, "cached_input"),
            optional(p, "cache_write_input"),
        ]
        for model, p in sorted(cat.prices.items())
    ]
    console = Console()
    title = f"Price catalogue {cat.version} ({cat.source}), USD per 1M tokens"
    console.print(fit_table(console.width, columns, rows, title=title), crop=False)
    return 0


def _prices(args: argparse.Namespace) -> int:
    command = {"update": _update, "import": _import, "check": _check}.get(args.prices_command, _list)
    try:
        return command(args)
    except ConfigError as exc:
        print(f"hedge: config error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"hedge: {exc}", file=sys.stderr)
        return 2


def add_parser(sub: Any) -> None:
    prices = sub.add_parser("prices", help="show, merge, import and check the price catalogue")
    prices.add_argument("--config", help="config whose state.dir holds an installed catalogue")
    prices.add_argument("--dir", default=".hedge", help="state directory when no --config is given")
    prices.add_argument("--format", choices=["table", "json"], default="table")
    prices.set_defaults(func=_prices, prices_command="list")
    prices_sub = prices.add_subparsers(dest="prices_command")

    def where(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="config whose state.dir holds the installed catalogue")
        p.add_argument("--dir", default=".hedge", help="state directory when no --config is given")
        p.add_argument("--dry-run", action="store_true", help="show what would change; install nothing")

    update = prices_sub.add_parser("update", help="merge a catalogue file into the one in use")
    update.add_argument("--file", required=True)
    update.add_argument(
        "--replace", action="store_true", help="install the file as it is (models it lacks disappear)"
    )
    where(update)
    imports = prices_sub.add_parser("import", help="merge a LiteLLM or OpenRouter price list")
    imports.add_argument("--format", choices=FORMATS, required=True)
    imports.add_argument("source", metavar="FILE_OR_URL")
    imports.add_argument(
        "--only", action="append", metavar="GLOB", help="import only models matching (repeatable)"
    )
    imports.add_argument("--as-of", dest="as_of", help="the prices' date (default: today, UTC)")
    where(imports)
    check = prices_sub.add_parser("check", help="name every deployment of a config without a price")
    check.add_argument("--config", required=True)
