"""``hedge top``: a live terminal view of a running gateway, read from its ``/metrics``.

Each refresh scrapes the exposition text, and rates (requests, tokens and cost
per second) and latency quantiles are taken over the last interval; quantiles
fall back to the whole lifetime when the interval saw no traffic. Quantiles are
estimated from the histogram buckets the way Prometheus's
``histogram_quantile`` does: linear interpolation inside the bucket.
"""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

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


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    return f"{value:.2f}s"


def _usd(value: float) -> str:
    return f"${value:.6f}" if abs(value) < 1 else f"${value:,.2f}"


def render(cur: Snapshot, prev: Snapshot | None, source: str, error: str | None = None) -> RenderableType:
    """The view: a table per (alias, provider), the breakers, and a one-line summary."""
    dt = cur.at - prev.at if prev is not None else 0.0

    def per_second(now: float, before: float) -> float | None:
        if prev is None or dt <= 0:
            return None
        return max(0.0, now - before) / dt

    def rate(now: float, before: float) -> str:
        value = per_second(now, before)
        return "-" if value is None else f"{value:.1f}"

    def usd_rate(now: float, before: float) -> str:
        value = per_second(now, before)
        return "-" if value is None else _usd(value)

    table = Table(title=f"hedge top - {source}", expand=False, box=box.SIMPLE_HEAD)
    for column in ("alias", "provider", "req/s", "err%", "p50", "p95", "ttft p50", "tok/s", "$/s"):
        table.add_column(column, justify="left" if column in ("alias", "provider") else "right")
    table.add_column("requests", justify="right")
    table.add_column("cost", justify="right")
    table.add_column("saved", justify="right")

    total_cost = total_baseline = 0.0
    total_requests = 0.0
    for (alias, provider), r in sorted(cur.rows.items()):
        p = prev.rows.get((alias, provider), Row()) if prev is not None else None
        before = p or Row()
        window_requests = r.requests - before.requests if p is not None else r.requests
        window_errors = r.errors - before.errors if p is not None else r.errors
        if window_requests <= 0:
            window_requests, window_errors = r.requests, r.errors
        err = f"{100 * window_errors / window_requests:.1f}" if window_requests > 0 else "-"
        tokens_now = r.input_tokens + r.output_tokens
        tokens_before = before.input_tokens + before.output_tokens
        saved = r.baseline - r.cost
        saved_pct = f" ({100 * saved / r.baseline:.0f}%)" if r.baseline > 0 else ""
        table.add_row(
            alias if alias != "none" else "(no alias)",
            provider if provider != "none" else "-",
            rate(r.requests, before.requests),
            err,
            _seconds(_window_quantile(0.5, r.latency, p.latency if p else None)),
            _seconds(_window_quantile(0.95, r.latency, p.latency if p else None)),
            _seconds(_window_quantile(0.5, r.ttft, p.ttft if p else None)),
            rate(tokens_now, tokens_before),
            usd_rate(r.cost, before.cost),
            f"{r.requests:.0f}",
            _usd(r.cost),
            _usd(saved) + saved_pct,
        )
        total_cost += r.cost
        total_baseline += r.baseline
        total_requests += r.requests

    breakers = Table(title="breakers", expand=False, box=box.SIMPLE_HEAD)
    breakers.add_column("deployment")
    breakers.add_column("state")
    breakers.add_column("cooling down")
    for dep, level in sorted(cur.breakers.items()):
        name, style = STATE_NAMES.get(int(level), (str(level), "white"))
        breakers.add_row(dep, Text(name, style=style), "yes" if cur.cooling.get(dep) else "")

    in_flight = sum(cur.in_flight.values())
    saved = total_baseline - total_cost
    summary = Text(
        f"requests {total_requests:.0f}   in flight {in_flight:.0f}   cost {_usd(total_cost)}   "
        f"baseline {_usd(total_baseline)}   saved {_usd(saved)}"
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
) -> int:
    """Refresh every ``interval`` s, ``iterations`` times (forever if None); 1 if the last scrape failed."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console.width = max(console.width, 160)  # piped: no terminal to fit, keep columns whole
    metrics_url = url.rstrip("/") + "/metrics"
    interval = max(0.05, interval)

    def take() -> tuple[Snapshot | None, str | None]:
        try:
            return parse(scrape(metrics_url, key), time.monotonic()), None
        except (OSError, urllib.error.URLError, ValueError) as exc:
            return None, str(exc)

    prev, error = take()
    shown: RenderableType = Text("")
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    count = 0
    try:
        if live is not None:
            live.start()
        while iterations is None or count < iterations:
            time.sleep(interval)
            cur, error = take()
            if cur is not None:
                shown = render(cur, prev, metrics_url)
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
