"""``hedge teams create|list|update``: team budgets, shared by every key whose ``team`` is the name.

Like ``hedge keys``, it opens the database the config names, so it works with the gateway running
or not; a running gateway sees a change within ``state.key_cache_ttl_s``.
"""

from __future__ import annotations

import argparse
import sys
from argparse import SUPPRESS
from typing import Any

import orjson
from rich.console import Console

from hedge.access.teams import TEAM_FIELDS, Team, TeamExists, TeamStore
from hedge.cli.state import _open, amount, budget_options, run
from hedge.cli.tables import Col, fit_table
from hedge.config import load_config

TEAM_COLUMNS = (
    Col("name", "id"),
    Col("budget\nUSD", "number", justify="right"),
    Col("hard\nUSD", "number", drop=2, justify="right"),
    Col("fallback", drop=1),
)


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    return {f: getattr(args, f) for f in TEAM_FIELDS if getattr(args, f, None) is not None}


def _table(teams: list[Team], console: Console) -> None:
    rows = [
        [
            t.name,
            f"{amount(t.budget_usd)}/{t.budget_period}" if t.budget_usd is not None else "-",
            amount(t.hard_budget_usd) if t.hard_budget_usd is not None else "-",
            t.budget_fallback or "-",
        ]
        for t in teams
    ]
    console.print(fit_table(console.width, TEAM_COLUMNS, rows), crop=False)


async def _teams(args: argparse.Namespace) -> int:
    db = await _open(args.config)
    store = TeamStore(db, aliases=load_config(args.config).models)
    json_out = args.format == "json"
    try:
        if args.teams_command == "create":
            try:
                teams = [await store.create(_fields(args))]
            except TeamExists as exc:
                print(f"hedge: {exc}", file=sys.stderr)
                return 1
        elif args.teams_command == "list":
            teams = await store.list()
        else:
            updated = await store.update(args.name, {k: v for k, v in _fields(args).items() if k != "name"})
            if updated is None:
                print(f"hedge: no team named {args.name!r}", file=sys.stderr)
                return 1
            teams = [updated]
    finally:
        await db.close()
    if json_out:
        data: Any = [t.public() for t in teams] if args.teams_command == "list" else teams[0].public()
        print(orjson.dumps(data).decode())
    else:
        _table(teams, Console())
    return 0


def add_parser(sub: Any) -> None:
    teams = sub.add_parser("teams", help="create, list and update team budgets")
    teams_sub = teams.add_subparsers(dest="teams_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", required=True, help="the gateway's YAML config (names the state store)")
        p.add_argument("--format", choices=["table", "json"], default="table")
        p.add_argument("--json", dest="format", action="store_const", const="json", default=SUPPRESS)

    def limits(p: argparse.ArgumentParser) -> None:
        p.add_argument("--budget-usd", dest="budget_usd", type=float, help="the team's (soft) budget")
        p.add_argument("--budget-period", dest="budget_period", choices=["day", "week", "month", "total"])
        budget_options(p)

    create = teams_sub.add_parser("create", help="create a team (keys join it with --team NAME)")
    common(create)
    create.add_argument("--name", required=True)
    limits(create)
    listing = teams_sub.add_parser("list", help="list teams and their budgets")
    common(listing)
    update = teams_sub.add_parser("update", help="change a team's budget")
    common(update)
    update.add_argument("name")
    limits(update)
    teams.set_defaults(func=lambda a: run(_teams, a))
