"""``hedge eval`` and ``hedge dataset export``: their arguments.

The commands themselves (:mod:`hedge.cli.evaluate`) load the gateway's whole pipeline, so they are
imported when one of them runs, not for ``hedge --help`` or any other command.
"""

from __future__ import annotations

import argparse
from typing import Any


def _eval(args: argparse.Namespace) -> int:
    from hedge.cli.evaluate import run_eval

    return run_eval(args)


def _dataset(args: argparse.Namespace) -> int:
    from hedge.cli.evaluate import run_export

    return run_export(args)


def _candidates(value: str) -> list[str]:
    names = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if not names:
        raise argparse.ArgumentTypeError("give at least one candidate")
    return names


def add_parsers(sub: Any) -> None:
    ev = sub.add_parser(
        "eval",
        help="run a dataset on candidate models, grade the answers, recommend the cheapest that meets a bar",
    )
    ev.add_argument("--config", required=True, help="YAML config file")
    ev.add_argument("--dataset", required=True, help="JSONL of chat requests (see hedge dataset export)")
    ev.add_argument(
        "--candidates",
        required=True,
        type=_candidates,
        help="comma-separated aliases or provider/model deployments",
    )
    ev.add_argument("--reference", default=None, help="the alias (or deployment) to compare with")
    ev.add_argument(
        "--grader",
        default="exact",
        help="exact, contains, regex:PATTERN, json_schema, tool_call, similarity:ALIAS, judge:ALIAS, "
        "python:module:function (default exact)",
    )
    ev.add_argument("--rubric", default=None, help="judge: score each answer with this rubric file")
    ev.add_argument("--bar", type=float, default=0.9, help="quality bar, 0..1 (default 0.9)")
    ev.add_argument("--max-usd", type=float, default=None, help="stop before spending more than this")
    ev.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    ev.add_argument("--format", choices=["table", "json", "markdown"], default="table")
    ev.add_argument("--output", default=None, help="write the report here instead of stdout")
    ev.add_argument(
        "--apply",
        action="store_true",
        help="store the measured quality per deployment for the cheapest strategy's min_quality",
    )
    ev.set_defaults(func=_eval)

    ds = sub.add_parser("dataset", help="evaluation datasets")
    ds_sub = ds.add_subparsers(dest="dataset_command", required=True)
    export = ds_sub.add_parser(
        "export", help="build a dataset from logged requests (server.log_bodies), answers as references"
    )
    export.add_argument("--config", required=True, help="YAML config file")
    export.add_argument("--alias", required=True, help="the alias whose requests to export")
    export.add_argument("--since", default="7d", help="how far back: 7d, 24h, 30m (default 7d)")
    export.add_argument("--sample", type=int, default=None, help="at most this many, drawn at random")
    export.add_argument("--seed", type=int, default=0, help="seed of the sample draw (default 0)")
    export.add_argument("--output", required=True, help="the JSONL file to write")
    export.set_defaults(func=_dataset)
