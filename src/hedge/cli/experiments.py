"""``hedge experiments list`` and ``hedge experiments report NAME``: experiment results and shadow
pairs from the state database, with the gateway running or not (the same numbers as
``GET /admin/experiments``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson
from rich import box
from rich.console import Console

from hedge.cli.state import run
from hedge.cli.tables import Col, fit_table
from hedge.config import load_config
from hedge.experiments.service import Experiments
from hedge.gateway.runtime import open_runtime


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


async def _collect(args: argparse.Namespace) -> dict[str, Any] | None:
    config = load_config(args.config)
    runtime = await open_runtime(config)
    try:
        experiments = Experiments(runtime)
        await experiments.refresh()
        if args.experiments_command == "list":
            return await experiments.overview()
        if args.name not in experiments.configs:
            known = ", ".join(sorted(experiments.configs)) or "none configured"
            print(f"hedge: no experiment named {args.name!r} (known: {known})", file=sys.stderr)
            return None
        report = await experiments.report(args.name)
        report["shadow"] = await experiments.shadow_summary(alias=experiments.configs[args.name].alias)
        return report
    finally:
        await runtime.close()


def _arms_table(report: dict[str, Any], width: int) -> Any:
    columns = (
        Col("arm", "id"),
        Col("alias", "id", drop=4),
        Col("weight", "number", justify="right"),
        Col("n", "number", justify="right"),
        Col(f"{report['metric']}\n(95% CI)", "number", justify="right"),
        Col("vs control\n(95% CI)", "number", drop=2, justify="right"),
        Col("USD per\nrequest", "number", justify="right"),
        Col("savings", "number", drop=3, justify="right"),
        Col("latency\nms", "number", drop=1, justify="right"),
        Col("qualifies", "text", drop=5),
    )
    rows = []
    for arm in report["arms"]:
        mean = _num(arm["metric_mean"])
        if arm["ci_low"] is not None:
            mean += f" [{_num(arm['ci_low'])}, {_num(arm['ci_high'])}]"
        diff = "-"
        if arm["diff_to_control"] is not None:
            diff = f"{arm['diff_to_control']:+.3f} [{arm['diff_ci_low']:+.3f}, {arm['diff_ci_high']:+.3f}]"
        verdict = {True: "yes", False: "no", None: "not yet"}[arm["qualifies"]]
        rows.append(
            [
                arm["arm"],
                arm["use"],
                f"{arm['weight']:.1f}%",
                f"{arm['n']:,}",
                mean,
                diff,
                _usd(arm["cost_per_request_usd"]),
                _pct(arm["savings_vs_control"]),
                _num(arm["latency_ms"], 1),
                verdict,
            ]
        )
    title = (
        f"Experiment {report['name']} on {report['alias']}: recommended {report['recommended'] or 'none yet'}"
    )
    return fit_table(width, columns, rows, title=title, box=box.SIMPLE)


def _shadow_table(pairs: list[dict[str, Any]], width: int) -> Any:
    columns = (
        Col("alias", "id"),
        Col("shadow to", "id"),
        Col("grader", "text", drop=3),
        Col("pairs", "number", justify="right"),
        Col("errors", "number", drop=2, justify="right"),
        Col("score\n(95% CI)", "number", justify="right"),
        Col("shadow\nUSD", "number", justify="right"),
        Col("savings", "number", drop=1, justify="right"),
    )
    rows = []
    for p in pairs:
        score = _num(p["score"])
        if p["ci_low"] is not None:
            score += f" [{_num(p['ci_low'])}, {_num(p['ci_high'])}]"
        rows.append(
            [
                p["alias"],
                p["target"],
                p["grader"],
                f"{p['pairs']:,}",
                f"{p['errors']:,}",
                score,
                _usd(p["shadow_cost_usd"]),
                _pct(p["savings"]),
            ]
        )
    return fit_table(width, columns, rows, title="Shadow traffic", box=box.SIMPLE)


async def _main(args: argparse.Namespace) -> int:
    data = await _collect(args)
    if data is None:
        return 2
    if args.format == "json":
        print(orjson.dumps(data).decode())
        return 0
    console = Console()
    reports = data["experiments"] if args.experiments_command == "list" else [data]
    for report in reports:
        console.print(_arms_table(report, console.width), crop=False)
        for change in report["changes"][:5]:
            target = change["evidence"].get("target")
            shares = ", ".join(f"{arm} {share:.1f}%" for arm, share in change["weights"].items())
            console.print(f"  weights -> {shares} (toward {target})")
    if not reports:
        console.print("No experiments configured.")
    if data["shadow"]:
        console.print(_shadow_table(data["shadow"], console.width), crop=False)
    return 0


def add_parser(sub: Any) -> None:
    experiments = sub.add_parser("experiments", help="A/B experiments and shadow traffic: results")
    experiments_sub = experiments.add_subparsers(dest="experiments_command", required=True)
    for name, helptext in (
        ("list", "every experiment with its per-arm results, and the shadow pairs"),
        ("report", "one experiment: per-arm results, recommendation, weight changes"),
    ):
        p = experiments_sub.add_parser(name, help=helptext)
        if name == "report":
            p.add_argument("name", help="the experiment's name (experiments: in the config)")
        p.add_argument("--config", required=True, help="the gateway's YAML config (names the state store)")
        p.add_argument("--format", choices=["table", "json"], default="table")
        p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return run(_main, args)  # a config or value problem is one line and exit code 2
