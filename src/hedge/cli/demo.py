"""``hedge demo``: the whole gateway on one machine, no keys, no network.

Starts three mock providers (a cheap open-weight host that is flaky, a
premium one that goes down for a while mid-run, and a backup host) and the
gateway in this process, drives a few hundred requests through the gateway's
HTTP surface (streaming and not), and prints what they cost against sending
everything to the premium model, and how many failovers kept the traffic up.
Then two short acts: the batch lane (:mod:`hedge.cli.demo_batch`) and an evaluation
of three candidates of known quality (:mod:`hedge.cli.demo_eval`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import tempfile
import time
from typing import Any

import aiohttp
import orjson
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hedge.api.app import create_app
from hedge.cli.demo_batch import batch_act, nightly_alias
from hedge.cli.demo_eval import eval_act
from hedge.cli.net import free_port, serve_in_loop
from hedge.config import parse_config
from hedge.gateway.runtime import Runtime
from hedge.mock.server import create_mock_app
from hedge.mock.state import Knobs, MockState
from hedge.observe.totals import Aggregator

MASTER_KEY = "sk-hedge-demo"

PROMPTS = [
    "Summarise the quarterly report in three bullet points.",
    "Translate 'good morning, how are you today?' into French.",
    "Write a haiku about cost control for cloud inference.",
    "Classify this ticket: my invoice shows the wrong currency and the total is off by a few cents.",
    "Extract the names: Alice met Bob and Carol at the Zurich office on Monday.",
    "Explain in one paragraph why weighted routing lowers the cost of a high-volume summarisation task.",
    "Draft a polite reply declining the meeting, suggesting next Thursday afternoon instead.",
    "What is 17 times 23? Answer with the number only.",
]


DEMO_CONFIG = """
server:
  master_key: {key}
providers:
  cheap:   {{style: openai, base_url: "http://127.0.0.1:{cheap}/v1",   api_key: sk-a}}
  premium: {{style: openai, base_url: "http://127.0.0.1:{premium}/v1", api_key: sk-b}}
  backup:  {{style: openai, base_url: "http://127.0.0.1:{backup}/v1",  api_key: sk-c}}
resilience:
  breaker: {{failures: 5, cooldown_s: 0.2}}
  backoff: {{base_ms: 20, max_ms: 200}}
models:
  chat:
    strategy: weighted
    baseline: premium
    fallbacks: [backup]
    deployments:
      - {{provider: cheap,   model: qwen2.5-72b-instruct, weight: 80, price: {{input: 0.35, output: 0.40}}}}
      - {{provider: premium, model: gpt-4o,               weight: 20, price: {{input: 2.50, output: 10.00}}}}
  premium:
    deployments:
      - {{provider: premium, model: gpt-4o, price: {{input: 2.50, output: 10.00}}}}
  backup:
    deployments:
      - {{provider: backup, model: llama-3.1-70b, price: {{input: 0.88, output: 0.88}}}}
"""


def demo_config(cheap: int, premium: int, backup: int) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        DEMO_CONFIG.format(key=MASTER_KEY, cheap=cheap, premium=premium, backup=backup)
    )
    data["models"]["nightly"] = nightly_alias()  # the batch act's, with price windows around now
    data["batch"] = {"max_concurrency": 16, "poll_interval_s": 0.2}
    return data


async def _one(session: aiohttp.ClientSession, url: str, rng: random.Random) -> bool:
    prompt = rng.choice(PROMPTS) * rng.randint(1, 4)
    body = {
        "model": "chat",
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": prompt},
        ],
        "max_tokens": rng.choice([16, 64, 256]),
    }
    if rng.random() < 0.3:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    async with session.post(url, data=orjson.dumps(body)) as resp:
        await resp.read()
        return resp.status == 200


async def _drive(
    base: str, total: int, concurrency: int, console: Console, premium: MockState
) -> tuple[int, float]:
    rng = random.Random(7)
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    headers = {"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"}
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]driving traffic"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("requests", total=total)
        async with aiohttp.ClientSession(headers=headers) as session:

            async def worker() -> None:
                nonlocal failures
                while not queue.empty():
                    queue.get_nowait()
                    ok = await _one(session, f"{base}/v1/chat/completions", rng)
                    failures += not ok
                    progress.advance(task)
                    done = progress.tasks[0].completed
                    # The premium provider is down for the middle third of the run.
                    premium.knobs.fail_rate = 1.0 if total / 3 <= done < 2 * total / 3 else 0.0

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures, time.perf_counter() - started


class _Transitions(logging.Handler):
    """Collects breaker transitions so they are reported after the progress bar, not through it."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _report(
    console: Console, totals: Aggregator, transitions: _Transitions, requests: int, elapsed: float
) -> None:
    """The interactive act: what each provider served, the failovers, and the saving."""
    table = Table(title=f"{requests} requests in {elapsed:.1f}s through alias 'chat'")
    columns = ("provider", "served", "failed attempts", "input tokens", "output tokens", "cost (USD)")
    for col in columns:
        table.add_column(col, justify="left" if col == "provider" else "right")
    rows = sorted(totals.by_provider.items())
    rows.append(("total", totals.total))
    for name, t in rows:
        if name == "total":
            table.add_section()
        table.add_row(
            name,
            str(t.requests),
            str(t.failed_attempts),
            str(t.prompt_tokens),
            str(t.completion_tokens),
            f"{t.cost_usd:.6f}",
        )
    console.print(table)
    all_t = totals.total
    console.print(
        f"{all_t.failovers} requests were served after a failover; {all_t.errors} errors reached the client; "
        f"{len(transitions.lines)} circuit-breaker transitions:"
    )
    for line in transitions.lines:
        console.print(f"  {line}")
    cost, base = all_t.cost_usd, all_t.baseline_cost_usd
    saved = base - cost
    share = (saved / base * 100) if base else 0.0
    console.print(
        f"Had every request gone to the premium model (gpt-4o) it would have cost "
        f"[bold]{base:.6f} USD[/]; the hedge cost [bold]{cost:.6f} USD[/], "
        f"saving [bold green]{saved:.6f} USD ({share:.1f}%)[/]."
    )


async def _run(
    requests: int,
    concurrency: int,
    console: Console,
    serve: bool = False,
    port: int | None = None,
    batch_lines: int = 200,
    eval_items: int = 60,
) -> int:
    transitions = _Transitions()
    breaker_log = logging.getLogger("hedge.breaker")
    breaker_log.addHandler(transitions)
    breaker_log.propagate = False
    cheap, premium, backup, gateway = (free_port() for _ in range(4))
    gateway = port or gateway
    raw_config = demo_config(cheap, premium, backup)
    raw_config["state"] = {"dir": tempfile.mkdtemp(prefix="hedge-demo-")}
    raw_config["server"]["log_bodies"] = serve  # the dashboard's request log then shows bodies
    config = parse_config(raw_config, "<demo>")
    runtime = Runtime(config)
    totals = Aggregator()
    runtime.sinks.append(totals)
    flaky = Knobs(latency_ms=20, fail_rate=0.15, fail_status=503)
    cheap_app = create_mock_app("openai", flaky, seed=1)
    premium_app = create_mock_app("openai", Knobs(latency_ms=40, fail_status=503), seed=2)
    backup_app = create_mock_app("openai", Knobs(latency_ms=30))
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(serve_in_loop(cheap_app, cheap))
        await stack.enter_async_context(serve_in_loop(premium_app, premium))
        await stack.enter_async_context(serve_in_loop(backup_app, backup))
        await stack.enter_async_context(serve_in_loop(create_app(config, runtime), gateway))
        console.print(
            f"[bold]Hedge demo[/]: gateway on http://127.0.0.1:{gateway}/v1. Alias 'chat' splits 80/20 "
            f"between 'cheap' (:{cheap}, fails 15% of requests) and 'premium' (:{premium}, down for the "
            f"middle third of the run), with 'backup' (:{backup}) as fallback."
        )
        failures, elapsed = await _drive(
            f"http://127.0.0.1:{gateway}", requests, concurrency, console, premium_app.state.mock
        )
        premium_app.state.mock.knobs.fail_rate = 0.0
        _report(console, totals, transitions, requests, elapsed)
        batch_ok = True
        if batch_lines:
            batch_ok = await batch_act(
                f"http://127.0.0.1:{gateway}", MASTER_KEY, batch_lines, PROMPTS, console
            )
        if eval_items:
            mocks = {"cheap": cheap_app, "premium": premium_app, "backup": backup_app}
            await eval_act(runtime, {k: v.state.mock for k, v in mocks.items()}, eval_items, console)
        # --serve: keep the mocks and the gateway up past this block, for the dashboard.
        servers = stack.pop_all() if serve else None

    if failures:
        console.print(f"[red]{failures} requests failed[/]")
    if not batch_ok:
        console.print("[red]the batch due in an hour did not complete[/]")
        failures += 1
    if servers is not None:
        async with servers:
            await _serve_dashboard(console, gateway)
    return 1 if failures else 0


async def _serve_dashboard(console: Console, port: int) -> None:
    """Keep everything running for the dashboard until Ctrl-C (or SIGTERM)."""
    console.print(
        f"\n[bold]Dashboard[/]: http://127.0.0.1:{port}/ui   master key: [bold]{MASTER_KEY}[/]\n"
        f"The gateway and the mock providers keep running (send more traffic to "
        f"http://127.0.0.1:{port}/v1 with that key); press Ctrl-C to stop."
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    console.print("stopping")


def run_demo(
    requests: int = 300,
    concurrency: int = 16,
    serve: bool = False,
    port: int | None = None,
    batch_lines: int = 200,
    eval_items: int = 60,
) -> int:
    console = Console()
    return asyncio.run(_run(requests, concurrency, console, serve, port, batch_lines, eval_items))
