"""Does shadow traffic change the primary's latency? The same load with and without it.

``python bench/shadow.py [--requests 400] [--concurrency 8] [--rounds 2]`` starts two 20 ms mocks
(the primary's upstream and the candidate's) and two Hedge gateways on them: one without shadow
traffic and one copying every request (``sample: 1.0``) to the candidate. It sends the same
closed-loop load to each in turn, ``--rounds`` times alternating so drift hits both alike, and
prints the primary's client-side p50/p95/p99 for each, and the shadow pairs the second one kept.
Copies start only after a response is complete, so the difference should be within noise (the
copies still use the same CPU, which on a small machine can show in the tail). Writes
``bench/results/shadow.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

import httpx
import yaml

import targets
from targets import HOST, MASTER_KEY, RESULTS, TMP, Proc


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Primary latency with and without shadow traffic.")
    p.add_argument("--requests", type=int, default=400, help="requests per measured run")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2, help="alternating runs per gateway")
    p.add_argument("--latency-ms", type=float, default=20.0, help="each mock's latency")
    return p.parse_args(argv)


def _gateway(name: str, primary: Proc, candidate: Proc, shadow: bool) -> Proc:
    model: dict[str, Any] = {"deployments": [{"provider": "primary", "model": targets.UPSTREAM_MODEL}]}
    if shadow:
        model["shadow"] = [{"to": "candidate", "sample": 1.0, "max_usd_per_day": 100.0, "grader": "exact"}]
    config = {
        "server": {"master_key": MASTER_KEY},
        "providers": {
            "primary": {"style": "openai", "base_url": f"{primary.base}/v1", "api_key": "sk-x"},
            "candidate": {"style": "openai", "base_url": f"{candidate.base}/v1", "api_key": "sk-x"},
        },
        "models": {
            "chat": model,
            "candidate": {"deployments": [{"provider": "candidate", "model": "other-model"}]},
        },
    }
    TMP.mkdir(parents=True, exist_ok=True)
    path = TMP / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = targets.free_port()
    cmd = [sys.executable, "-m", "hedge", "serve", "--config", str(path), "--host", HOST, "--port", str(port)]
    proc = targets._spawn(name, [*cmd, "--log-level", "warning"], port)
    targets.wait_ready(proc, "/health", 60)
    targets.probe_chat(proc, "chat")
    return proc


async def _load(base: str, requests: int, concurrency: int) -> list[float]:
    """Closed loop: ``concurrency`` workers until ``requests`` answers; each answer's latency in ms."""
    body = {"model": "chat", "messages": [{"role": "user", "content": "one line"}], "max_tokens": 16}
    latencies: list[float] = []
    left = requests
    limits = httpx.Limits(max_connections=concurrency)
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    async with httpx.AsyncClient(base_url=base, limits=limits, headers=headers, timeout=30) as client:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                t0 = time.perf_counter()
                resp = await client.post("/v1/chat/completions", json=body)
                if resp.status_code == 200:
                    latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def _percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "n": float(len(values))}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    procs: list[Proc] = []
    try:
        primary = targets.start_mock("shadow-primary-mock", args.latency_ms)
        candidate = targets.start_mock("shadow-candidate-mock", args.latency_ms)
        procs += [primary, candidate]
        gateways = {
            "without shadow": _gateway("hedge-no-shadow", primary, candidate, shadow=False),
            "shadow sample 1.0": _gateway("hedge-shadow", primary, candidate, shadow=True),
        }
        procs += gateways.values()
        measured: dict[str, list[float]] = {name: [] for name in gateways}
        for gw in gateways.values():  # unmeasured warm-up
            asyncio.run(_load(gw.base, 50, args.concurrency))
        for _ in range(args.rounds):
            for name, gw in gateways.items():
                measured[name] += asyncio.run(_load(gw.base, args.requests, args.concurrency))
        status, raw = targets.http("GET", gateways["shadow sample 1.0"].base + "/admin/experiments")
        pairs = sum(p["pairs"] for p in json.loads(raw)["shadow"]) if status == 200 else None
    finally:
        targets.stop_all(procs)
    results = {name: _percentiles(values) for name, values in measured.items()}
    print("| gateway | n | p50 ms | p95 ms | p99 ms |\n| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {int(r['n'])} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} |")
    print(f"\nshadow pairs kept: {pairs}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"args": vars(args), "results": results, "shadow_pairs": pairs}
    (RESULTS / "shadow.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
