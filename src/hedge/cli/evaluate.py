"""``hedge eval`` and ``hedge dataset export``, run: find the cheapest model that meets a quality bar.

``hedge eval`` opens the gateway's runtime without a server (:func:`open_runtime`), so candidates
are served by the same pipeline, adapters and booking as live traffic, and its records land in
the same ledger, tagged ``eval``. The report goes to stdout (or ``--output``); the progress bar
goes to stderr, and only when stderr is a terminal, so a pipe or a CI log gets the report alone.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from hedge.cli.tables import Col, fit_table
from hedge.config import Config, ConfigError, load_config
from hedge.evals import datasets
from hedge.evals.graders import Grader, make_grader, models_asked
from hedge.evals.report import HEADERS, Report, cells, measurements, summarize, to_markdown, verdict
from hedge.evals.runner import Evaluation, resolve_targets
from hedge.gateway.runtime import database_url, open_runtime
from hedge.store.db import connect
from hedge.store.evals import QualityStore
from hedge.store.ledger import parse_since
from hedge.store.schema import MIGRATIONS


def _fail(message: str) -> int:
    print(f"hedge: {message}", file=sys.stderr)
    return 2


def _config(path: str) -> Config | str:
    try:
        return load_config(path)
    except ConfigError as exc:
        return f"config error: {exc}"


# The candidate, its quality, cost per 1,000 requests and verdict are always shown; when the terminal
# is narrow, left out first: median latency, total cost, win/tie/loss, p95 latency, savings, errors.
COLUMNS = (
    Col("candidate", "id"),
    Col("n", "number", justify="right"),
    Col("quality [95% CI]", "number", justify="right"),
    Col("W/T/L", "number", drop=3, justify="right"),
    Col("cost", "number", drop=2, justify="right"),
    Col("per 1k", "number", justify="right"),
    Col("p50 ms", "number", drop=1, justify="right"),
    Col("p95 ms", "number", drop=4, justify="right"),
    Col("savings", "number", drop=5, justify="right"),
    Col("meets bar", "id"),
    Col("errors", drop=6, squeeze=8),
)
assert [c.header for c in COLUMNS] == list(HEADERS)


def render_table(report: Report, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    rows = [cells(row, report) for row in report.candidates]
    title = f"hedge eval: {report.items} items, grader {report.grader}, bar {report.bar:g}"
    console.print(fit_table(width, COLUMNS, rows, title=title), crop=False)
    console.print(verdict(report))
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "markdown":
        return to_markdown(report)
    return render_table(report, Console().width)


async def _evaluate(
    args: argparse.Namespace, config: Config, items: list[datasets.Item], rubric: str | None
) -> int:
    runtime = await open_runtime(config)
    try:
        try:
            targets = resolve_targets(runtime.router, args.candidates)
            reference = resolve_targets(runtime.router, [args.reference])[0] if args.reference else None
        except ValueError as exc:
            return _fail(str(exc))
        asked = models_asked(args.grader)
        if asked is not None and asked not in runtime.router.aliases:
            return _fail(f"grader {args.grader!r}: unknown alias {asked!r}")
        holder: list[Evaluation] = []

        async def ask(endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
            return await holder[0].ask(endpoint, body)

        try:
            grader: Grader = make_grader(args.grader, ask, rubric)
        except ValueError as exc:
            return _fail(str(exc))
        if grader.pairwise and reference is None:
            return _fail(f"grader {args.grader!r} compares with a reference: give --reference ALIAS")
        if grader.pairwise and args.apply:
            return _fail(
                f"--apply stores absolute quality, and {args.grader!r} grades relative to the reference "
                "(a win rate); give the judge a --rubric, or use another grader"
            )
        console = Console(stderr=True)
        progress = (
            Progress(
                TextColumn("[bold]hedge eval[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            if console.is_terminal
            else None
        )
        tasks: list[TaskID] = []

        def advance() -> None:
            if progress is not None and tasks:
                progress.advance(tasks[0])

        evaluation = Evaluation(
            runtime,
            items,
            targets,
            grader,
            reference=reference,
            max_usd=args.max_usd,
            concurrency=args.concurrency,
            progress=advance,
        )
        holder.append(evaluation)
        if progress is not None:
            progress.start()
            tasks.append(progress.add_task("eval", total=evaluation.jobs))
        try:
            result = await evaluation.run()
        finally:
            if progress is not None:
                progress.stop()
        result.grader_spec = args.grader
        result.dataset = Path(args.dataset).name
        report = summarize(result, args.bar)
        text = render(report, args.format)
        if args.output:
            await asyncio.to_thread(Path(args.output).write_text, text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        if args.apply:
            rows = measurements(result, result.dataset)
            await QualityStore(runtime.db).save(rows)
            shown = ", ".join(
                f"{r.deployment} {r.quality:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]" for r in rows
            )
            print(f"hedge: stored measured quality for {len(rows)} deployment(s): {shown}", file=sys.stderr)
        return 0
    finally:
        await runtime.close()


def run_eval(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if isinstance(config, str):
        return _fail(config)
    if args.concurrency < 1:
        return _fail("--concurrency must be at least 1")
    if args.max_usd is not None and args.max_usd < 0:
        return _fail("--max-usd must not be negative")
    if not 0.0 <= args.bar <= 1.0:
        return _fail("--bar must be between 0 and 1")
    if args.rubric and not args.grader.startswith("judge:"):
        return _fail("--rubric is for a judge:ALIAS grader")
    if args.grader.startswith("python:") and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # python:module:function finds the user's module where they are
    try:
        items = datasets.load(args.dataset)
    except datasets.DatasetError as exc:
        return _fail(str(exc))
    rubric = None
    if args.rubric:
        try:
            rubric = Path(args.rubric).read_text(encoding="utf-8")
        except OSError as exc:
            return _fail(f"cannot read the rubric {args.rubric}: {exc.strerror or exc}")
    return asyncio.run(_evaluate(args, config, items, rubric))


async def _export(args: argparse.Namespace, config: Config) -> int:
    if args.alias not in config.models:
        return _fail(f"unknown alias {args.alias!r} (known: {', '.join(sorted(config.models))})")
    try:
        since = parse_since(args.since)
    except ValueError as exc:
        return _fail(str(exc))
    db = await connect(database_url(config))
    try:
        await db.migrate(MIGRATIONS)
        items = await datasets.export_logged(db, args.alias, since, args.sample, args.seed)
    finally:
        await db.close()
    count = datasets.write(items, args.output)
    hint = "" if count or config.server.log_bodies else " (server.log_bodies is off: no bodies are logged)"
    print(f"hedge: wrote {count} item(s) to {args.output}{hint}", file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if isinstance(config, str):
        return _fail(config)
    if args.sample is not None and args.sample < 1:
        return _fail("--sample must be at least 1")
    return asyncio.run(_export(args, config))
