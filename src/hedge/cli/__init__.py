"""The ``hedge`` command: serve, top, mock, demo, check, eval, and the state commands (keys, spend, prices).

Each subcommand's handler imports what only it needs (uvicorn, the HTTP app, the mocks, the demo,
``hedge top``'s live view) when it runs, so ``hedge --help`` and the state commands do not load them.
Lazy imports of heavy or third-party pieces are fine in a face, and that is the only reason for the
function-level imports here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hedge.cli.batches import add_parser as add_batches_parser
from hedge.cli.evals import add_parsers as add_eval_parsers
from hedge.cli.experiments import add_parser as add_experiments_parser
from hedge.cli.init import add_parser as add_init_parser
from hedge.cli.prices import add_parser as add_prices_parser
from hedge.cli.state import add_parsers as add_state_parsers
from hedge.cli.teams import add_parser as add_teams_parser
from hedge.config import CONFIG_ENV, ConfigError, load_config
from hedge.conformance.cli import add_check_parser
from hedge.observe.logs import log_config
from hedge.observe.metrics import multiprocess_dir


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"hedge: config error: {exc}", file=sys.stderr)
        return 2
    from hedge.cli.preflight import price_problems, provider_problems, state_problems
    from hedge.experiments.shadow import config_problems

    problems = config_problems(config) + price_problems(config) + asyncio.run(state_problems(config))
    if args.check:
        problems += asyncio.run(provider_problems(config))
        for problem in problems:
            print(f"hedge: {problem}", file=sys.stderr)
        names = ", ".join(config.providers)
        print(f"{args.config}: {'not ready' if problems else 'ok'} (state stores and providers {names})")
        return 1 if problems else 0
    if problems:
        for problem in problems:
            print(f"hedge: {problem}", file=sys.stderr)
        return 2
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    # No X-Forwarded-* rewriting (Hedge never reads the client address or scheme from the scope:
    # connection limits count the socket's peer) and no "server: uvicorn" header: both per request.
    common = {
        "host": host,
        "port": port,
        "log_level": args.log_level,
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
    }
    from hedge.api.connections import WORKER_PROTOCOL, protocol_for

    logs = log_config(args.log_format, args.log_level)
    logging.config.dictConfig(logs)  # now, for what start-up logs before uvicorn applies it again
    if args.workers > 1 and not config.state.redis_url:
        print(
            "hedge: warning: --workers > 1 without state.redis_url: each worker keeps its own rate-limit "
            "windows, budget counters, response cache and breakers, so per-key limits are multiplied by the "
            "number of workers. Set state.redis_url to share them.",
            file=sys.stderr,
        )
    from hedge.cli.banner import serve_banner

    banner = serve_banner(config, args.config, host, port, args.workers)
    if args.log_format == "json":  # every line of a JSON log is JSON: the summary is one log record
        logging.getLogger("hedge").info(banner)
    else:
        print(banner, flush=True)
    if args.workers > 1:
        # Workers are separate processes: each re-reads the (already validated) file.
        os.environ[CONFIG_ENV] = str(Path(args.config).resolve())
        with multiprocess_dir():  # the workers' metrics add up through files there
            uvicorn.run(
                "hedge.api.app:app_from_env",
                factory=True,
                workers=args.workers,
                log_config=logs,
                http=WORKER_PROTOCOL,  # by name: a class cannot be handed to worker processes
                **common,
            )
    else:
        from hedge.api.app import create_app

        uvicorn.run(
            create_app(config, serving=True), log_config=logs, http=protocol_for(config.server), **common
        )
    return 0


def _top(args: argparse.Namespace) -> int:
    from hedge.cli.top import run_top

    return run_top(
        args.url, interval=args.interval, iterations=args.iterations, key=args.key, fmt=args.format
    )


def _mock(args: argparse.Namespace) -> int:
    import uvicorn

    from hedge.mock.server import STYLES, create_mock_app
    from hedge.mock.state import Knobs

    if args.style not in STYLES:
        print(
            f"hedge: mock style {args.style!r} is not available (have: {', '.join(STYLES)})", file=sys.stderr
        )
        return 2
    if not 0.0 <= args.fail_rate <= 1.0:
        print("hedge: --fail-rate must be between 0 and 1", file=sys.stderr)
        return 2
    if not 0.0 <= args.batch_fail_rate <= 1.0 or args.batch_polls < 0:
        print("hedge: --batch-fail-rate must be between 0 and 1, --batch-polls at least 0", file=sys.stderr)
        return 2
    if args.quality is not None and not 0.0 <= args.quality <= 1.0:
        print("hedge: --quality must be between 0 and 1", file=sys.stderr)
        return 2
    knobs = Knobs(
        latency_ms=args.latency_ms,
        fail_rate=args.fail_rate,
        fail_status=args.fail_status,
        fail_mode=args.fail_mode,
        retry_after=args.retry_after,
        api_key=args.api_key,
        quirks=list(args.quirk or []),
        batch_polls=args.batch_polls,
        batch_fail_rate=args.batch_fail_rate,
        batch_fail_ids=list(args.batch_fail_id or []),
        quality=args.quality,
    )
    app = create_mock_app(args.style, knobs, args.seed)
    from hedge.cli.banner import mock_banner

    print(mock_banner(args.style, args.host, args.port, knobs), flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from hedge.cli.demo import run_demo

    if args.eval_items < 0 or args.batch_lines < 0:
        print("hedge: --eval-items and --batch-lines must not be negative", file=sys.stderr)
        return 2
    return run_demo(
        requests=args.requests,
        concurrency=args.concurrency,
        serve=args.serve,
        port=args.port,
        batch_lines=args.batch_lines,
        eval_items=args.eval_items,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hedge", description="Hedge: an OpenAI-compatible LLM gateway.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", required=True, help="YAML config file")
    serve.add_argument("--host", help="bind address (default: server.host in the config)")
    serve.add_argument("--port", type=int, help="port (default: server.port in the config)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--check",
        action="store_true",
        help="validate the config, reach the state stores and every provider's address, then exit",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text for people (default), or one JSON object per line (every logger, access lines included)",
    )
    serve.set_defaults(func=_serve)

    top = sub.add_parser("top", help="live view of a running gateway, from its /metrics")
    top.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway's base URL")
    top.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes (default 1)")
    top.add_argument("--iterations", type=int, default=None, help="stop after N refreshes (default: run on)")
    top.add_argument("--key", default=None, help="bearer key, if the gateway protects /metrics")
    top.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="table (default), or one JSON object per refresh, a line each",
    )
    top.set_defaults(func=_top)

    mock = sub.add_parser("mock", help="run a local mock upstream speaking a provider's wire format")
    mock.add_argument("--style", default="openai", help="wire format: openai, anthropic or gemini")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=9101)
    mock.add_argument(
        "--latency-ms", type=float, default=0.0, help="latency per request, spread over a stream"
    )
    mock.add_argument("--fail-rate", type=float, default=0.0, help="share of requests that fail (0..1)")
    mock.add_argument("--fail-status", type=int, default=500, help="HTTP status of injected failures")
    mock.add_argument(
        "--fail-mode",
        default="status",
        choices=["status", "disconnect", "early-disconnect", "hang"],
        help="failure shape: error status, stream cut mid-way or before its first token, or no answer",
    )
    mock.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds sent with 429")
    mock.add_argument("--seed", type=int, default=None, help="seed for the failure draw (reproducible runs)")
    mock.add_argument("--api-key", default=None, help="require exactly this key (default: any non-empty key)")
    mock.add_argument("--quirk", action="append", help="reproduce a known incompatibility (repeatable)")
    mock.add_argument(
        "--batch-polls",
        type=int,
        default=2,
        help="retrievals a batch takes to end (0: ended at the first); POST /_mock/batches/complete ends all",
    )
    mock.add_argument(
        "--batch-fail-rate", type=float, default=0.0, help="share of batch lines that fail (0..1)"
    )
    mock.add_argument(
        "--batch-fail-id",
        action="append",
        help="custom_id of a batch line that fails (repeatable)",
    )
    mock.add_argument(
        "--quality",
        type=float,
        default=None,
        help="play a model of known quality: answer 'Answer with: X' prompts right this share (0..1) "
        "of the time, with a plausible wrong answer otherwise",
    )
    mock.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    mock.set_defaults(func=_mock)

    add_state_parsers(sub)
    add_experiments_parser(sub)
    add_teams_parser(sub)
    add_batches_parser(sub)
    add_prices_parser(sub)

    demo = sub.add_parser("demo", help="run mock providers and the gateway in-process and drive traffic")
    demo.add_argument("--requests", type=int, default=300)
    demo.add_argument("--concurrency", type=int, default=16)
    demo.add_argument(
        "--serve",
        action="store_true",
        help="afterwards keep the gateway and mocks running and print the dashboard URL (until Ctrl-C)",
    )
    demo.add_argument("--port", type=int, default=None, help="the gateway's port (default: a free one)")
    demo.add_argument(
        "--batch-lines",
        type=int,
        default=200,
        help="requests in the batch act (0: skip the act; default 200)",
    )
    demo.add_argument(
        "--eval-items",
        type=int,
        default=60,
        help="questions in the experimentation act, which evaluates three candidates "
        "(0: skip the act; default 60)",
    )
    demo.set_defaults(func=_demo)

    add_check_parser(sub)
    add_eval_parsers(sub)
    add_init_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    code: int = args.func(args)
    return code
