"""``hedge top``: a live terminal view of a running gateway, read from its ``/metrics``.

Each refresh scrapes the exposition text, and rates (requests, tokens and cost
per second) and latency quantiles are taken over the last interval; quantiles
fall back to the whole lifetime when the interval saw no traffic. Quantiles are
estimated from the histogram buckets the way Prometheus's
``histogram_quantile`` does: linear interpolation inside the bucket.
"""

from __future__ import annotations

import math
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from hedge.cli.tables import Col, fit_table

Buckets = dict[float, float]
"""Upper bound ``le`` -> cumulative count."""

STATE_NAMES = {0: ("closed", "green"), 1: ("half-open", "yellow"), 2: ("open", "bold red")}


@dataclass
class Row:
    """Counters for one (alias, provider)."""

    requests: float = 0.0
    errors: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    cost: float = 0.0
    baseline: float = 0.0
    latency: Buckets = field(default_factory=dict)
    ttft: Buckets = field(default_factory=dict)


@dataclass
class Snapshot:
    at: float
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    in_flight: dict[str, float] = field(default_factory=dict)
    breakers: dict[str, float] = field(default_factory=dict)
    cooling: dict[str, float] = field(default_factory=dict)


def parse(text: str, at: float = 0.0) -> Snapshot:
    """The numbers ``hedge top`` shows, from a scrape of Hedge's ``/metrics``."""
    snap = Snapshot(at)

    def row(labels: dict[str, str]) -> Row:
        key = (labels.get("alias", "none"), labels.get("provider", "none"))
        found = snap.rows.get(key)
        if found is None:
            found = snap.rows[key] = Row()
        return found

    def add(buckets: Buckets, labels: dict[str, str], value: float) -> None:
        le = float(labels["le"])
        buckets[le] = buckets.get(le, 0.0) + value

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == "hedge_requests_total":
                r = row(labels)
                r.requests += value
                if labels.get("status_class") in ("4xx", "5xx"):
                    r.errors += value
            elif name == "hedge_request_duration_seconds_bucket" and labels.get("result") == "ok":
                add(row(labels).latency, labels, value)
            elif name == "hedge_time_to_first_token_seconds_bucket":
                add(row(labels).ttft, labels, value)
            elif name == "hedge_input_tokens_total":
                row(labels).input_tokens += value
            elif name == "hedge_output_tokens_total":
                row(labels).output_tokens += value
            elif name == "hedge_cost_usd_total":
                row(labels).cost += value
            elif name == "hedge_baseline_cost_usd_total":
                row(labels).baseline += value
            elif name == "hedge_requests_in_flight":
                alias = labels.get("alias", "none")
                snap.in_flight[alias] = snap.in_flight.get(alias, 0.0) + value
            elif name == "hedge_breaker_state":
                snap.breakers[labels.get("deployment", "?")] = value
            elif name == "hedge_deployment_cooling_down":
                snap.cooling[labels.get("deployment", "?")] = value
    return snap


def quantile(q: float, buckets: Buckets) -> float | None:
    """``histogram_quantile``: the q-quantile (seconds) of cumulative buckets, or None without data."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return lower  # the largest finite bound: all we can say
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def _delta(cur: Buckets, prev: Buckets) -> Buckets:
    return {le: max(0.0, n - prev.get(le, 0.0)) for le, n in cur.items()}


def _window_quantile(q: float, cur: Buckets, prev: Buckets | None) -> float | None:
    if prev is not None:
        window = _delta(cur, prev)
        if window and max(window.values()) > 0:
            return quantile(q, window)
    return quantile(q, cur)


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def _seconds(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return f"{ms / 1000:.2f}s"


def _usd(value: float) -> str:
    return f"${value:.6f}" if abs(value) < 1 else f"${value:,.2f}"


def _fixed(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def view(cur: Snapshot, prev: Snapshot | None) -> dict[str, Any]:
    """One refresh's numbers: what the table shows, and what ``--format json`` prints.

    ``rows``: one object per (alias, provider) with ``alias``, ``provider`` (null when the request
    had none), ``requests_per_s``, ``error_pct``, ``p50_ms``, ``p95_ms``, ``ttft_p50_ms``,
    ``tokens_per_s``, ``cost_usd_per_s`` (over the last interval; null when there is none yet),
    and the lifetime ``requests``, ``cost_usd``, ``saved_usd`` and ``saved_pct``. ``breakers``: one
    object per deployment with ``deployment``, ``state`` and ``cooling_down``. ``summary``: the
    lifetime ``requests``, ``in_flight``, ``cost_usd``, ``baseline_usd`` and ``saved_usd``.
    """
    dt = cur.at - prev.at if prev is not None else 0.0

    def per_second(now: float, before: float) -> float | None:
        if prev is None or dt <= 0:
            return None
        return max(0.0, now - before) / dt

    rows: list[dict[str, Any]] = []
    total_cost = total_baseline = total_requests = 0.0
    for (alias, provider), r in sorted(cur.rows.items()):
        p = prev.rows.get((alias, provider), Row()) if prev is not None else None
        before = p or Row()
        window_requests = r.requests - before.requests if p is not None else r.requests
        window_errors = r.errors - before.errors if p is not None else r.errors
        if window_requests <= 0:
            window_requests, window_errors = r.requests, r.errors
        saved = r.baseline - r.cost
        rows.append(
            {
                "alias": alias if alias != "none" else None,
                "provider": provider if provider != "none" else None,
                "requests_per_s": per_second(r.requests, before.requests),
                "error_pct": 100 * window_errors / window_requests if window_requests > 0 else None,
                "p50_ms": _ms(_window_quantile(0.5, r.latency, p.latency if p else None)),
                "p95_ms": _ms(_window_quantile(0.95, r.latency, p.latency if p else None)),
                "ttft_p50_ms": _ms(_window_quantile(0.5, r.ttft, p.ttft if p else None)),
                "tokens_per_s": per_second(
                    r.input_tokens + r.output_tokens, before.input_tokens + before.output_tokens
                ),
                "cost_usd_per_s": per_second(r.cost, before.cost),
                "requests": round(r.requests),
                "cost_usd": r.cost,
                "saved_usd": saved,
                "saved_pct": 100 * saved / r.baseline if r.baseline > 0 else None,
            }
        )
        total_cost += r.cost
        total_baseline += r.baseline
        total_requests += r.requests
    breakers = [
        {
            "deployment": dep,
            "state": STATE_NAMES.get(int(level), (str(level), ""))[0],
            "cooling_down": bool(cur.cooling.get(dep)),
        }
        for dep, level in sorted(cur.breakers.items())
    ]
    summary = {
        "requests": round(total_requests),
        "in_flight": round(sum(cur.in_flight.values())),
        "cost_usd": total_cost,
        "baseline_usd": total_baseline,
        "saved_usd": total_baseline - total_cost,
    }
    return {"rows": rows, "breakers": breakers, "summary": summary}


# Always shown: which alias and provider, how busy (req/s), how healthy (err%) and how fast (p50).
# Left out first when narrow: the cost rate (tiny numbers; the lifetime cost column says more),
# the token rate, the lifetime savings and request count (the summary line has their totals),
# time to first token (streams only), then the lifetime cost, then p95.
TOP_COLUMNS = (
    Col("alias", squeeze=12),
    Col("provider", squeeze=12),
    Col("req/s", "number", justify="right"),
    Col("err%", "number", justify="right"),
    Col("p50", "number", justify="right"),
    Col("p95", "number", drop=7, justify="right"),
    Col("ttft\np50", "number", drop=5, justify="right"),
    Col("tok/s", "number", drop=2, justify="right"),
    Col("$/s", "number", drop=1, justify="right"),
    Col("requests", "number", drop=4, justify="right"),
    Col("cost", "number", drop=6, justify="right"),
    Col("saved", "number", drop=3, justify="right"),
)
BREAKER_COLUMNS = (Col("deployment", "id"), Col("state", "id"), Col("cooling\ndown", "id", drop=1))


def _packed(items: list[str], width: int, gap: str = "   ") -> str:
    """``items`` on as few lines of at most ``width`` as they go, never breaking one."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + len(gap) + len(item) <= width:
            lines[-1] += gap + item
        else:
            lines.append(item)
    return "\n".join(lines)


def render(
    cur: Snapshot,
    prev: Snapshot | None,
    source: str,
    error: str | None = None,
    width: int = 160,
) -> RenderableType:
    """The view, ``width`` columns wide: a table per (alias, provider), the breakers, and a summary."""
    data = view(cur, prev)
    cells: list[list[str | Text]] = []
    for r in data["rows"]:
        saved_pct = f" ({r['saved_pct']:.0f}%)" if r["saved_pct"] is not None else ""
        rate = r["cost_usd_per_s"]
        cells.append(
            [
                r["alias"] or "(no alias)",
                r["provider"] or "-",
                _fixed(r["requests_per_s"]),
                _fixed(r["error_pct"]),
                _seconds(r["p50_ms"]),
                _seconds(r["p95_ms"]),
                _seconds(r["ttft_p50_ms"]),
                _fixed(r["tokens_per_s"]),
                "-" if rate is None else _usd(rate),
                f"{r['requests']:,}",
                _usd(r["cost_usd"]),
                _usd(r["saved_usd"]) + saved_pct,
            ]
        )
    table = fit_table(width, TOP_COLUMNS, cells, title=f"hedge top - {source}")
    breaker_cells: list[list[str | Text]] = []
    for b in data["breakers"]:
        style = next((st for name, st in STATE_NAMES.values() if name == b["state"]), "white")
        breaker_cells.append(
            [b["deployment"], Text(b["state"], style=style), "yes" if b["cooling_down"] else ""]
        )
    breakers = fit_table(width, BREAKER_COLUMNS, breaker_cells, title="breakers")
    s = data["summary"]
    summary = Text(
        _packed(
            [
                f"requests {s['requests']:,}",
                f"in flight {s['in_flight']:,}",
                f"cost {_usd(s['cost_usd'])}",
                f"baseline {_usd(s['baseline_usd'])}",
                f"saved {_usd(s['saved_usd'])}",
            ],
            width,
        )
    )
    parts: list[RenderableType] = [table, breakers, summary]
    if error:
        parts.append(Text(f"scrape failed: {error}", style="bold red"))
    return Group(*parts)


def scrape(url: str, key: str | None = None, timeout: float = 5.0) -> str:
    request = urllib.request.Request(url)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        body: bytes = resp.read()
    return body.decode()


def run_top(
    url: str,
    *,
    interval: float = 1.0,
    iterations: int | None = None,
    key: str | None = None,
    console: Console | None = None,
    fmt: str = "table",
) -> int:
    """Refresh every ``interval`` s, ``iterations`` times (forever if None); 1 if the last scrape failed.

    ``fmt="json"`` prints one JSON object per refresh, a line each: ``source``, ``error`` (null, or
    why the scrape failed; then ``rows`` and ``breakers`` are empty and ``summary`` null) and the
    rest as :func:`view` describes.
    """
    if console is None:
        console = Console()
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console.width = max(console.width, 160)  # piped, width not given: keep every column
    metrics_url = url.rstrip("/") + "/metrics"
    interval = max(0.05, interval)

    def take() -> tuple[Snapshot | None, str | None]:
        try:
            return parse(scrape(metrics_url, key), time.monotonic()), None
        except (OSError, urllib.error.URLError, ValueError) as exc:
            return None, str(exc)

    prev, error = take()
    shown: RenderableType = Text("")
    json_out = fmt == "json"
    live = Live(console=console, auto_refresh=False) if console.is_terminal and not json_out else None
    count = 0
    try:
        if live is not None:
            live.start()
        while iterations is None or count < iterations:
            time.sleep(interval)
            cur, error = take()
            if json_out:
                if cur is not None:
                    doc: dict[str, Any] = {"source": metrics_url, "error": None, **view(cur, prev)}
                    prev = cur
                else:
                    doc = {"source": metrics_url, "error": error, "rows": [], "breakers": [], "summary": None}
                sys.stdout.write(orjson.dumps(doc).decode() + "\n")
                sys.stdout.flush()
                count += 1
                continue
            if cur is not None:
                shown = render(cur, prev, metrics_url, width=console.width)
                prev = cur
                frame = shown
            else:
                frame = Group(shown, Text(f"scrape of {metrics_url} failed: {error}", style="bold red"))
            if live is not None:
                live.update(frame, refresh=True)
            else:
                console.print(frame)
            count += 1
    except KeyboardInterrupt:
        return 0
    finally:
        if live is not None:
            live.stop()
    return 1 if error is not None else 0
