"""Which HTTP client should call the upstreams: ``python bench/client.py [--seconds 4 --rounds 2]``.

Each candidate runs in its own process (uvloop, as ``hedge serve`` does) and keeps 32 POSTs to
one ``hedge mock`` (0 ms) in flight for ``--seconds``; rounds interleave the candidates so the
machine's noise hits all of them alike. Reported per candidate: requests/s and the client
process's own CPU per request (user + system, all its threads), which is what a gateway pays.

Candidates: ``hedge`` (:mod:`hedge.transport.http1`, what the gateway uses), ``aiohttp`` (as
Hedge used it before: one ``ClientSession`` with a ``TCPConnector``), and, when installed,
``pyreqwest`` and ``rnet`` (Rust: reqwest/hyper on a Tokio runtime). Writes
``bench/results/NAME.{json,md}`` (default ``client``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import targets
from driver import machine_info

BODY = b'{"model":"m","messages":[{"role":"user","content":"hello there"}],"max_tokens":20}'
HEADERS = {"authorization": "Bearer sk-x", "content-type": "application/json"}
CANDIDATES = ("hedge", "aiohttp", "pyreqwest", "rnet")


def installed(name: str) -> bool:
    return name in ("hedge", "aiohttp") or importlib.util.find_spec(name) is not None


async def _client(kind: str, url: str) -> Any:
    """A function that sends one request and reads its whole body."""
    if kind == "hedge":
        from hedge.transport.http1 import Origin, Pool, split_url

        origin, target = split_url(url)
        pool = Pool(Origin.of(origin), 1000, None)

        async def one() -> bytes:
            resp = await pool.request("POST", target, HEADERS, BODY, connect_s=10, read_s=120, total_s=600)
            return await resp.read(1 << 26)

    elif kind == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000, keepalive_timeout=60))
        timeout = aiohttp.ClientTimeout(total=600, connect=10, sock_read=120)

        async def one() -> bytes:
            resp = await session.request("POST", url, data=BODY, headers=HEADERS, timeout=timeout)
            body = await resp.read()
            resp.release()
            return body

    elif kind == "pyreqwest":
        from pyreqwest.client import ClientBuilder

        client = ClientBuilder().max_connections(1000).build()

        async def one() -> bytes:
            resp = await client.post(url).headers(HEADERS).body_bytes(BODY).build().send()
            return bytes(await resp.bytes())

    elif kind == "rnet":
        import rnet

        rclient = rnet.Client()

        async def one() -> bytes:
            resp = await rclient.post(url, headers=HEADERS, body=BODY)
            return bytes(await resp.bytes())

    else:
        raise SystemExit(f"unknown client {kind!r}")
    return one


async def _measure(kind: str, url: str, seconds: float, concurrency: int) -> dict[str, float]:
    one = await _client(kind, url)
    for _ in range(100):  # connections open, code warm
        await one()
    done = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop:
            await one()
            done += 1

    t0, c0 = time.monotonic(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    return {"rps": done / wall, "cpu_us_per_request": cpu / done * 1e6, "cpu_share": cpu / wall}


def child(kind: str, url: str, seconds: float, concurrency: int) -> None:
    import uvloop

    print(json.dumps(uvloop.run(_measure(kind, url, seconds, concurrency))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--name", default="client")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "URL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.seconds, args.concurrency)
        return
    kinds = [k for k in CANDIDATES if installed(k)]
    mock = targets.start_mock("mock", 0)
    url = f"{mock.base}/v1/chat/completions"
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    try:
        for r in range(args.rounds):
            for kind in kinds:
                cmd = [sys.executable, __file__, "--child", kind, url, "--seconds", str(args.seconds)]
                cmd += ["--concurrency", str(args.concurrency)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
                runs[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
                m = runs[kind][-1]
                cpu = m["cpu_us_per_request"]
                print(f"round {r + 1} {kind:10s} {m['rps']:7.0f} req/s {cpu:6.0f} µs CPU/request")
    finally:
        mock.stop()
    best = {k: min(v, key=lambda m: m["cpu_us_per_request"]) for k, v in runs.items()}
    report = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "runs": runs,
    }
    out_dir = Path(__file__).parent / "results"
    (out_dir / f"{args.name}.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# Upstream HTTP clients: c={args.concurrency} POSTs to `hedge mock` (0 ms), {report['when']}",
        "",
        f"`python bench/client.py --seconds {args.seconds:g} --rounds {args.rounds}`; each client in its own "
        "process on uvloop; the lowest CPU per request of the rounds.",
        "",
        "| client | req/s | CPU µs / request | CPU share of one core |",
        "|---|---:|---:|---:|",
    ]
    for kind, m in best.items():
        lines.append(f"| {kind} | {m['rps']:,.0f} | {m['cpu_us_per_request']:.0f} | {m['cpu_share']:.0%} |")
    (out_dir / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
