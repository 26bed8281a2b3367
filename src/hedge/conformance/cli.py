"""``hedge check``: run the conformance cases against deployments and print the matrix.

Exit status: 0 when every required case passed (or was skipped), 1 when a
required case failed, 2 for a usage, config or case-file error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from hedge.store.conformance import results_path


def add_check_parser(sub: Any) -> None:
    """Add the ``check`` subcommand to ``hedge``'s subparsers."""
    check = sub.add_parser(
        "check",
        help="prove deployments compatible: run conformance cases against them directly",
        description="Run conformance cases against deployments, directly through their adapters "
        "(no routing or failover), and print a compatibility matrix. Exit status 1 when a required "
        "case fails, 2 for usage or config errors.",
    )
    check.add_argument("--config", required=True, help="YAML config file")
    which = check.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="ALIAS", help="the deployments of this model alias")
    which.add_argument(
        "--deployment", metavar="PROVIDER/MODEL", help="one deployment (need not be routed yet)"
    )
    which.add_argument("--all", action="store_true", help="every distinct deployment in the config")
    check.add_argument(
        "--cases",
        action="append",
        default=[],
        metavar="FILE_OR_DIR",
        help="YAML case file or directory of them; adds cases or overrides built-ins by id (repeatable)",
    )
    check.add_argument(
        "--only", action="append", default=[], metavar="ID[,ID]", help="run only these cases (repeatable)"
    )
    check.add_argument("--no-builtin", action="store_true", help="run only the cases from --cases")
    check.add_argument("--format", default="table", choices=["table", "json", "junit", "markdown"])
    check.add_argument("--output", metavar="FILE", help="write the report here instead of stdout")
    check.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    check.add_argument(
        "--results",
        default=None,
        metavar="FILE",
        help="JSON-lines file each run's results are appended to (default: conformance.jsonl in the "
        "config's state.dir, where the gateway's require_conformance gate reads them)",
    )
    check.add_argument("--no-results", action="store_true", help="do not record results")
    check.add_argument("--watch", type=float, metavar="SECONDS", help="run again every SECONDS")
    check.add_argument("--max-runs", type=int, metavar="N", help="with --watch: stop after N runs")
    check.set_defaults(func=run_check_command)


def _fail(message: str) -> int:
    print(f"hedge: {message}", file=sys.stderr)
    return 2


def run_check_command(args: argparse.Namespace) -> int:
    from hedge.config import ConfigError, load_config
    from hedge.conformance.report import render, table
    from hedge.conformance.runner import SelectionError, run, select_targets
    from hedge.conformance.suite import CaseError, load_cases, select
    from hedge.store.conformance import ConformanceRecord, JsonlResultStore

    if args.concurrency < 1:
        return _fail("--concurrency must be at least 1")
    if args.max_runs is not None and (args.watch is None or args.max_runs < 1):
        return _fail("--max-runs needs --watch and must be at least 1")
    if args.watch is not None and args.watch <= 0:
        return _fail("--watch must be a positive number of seconds")
    if args.no_builtin and not args.cases:
        return _fail("--no-builtin needs --cases")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(f"config error: {exc}")
    try:
        cases = select(load_cases(args.cases, builtin=not args.no_builtin), args.only)
    except CaseError as exc:
        return _fail(f"case error: {exc}")
    if not cases:
        return _fail("no cases to run")
    try:
        targets = select_targets(config, alias=args.model, deployment=args.deployment, every=args.all)
    except SelectionError as exc:
        return _fail(str(exc))
    results = Path(args.results) if args.results else results_path(config)
    store = None if args.no_results else JsonlResultStore(results)

    runs = 0
    status = 0
    try:
        while True:
            runs += 1
            # Each run gets fresh deployments' connections; the deployments themselves are reused.
            report = asyncio.run(run(config, targets, cases, args.concurrency))
            status = report.exit_status
            if store is not None:
                store.append(
                    ConformanceRecord(
                        report.checked_at,
                        report.hedge_version,
                        r.deployment,
                        r.case,
                        r.status,
                        r.reason,
                        r.latency_ms,
                        r.required,
                    )
                    for r in report.results
                )
            watching = args.watch is not None
            if args.output:
                Path(args.output).write_text(render(report, args.format), encoding="utf-8")
            elif args.format == "table":
                from rich.console import Console

                console = Console()
                if watching:
                    console.rule(f"run {runs} · {report.checked_at:%Y-%m-%d %H:%M:%S} UTC")
                console.print(table(report, console.width))
            else:
                sys.stdout.write(render(report, args.format, compact=watching))
                sys.stdout.flush()
            if not watching or (args.max_runs is not None and runs >= args.max_runs):
                return status
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return status
