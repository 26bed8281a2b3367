"""Memory soak: N requests through Hedge at full speed while its RSS is sampled.

``python bench/soak.py [--requests 100000] [--time-limit 900]`` starts a 0 ms mock
and Hedge, drives closed-loop load (a share of it streamed) until N requests or
the time limit, samples Hedge's RSS every few seconds, and writes
``bench/results/soak.json``. RSS counts as flat when every sample after warm-up
stays within ±10% of the first sample after warm-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import procstat
import targets
from driver import LoadSpec, Watched, machine_info, run_load

console = Console(stderr=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Hedge memory soak.")
    p.add_argument("--requests", type=int, default=100_000, help="requests to send (default 100,000)")
    p.add_argument("--time-limit", type=float, default=900.0, help="stop after this many seconds anyway")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--stream-share", type=float, default=0.25, help="share of requests that stream")
    p.add_argument("--sample-every", type=float, default=2.0, help="seconds between RSS samples")
    p.add_argument(
        "--warmup-share",
        type=float,
        default=0.1,
        help="share of the requests counted as warm-up (default 10%%)",
    )
    p.add_argument("--tolerance", type=float, default=10.0, help="flat means within ± this many percent")
    p.add_argument("--workers", type=int, default=1, help="Hedge worker processes")
    return p.parse_args(argv)


def analyse(samples: list[dict[str, float]], total: int, warmup_share: float, tol: float) -> dict[str, Any]:
    if not samples:
        return {"flat": None}
    mb = [s["rss_mb"] for s in samples]
    warm_at = warmup_share * total
    after = [s for s in samples if s["done"] >= warm_at] or samples[-1:]
    base = after[0]["rss_mb"]
    lo, hi = base * (1 - tol / 100), base * (1 + tol / 100)
    outside = [s for s in after if not lo <= s["rss_mb"] <= hi]
    # Least-squares slope of RSS against requests done, after warm-up: MB per 10k requests.
    slope = None
    if len(after) >= 3:
        xs = [s["done"] for s in after]
        ys = [s["rss_mb"] for s in after]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        if var > 0:
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 10_000
    return {
        "rss_first_mb": mb[0],
        "rss_after_warmup_mb": base,
        "rss_last_mb": mb[-1],
        "rss_peak_mb": max(mb),
        "rss_min_after_warmup_mb": min(s["rss_mb"] for s in after),
        "drift_pct": (mb[-1] - base) / base * 100 if base else None,
        "max_excursion_pct": max(abs(s["rss_mb"] - base) / base * 100 for s in after) if base else None,
        "slope_mb_per_10k_requests": slope,
        "samples_outside_band": len(outside),
        "flat": not outside,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets.TMP.mkdir(parents=True, exist_ok=True)
    procs: list[targets.Proc] = []
    samples: list[dict[str, float]] = []
    done = [0]
    stop = threading.Event()
    t0 = time.monotonic()
    try:
        with console.status("Starting the mock upstream and Hedge..."):
            mock = targets.start_mock("soak-mock", 0)
            procs.append(mock)
            hedge = targets.start_hedge({"fast": mock}, workers=args.workers, name="soak-hedge")
            procs.append(hedge)

        def sample() -> None:
            pids = procstat.tree(hedge.pid)
            mock_pids = procstat.tree(mock.pid)
            for _ in range(int(args.time_limit / args.sample_every) + 100):
                samples.append(
                    {
                        "t_s": round(time.monotonic() - t0, 2),
                        "done": done[0],
                        "rss_mb": procstat.rss_bytes(pids) / 1e6,
                        "mock_rss_mb": procstat.rss_bytes(mock_pids) / 1e6,
                    }
                )
                if stop.wait(args.sample_every):
                    return

        spec = LoadSpec(
            url=f"{hedge.base}/v1/chat/completions",
            model="fast",
            mode="closed",
            duration=args.time_limit,
            concurrency=args.concurrency,
            stream_share=args.stream_share,
            requests=args.requests,
            warmup=0,
            timeout=30.0,
        )
        sampler = threading.Thread(target=sample, daemon=True)
        with Progress(
            TextColumn("soak"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as progress:
            task = progress.add_task("soak", total=args.requests)

            def on_progress(n: int) -> None:
                done[0] = n
                progress.update(task, completed=n)

            res = run_load(
                spec, Watched({"hedge": hedge.pid}), on_progress=on_progress, on_start=sampler.start
            )
            done[0] = res["ok"] + res["error_count"]
            stop.set()
            sampler.join(timeout=10)
            # One last sample with everything finished.
            samples.append(
                {
                    "t_s": round(time.monotonic() - t0, 2),
                    "done": done[0],
                    "rss_mb": procstat.rss_bytes(procstat.tree(hedge.pid)) / 1e6,
                    "mock_rss_mb": procstat.rss_bytes(procstat.tree(mock.pid)) / 1e6,
                }
            )
    finally:
        stop.set()
        targets.stop_all(procs)

    result = analyse(samples, args.requests, args.warmup_share, args.tolerance)
    total = res["ok"] + res["error_count"]
    out = {
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/soak.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(),
        "settings": {
            "requests": args.requests,
            "time_limit_s": args.time_limit,
            "concurrency": args.concurrency,
            "stream_share": args.stream_share,
            "warmup_share": args.warmup_share,
            "tolerance_pct": args.tolerance,
            "hedge_workers": args.workers,
        },
        "requests_sent": res["sent"],
        "requests_ok": res["ok"],
        "errors": res["errors"],
        "completed_all": total >= args.requests,
        "achieved_rps": res["achieved_rps"],
        "latency_ms": res["latency_ms"],
        "hedge_cpu_s_per_1k": res["cpu_s"]["hedge"] / total * 1000 if total else None,
        **result,
        "samples": samples,
    }
    targets.RESULTS.mkdir(parents=True, exist_ok=True)
    (targets.RESULTS / "soak.json").write_text(json.dumps(out, indent=2) + "\n")
    verdict = {True: "FLAT", False: "NOT FLAT", None: "inconclusive"}[result.get("flat")]
    r = result
    print(
        f"soak: {res['ok']:,} ok / {res['sent']:,} sent ({res['error_count']} errors) at "
        f"{res['achieved_rps']:,.0f} RPS; Hedge RSS first {r.get('rss_first_mb', 0):.1f} MB, "
        f"after warm-up {r.get('rss_after_warmup_mb', 0):.1f} MB, last {r.get('rss_last_mb', 0):.1f} MB, "
        f"peak {r.get('rss_peak_mb', 0):.1f} MB, drift {r.get('drift_pct') or 0:+.1f}% -> {verdict} "
        f"(±{args.tolerance:g}% after warm-up). Wrote {targets.RESULTS / 'soak.json'}"
    )
    if not out["completed_all"]:
        print(f"soak: stopped by the {args.time_limit:.0f}s time limit before {args.requests:,} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
