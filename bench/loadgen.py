"""Async HTTP load generator for OpenAI-style chat completions (runs as its own process).

Two shapes of load:

* ``--mode open``: requests leave on a fixed timetable (``--rate`` per second)
  whatever the responses do. Latency is measured from the *scheduled* send time,
  so a stalled server shows up as latency instead of silently lowering the load
  (no coordinated omission).
* ``--mode closed``: ``--concurrency`` workers each send the next request as soon
  as the previous one finished; this finds the maximum throughput.

Protocol on stdout, for the orchestrator: ``#start`` once warm-up is over (the
measured window begins), ``#progress N`` about once a second, ``#end`` when the
window and its drain are over, then ``#result {json}``. Every loop is bounded by
count and time: the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

PROMPT = "Write a short greeting for the benchmark run please"


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    ok: int = 0
    last_done: float = 0.0


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    s = sorted(values)
    n = len(s)

    def rank(q: float) -> float:
        return s[min(n - 1, max(0, int(q * n + 0.999999) - 1))]

    return {
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": s[-1],
        "mean": sum(s) / n,
        "n": float(n),
    }


def _has_content(event: bytes) -> bool:
    """Whether one SSE event is a chat chunk whose delta carries text (the 'first token')."""
    for line in event.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            continue
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(chunk, dict):
            continue
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content") or delta.get("tool_calls"):
                return True
    return False


class Client:
    def __init__(self, args: argparse.Namespace, stats: Stats) -> None:
        self.url = args.url
        self.stats = stats
        self.timeout = aiohttp.ClientTimeout(total=args.timeout)
        self.headers = {"authorization": f"Bearer {args.key}", "content-type": "application/json"}
        base: dict[str, Any] = {
            "model": args.model,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": args.max_tokens,
        }
        self.body_plain = orjson.dumps(base)
        self.body_stream = orjson.dumps({**base, "stream": True})
        limit = max(args.concurrency, args.max_inflight if args.mode == "open" else 0, 8)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=60, force_close=False),
            timeout=self.timeout,
        )
        self.stream_share: float = args.stream_share
        self.counter = 0

    def _stream_next(self) -> bool:
        self.counter += 1
        share = self.stream_share
        if share <= 0:
            return False
        if share >= 1:
            return True
        # Deterministic interleave: request k streams iff floor(k*share) advanced.
        return int(self.counter * share) != int((self.counter - 1) * share)

    async def one(self, start: float, record: bool = True) -> None:
        """Send one request; latency counts from ``start`` (the scheduled time in open loop)."""
        stats = self.stats
        stream = self._stream_next()
        if record:
            stats.sent += 1
        error: str | None = None
        ttft: float | None = None
        try:
            async with self.session.post(
                self.url, data=self.body_stream if stream else self.body_plain, headers=self.headers
            ) as resp:
                if resp.status != 200:
                    await resp.read()
                    error = f"http_{resp.status}"
                elif stream:
                    buf = b""
                    tail = b""
                    async for data in resp.content.iter_any():
                        if ttft is None:
                            buf += data.replace(b"\r\n", b"\n")
                            while ttft is None:
                                cut = buf.find(b"\n\n")
                                if cut < 0:
                                    break
                                event, buf = buf[:cut], buf[cut + 2 :]
                                if _has_content(event):
                                    ttft = time.perf_counter() - start
                        tail = (tail + data)[-64:]
                    if ttft is None:
                        error = "stream_without_content"
                    elif b"[DONE]" not in tail:
                        error = "stream_incomplete"
                else:
                    body = await resp.read()
                    if not body.startswith(b"{") or b'"choices"' not in body:
                        error = "bad_body"
        except TimeoutError:
            error = "timeout"
        except aiohttp.ClientError as exc:
            error = f"client_{type(exc).__name__}"
        end = time.perf_counter()
        if not record:
            return
        if error is None:
            stats.ok += 1
            stats.latencies.append((end - start) * 1000)
            if ttft is not None:
                stats.ttfts.append(ttft * 1000)
        else:
            stats.errors[error] += 1
        stats.last_done = end

    async def close(self) -> None:
        await self.session.close()


async def _progress(stats: Stats, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        print(f"#progress {stats.ok + sum(stats.errors.values())}", flush=True)


async def warmup(client: Client, seconds: float, concurrency: int) -> None:
    if seconds <= 0:
        return
    end = time.perf_counter() + seconds

    async def worker() -> None:
        for _ in range(100_000):
            if time.perf_counter() >= end:
                return
            await client.one(time.perf_counter(), record=False)

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), seconds + 30)


async def open_loop(client: Client, args: argparse.Namespace) -> float:
    stats = client.stats
    total = max(1, int(args.rate * args.duration))
    interval = 1.0 / args.rate
    inflight: set[asyncio.Task[None]] = set()
    t0 = time.perf_counter() + 0.01
    for i in range(total):
        scheduled = t0 + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        stats.lags.append((time.perf_counter() - scheduled) * 1000)
        if len(inflight) >= args.max_inflight:
            stats.sent += 1
            stats.errors["client_overload_skipped"] += 1
            continue
        task = asyncio.create_task(client.one(scheduled))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
    if inflight:
        _, pending = await asyncio.wait(set(inflight), timeout=args.timeout + 2)
        for task in pending:
            task.cancel()
            stats.errors["drain_timeout"] += 1
    return t0


async def closed_loop(client: Client, args: argparse.Namespace) -> float:
    stats = client.stats
    t0 = time.perf_counter()
    end = t0 + args.duration
    budget = args.requests if args.requests > 0 else 10**9

    async def worker() -> None:
        while stats.sent < budget and time.perf_counter() < end:
            await client.one(time.perf_counter())

    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(args.concurrency))), args.duration + args.timeout + 5
    )
    return t0


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    client = Client(args, stats)
    try:
        await warmup(client, args.warmup, min(args.concurrency if args.mode == "closed" else 8, 16))
        client.counter = 0
        print("#start", flush=True)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        progress = asyncio.create_task(_progress(stats, args.progress_every))
        try:
            t0 = await (open_loop(client, args) if args.mode == "open" else closed_loop(client, args))
        finally:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        print("#end", flush=True)
    finally:
        await client.close()
    wall = max(stats.last_done - t0, args.duration if args.mode == "open" else 0.0, 1e-9)
    return {
        "mode": args.mode,
        "stream_share": args.stream_share,
        "offered_rps": args.rate if args.mode == "open" else None,
        "concurrency": args.concurrency if args.mode == "closed" else None,
        "duration_s": args.duration,
        "wall_s": wall,
        "sent": stats.sent,
        "ok": stats.ok,
        "errors": dict(stats.errors),
        "error_count": sum(stats.errors.values()),
        "achieved_rps": stats.ok / wall,
        "latency_ms": percentiles(stats.latencies),
        "ttft_ms": percentiles(stats.ttfts),
        "send_lag_ms": percentiles(stats.lags),
        "loadgen_cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--url", required=True, help="full URL of the chat completions endpoint")
    p.add_argument("--key", default="sk-bench")
    p.add_argument("--model", required=True)
    p.add_argument("--mode", choices=["open", "closed"], required=True)
    p.add_argument("--rate", type=float, default=100.0, help="open loop: requests per second")
    p.add_argument("--concurrency", type=int, default=8, help="closed loop: parallel workers")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of measured load")
    p.add_argument("--requests", type=int, default=0, help="closed loop: stop after this many (0: no limit)")
    p.add_argument("--stream", action="store_true", help="every request streams (same as --stream-share 1)")
    p.add_argument("--stream-share", type=float, default=0.0, help="share of requests that stream (0..1)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load first")
    p.add_argument("--timeout", type=float, default=15.0, help="per-request timeout, seconds")
    p.add_argument("--max-inflight", type=int, default=2000, help="open loop: cap on outstanding requests")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--progress-every", type=float, default=1.0)
    args = p.parse_args(argv)
    if args.stream:
        args.stream_share = 1.0
    if not 127 <= _first_octet(args.url) <= 127:
        p.error("load may only target 127.0.0.0/8 (loopback)")
    return args


def _first_octet(url: str) -> int:
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    if host == "localhost":
        return 127
    try:
        return int(host.split(".")[0])
    except ValueError:
        return -1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(main_async(args))
    sys.stdout.write("#result " + orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
