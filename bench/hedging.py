"""Hedged requests against a slow and a fast deployment: how long the answer takes, and who gave it.

    python bench/hedging.py [--requests 10] [--slow-ms 1500] [--hedge-after-ms 100]

Two ``hedge mock`` upstreams (one answering in ``--slow-ms``, one at once) behind one ``hedge
serve``, and two aliases over the same ordered plan (slow first): ``plain`` (failover only: it
waits for the slow one) and ``hedged`` (``hedge_after_ms``). Requests are sequential, whole and
streamed; the table gives the median and worst latency and who answered. Every process is
started and stopped by this script (by its own id).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from typing import Any

import yaml

from targets import HOST, MASTER_KEY, TMP, Proc, _spawn, free_port, start_mock, wait_ready


def _gateway(slow: Proc, fast: Proc, hedge_after_ms: float) -> Proc:
    deployments = [{"provider": "slow", "model": "m"}, {"provider": "fast", "model": "m"}]
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "slow": {"style": "openai", "base_url": f"{slow.base}/v1", "api_key": "sk-x"},
            "fast": {"style": "openai", "base_url": f"{fast.base}/v1", "api_key": "sk-x"},
        },
        "models": {
            "plain": {"strategy": "ordered", "deployments": deployments},
            "hedged": {"strategy": "ordered", "hedge_after_ms": hedge_after_ms, "deployments": deployments},
        },
    }
    TMP.mkdir(parents=True, exist_ok=True)
    path = TMP / "hedging.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    cmd = [sys.executable, "-m", "hedge", "serve", "--config", str(path), "--host", HOST, "--port", str(port)]
    proc = _spawn("hedging-gateway", [*cmd, "--log-level", "warning"], port)
    wait_ready(proc, "/health", 60)
    return proc


def _one(gateway: Proc, alias: str, stream: bool) -> tuple[float, str, str]:
    body = {
        "model": alias,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 8,
        "stream": stream,
    }
    req = urllib.request.Request(gateway.base + "/v1/chat/completions", data=json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    req.add_header("authorization", f"Bearer {MASTER_KEY}")
    began = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as resp:
        resp.read()
        ms = (time.perf_counter() - began) * 1000
        return ms, resp.headers.get("x-hedge-provider", "?"), resp.headers.get("x-hedge-route", "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--slow-ms", type=float, default=1500)
    parser.add_argument("--hedge-after-ms", type=float, default=100)
    args = parser.parse_args()
    procs: list[Proc] = []
    try:
        slow = start_mock("hedging-slow", args.slow_ms)
        procs.append(slow)
        fast = start_mock("hedging-fast", 0)
        procs.append(fast)
        gateway = _gateway(slow, fast, args.hedge_after_ms)
        procs.append(gateway)
        rows: list[dict[str, Any]] = []
        for alias in ("plain", "hedged"):
            for stream in (False, True):
                runs = [_one(gateway, alias, stream) for _ in range(args.requests)]
                times = [r[0] for r in runs]
                rows.append(
                    {
                        "alias": alias,
                        "stream": stream,
                        "p50_ms": round(statistics.median(times), 1),
                        "max_ms": round(max(times), 1),
                        "answered_by": sorted({r[1] for r in runs}),
                        "route": runs[-1][2],
                    }
                )
        setup = f"slow deployment {args.slow_ms:g} ms, hedge after {args.hedge_after_ms:g} ms"
        print(f"{setup}, {args.requests} requests each")
        print(f"{'alias':8} {'stream':6} {'p50 ms':>9} {'max ms':>9}  answered by  route")
        for r in rows:
            print(
                f"{r['alias']:8} {r['stream']!s:6} {r['p50_ms']:>9} {r['max_ms']:>9}  "
                f"{','.join(r['answered_by']):11}  {r['route']}"
            )
        return 0
    finally:
        for proc in reversed(procs):
            proc.stop()


if __name__ == "__main__":
    sys.exit(main())
