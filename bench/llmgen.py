"""Load generator for LLM-shaped traffic (runs as its own process; driven by ``bench/llm.py``).

Two shapes, both started as one burst (every connection opens at the same instant, as when a batch
job or a traffic spike arrives):

* ``--shape streams``: ``--n`` concurrent streamed chat completions whose answers are long (about
  ``--words`` content chunks each, paced by the upstream). Per stream it records the time to the
  first content chunk (from the burst's start) and the gap between consecutive content chunks.
* ``--shape slow``: ``--n`` concurrent whole (non-streamed) requests to an upstream that takes
  seconds per answer, repeated by each connection for ``--duration`` seconds.

Protocol on stdout, as ``loadgen.py``: ``#start`` when the burst begins, ``#end`` when every
connection has finished, then ``#result {json}``. Bounded in count and time (``--timeout``).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from loadgen import percentiles


@dataclass
class Stats:
    ttfts: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    chunks: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def prompt(words: int) -> str:
    """A user message the mock echoes back word by word: about ``words`` content chunks."""
    return " ".join(f"word{i % 97}" for i in range(words))


def _content_events(buf: bytes) -> tuple[int, bytes, bool]:
    """Count complete SSE events in ``buf`` that carry content; return (count, rest, saw_done)."""
    count = 0
    done = False
    while True:
        cut = buf.find(b"\n\n")
        if cut < 0:
            return count, buf, done
        event, buf = buf[:cut], buf[cut + 2 :]
        if event.startswith(b"data: [DONE]"):
            done = True
        elif b'"content":"' in event and b'"content":""' not in event:
            count += 1


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stats = Stats()
        body: dict[str, Any] = {
            "model": args.model,
            "messages": [{"role": "user", "content": prompt(args.words)}],
            "max_tokens": args.words + 50,
        }
        if args.shape == "streams":
            body["stream"] = True
        self.body = orjson.dumps(body)
        self.headers = {"authorization": f"Bearer {args.key}", "content-type": "application/json"}

    async def stream_one(self, session: aiohttp.ClientSession, t0: float) -> None:
        stats = self.stats
        last: float | None = None
        gaps: list[float] = []
        seen = 0
        done = False
        try:
            async with session.post(self.args.url, data=self.body, headers=self.headers) as resp:
                if resp.status != 200:
                    await resp.read()
                    stats.errors[f"http_{resp.status}"] += 1
                    return
                buf = b""
                async for data in resp.content.iter_any():
                    now = time.perf_counter()
                    buf += data.replace(b"\r\n", b"\n")
                    count, buf, saw_done = _content_events(buf)
                    done = done or saw_done
                    if count:
                        if last is None:
                            stats.ttfts.append((now - t0) * 1000)
                        else:
                            gaps.append((now - last) * 1000)
                        # Events that arrived in one read share its arrival time: gaps of 0 between them.
                        gaps.extend([0.0] * (count - 1))
                        last = now
                        seen += count
        except TimeoutError:
            stats.errors["timeout"] += 1
            return
        except aiohttp.ClientError as exc:
            stats.errors[f"client_{type(exc).__name__}"] += 1
            return
        if not done or seen == 0:
            stats.errors["stream_incomplete"] += 1
            return
        stats.ok += 1
        stats.chunks += seen
        stats.gaps.extend(gaps)
        stats.latencies.append((time.perf_counter() - t0) * 1000)

    async def slow_one(self, session: aiohttp.ClientSession, until: float) -> None:
        stats = self.stats
        while time.perf_counter() < until:
            start = time.perf_counter()
            try:
                async with session.post(self.args.url, data=self.body, headers=self.headers) as resp:
                    body = await resp.read()
                    if resp.status != 200 or b'"choices"' not in body:
                        stats.errors[f"http_{resp.status}"] += 1
                        continue
            except TimeoutError:
                stats.errors["timeout"] += 1
                continue
            except aiohttp.ClientError as exc:
                stats.errors[f"client_{type(exc).__name__}"] += 1
                await asyncio.sleep(0.05)  # a refused connection must not spin
                continue
            stats.ok += 1
            stats.latencies.append((time.perf_counter() - start) * 1000)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    run = Run(args)
    connector = aiohttp.TCPConnector(limit=0, force_close=False, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        print("#start", flush=True)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        if args.shape == "streams":
            tasks = [asyncio.create_task(run.stream_one(session, t0)) for _ in range(args.n)]
        else:
            until = t0 + args.duration
            tasks = [asyncio.create_task(run.slow_one(session, until)) for _ in range(args.n)]
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        print("#end", flush=True)
    st = run.stats
    return {
        "shape": args.shape,
        "n": args.n,
        "wall_s": wall,
        "ok": st.ok,
        "errors": dict(st.errors),
        "error_count": sum(st.errors.values()),
        "chunks": st.chunks,
        "chunks_per_s": st.chunks / wall if wall else 0.0,
        "achieved_rps": st.ok / wall if wall else 0.0,
        "ttft_ms": percentiles(st.ttfts),
        "gap_ms": percentiles(st.gaps),
        "latency_ms": percentiles(st.latencies),
        "loadgen_cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--url", required=True, help="full URL of the chat completions endpoint")
    p.add_argument("--key", default="sk-bench")
    p.add_argument("--model", required=True)
    p.add_argument("--shape", choices=["streams", "slow"], required=True)
    p.add_argument("--n", type=int, default=300, help="concurrent connections opened in one burst")
    p.add_argument("--words", type=int, default=100, help="content chunks per answer (about)")
    p.add_argument("--duration", type=float, default=10.0, help="slow: seconds each connection keeps asking")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout, seconds")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(main_async(args))
    print("#result " + orjson.dumps(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
