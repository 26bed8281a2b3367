"""Prometheus metrics, fed by the request records and read at ``GET /metrics`` (``api/metrics.py``).

Counters and histograms are updated by :meth:`Metrics.observe`, a sink that sees
one :class:`RequestRecord` per request; breaker states are read from the
failover's breakers at scrape time by a custom collector, so they cost nothing
on the request path.

The request path adds to plain numbers (:class:`_Series`, :class:`_Tally`), and
:meth:`Metrics.flush` hands the sums to prometheus-client when a scrape renders
them: about ten ``inc``/``observe`` calls a request, each taking a lock and
checking its metric, cost a few percent of a proxied request's CPU, while adding
to a float costs next to nothing. In multiprocess mode every observation is
flushed at once, because another worker may answer the next scrape.

Label values are bounded: every label a client could influence is capped at a
number of distinct values (configured aliases, providers and deployments always
fit), and anything past the cap is folded into ``other``.

Several worker processes (``hedge serve --workers N``) share their counters
through ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode):
any worker answering a scrape reports the sum over all workers. Breaker
states are not shared: each worker has its own breakers, so the breaker gauges
are those of the worker that answered the scrape.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from hedge.record import CACHE_HIT, ESCALATED, HEDGE_LOST, OK, RequestRecord, RouteStep

if TYPE_CHECKING:
    from hedge.access.alerts import Alert
    from hedge.resilience.breaker import Breaker

M = TypeVar("M", bound=MetricWrapperBase)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

NONE = "none"
"""Label value when the request never got that far (no alias resolved, no provider tried)."""
OTHER = "other"
"""Label value for everything past a label's cap."""

# Seconds. LLM calls span milliseconds (cached, embeddings) to minutes (long generations).
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip
STALL_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Seconds: a stall of the event loop worth seeing starts well under a millisecond."""
_GENERATIONS = ("0", "1", "2")
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)

BREAKER_LEVELS = {"closed": 0, "half_open": 1, "open": 2}

# Route reasons that record a deployment passed over without a request being sent.

_KIND_BY_STATUS = {
    400: "invalid_request",
    401: "authentication",
    403: "permission",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    429: "rate_limited",
    499: "client_disconnected",
    500: "internal",
    502: "upstream_error",
    503: "unavailable",
    504: "timeout",
}


_KNOWN_REASONS = (
    "ok",
    "hedge_lost",
    "stream_interrupted",
    "no_deployment_available",
    "client_disconnected",
    "upstream_error",
    "upstream_timeout",
    "upstream_unavailable",
    "upstream_unreachable",
    "upstream_connection_error",
    "upstream_auth_error",
    "gateway_resource_exhausted",
    "upstream_bad_response",
    "upstream_stream_error",
    "upstream_empty_stream",
    "upstream_stream_truncated",
    "rate_limit_exceeded",
    "unsupported_parameter",
)


class LabelCap:
    """The first ``limit`` distinct values of a label pass (and seeded ones); later ones read ``other``."""

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int, seed: Iterable[str] = ()) -> None:
        self.seen = {NONE, OTHER, *seed}
        self.limit = len(self.seen) + limit

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) >= self.limit:
            return OTHER
        self.seen.add(value)
        return value


def _tried(route: Iterable[RouteStep]) -> Iterator[RouteStep]:
    """The route's deployment steps: escalation markers and cache hits left out."""
    for step in route:
        if step.outcome is not ESCALATED and step.outcome is not CACHE_HIT:
            yield step


def error_kind(rec: RequestRecord) -> str:
    """A short, bounded name for why a request failed."""
    if rec.status == 499:
        return "client_disconnected"
    attempts = [step.reason for step in _tried(rec.route) if not step.outcome.skipped]
    if attempts:
        reason = attempts[-1]
        if reason == "ok":
            return "stream_interrupted"  # the answer had begun; it failed part-way
        if not reason.isdigit():
            return reason
    elif rec.route:
        return "no_deployment_available"
    return _KIND_BY_STATUS.get(rec.status, "other")


class _BreakerCollector(Collector):
    """Reads breaker states at scrape time: nothing on the request path."""

    def __init__(self, breakers: Callable[[], Mapping[str, Breaker]], deployments: Iterable[str]) -> None:
        self._breakers = breakers
        self._deployments = tuple(deployments)

    def collect(self) -> Iterable[Metric]:
        state = GaugeMetricFamily(
            "hedge_breaker_state",
            "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open (per worker process).",
            labels=["provider", "deployment"],
        )
        cooling = GaugeMetricFamily(
            "hedge_deployment_cooling_down",
            "1 while a provider's Retry-After holds the deployment back (per worker process).",
            labels=["provider", "deployment"],
        )
        misconfigured = GaugeMetricFamily(
            "hedge_deployment_misconfigured",
            "1 while the provider rejects the deployment's credentials (401/403) (per worker process).",
            labels=["provider", "deployment"],
        )
        breakers = self._breakers()
        for dep in sorted({*self._deployments, *breakers}):
            provider = dep.partition("/")[0]
            breaker = breakers.get(dep)
            level = BREAKER_LEVELS[breaker.observed_state().value] if breaker is not None else 0
            state.add_metric([provider, dep], level)
            cooling.add_metric([provider, dep], 1 if breaker is not None and breaker.cooling_down() else 0)
            bad_key = breaker is not None and breaker.misconfigured is not None
            misconfigured.add_metric([provider, dep], 1 if bad_key else 0)
        yield state
        yield cooling
        yield misconfigured

    def describe(self) -> Iterable[Metric]:
        return ()


MAX_SERIES_SETS = 4096
"""Distinct label sets whose series :meth:`Metrics.observe` keeps at hand."""


class _Tally:
    """Observations of one histogram child that have not reached it yet (see :meth:`Metrics.flush`).

    prometheus-client has no call that adds many observations at once, so :meth:`into` adds to the
    child's ``_sum`` and ``_buckets`` values, the fields its own ``observe`` adds to (a unit test
    holds the result equal to calling ``observe`` once per value).
    """

    __slots__ = ("bounds", "child", "counts", "total")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds: list[float] = child._upper_bounds
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def add(self, value: float) -> None:
        # The first bucket whose upper bound is >= value: prometheus' "le" buckets, as observe().
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def into(self) -> None:
        child = self.child
        child._sum.inc(self.total)
        counts = self.counts
        for i, n in enumerate(counts):
            if n:
                child._buckets[i].inc(n)
                counts[i] = 0
        self.total = 0.0


@dataclass(slots=True)
class _Series:
    """The series of one label set (see :meth:`Metrics._series_of`), and what the requests of
    that set added since the last :meth:`Metrics.flush`."""

    alias: str
    provider: str
    requests: Any
    errors: Any | None
    latency: _Tally
    tokens: tuple[Any, Any, Any, Any, Any] | None
    count: int = 0
    sums: list[float] = field(default_factory=lambda: [0.0] * 5)
    """Input, output and cached tokens, cost, baseline cost: for the five ``tokens`` counters."""
    ttft: _Tally | None = None

    def into(self) -> None:
        """Add what is pending to the prometheus series."""
        if self.count:
            self.requests.inc(self.count)
            if self.errors is not None:
                self.errors.inc(self.count)
            self.count = 0
        self.latency.into()
        if self.ttft is not None:
            self.ttft.into()
        if self.tokens is not None:
            sums = self.sums
            for i, counter in enumerate(self.tokens):
                if sums[i]:
                    counter.inc(sums[i])
                    sums[i] = 0.0


class Metrics:
    """Every Hedge metric, in a registry of its own (several gateways may share a process in tests)."""

    def __init__(
        self,
        *,
        aliases: Iterable[str] = (),
        providers: Iterable[str] = (),
        deployments: Iterable[str] = (),
        breakers: Callable[[], Mapping[str, Breaker]] | None = None,
        max_label_values: int = 50,
    ) -> None:
        deployments = tuple(deployments)
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=False)
        self._breaker_collector = _BreakerCollector(breakers or dict, deployments)
        self._collectors: list[Collector] = [self._breaker_collector]
        """Read at scrape time, in every mode (what they report is not summed across workers)."""
        if not self.multiprocess:
            self.registry.register(self._breaker_collector)
        self._alias = LabelCap(max_label_values, aliases)
        self._provider = LabelCap(max_label_values, providers)
        self._deployment = LabelCap(max_label_values, deployments)
        self._reason = LabelCap(max_label_values, (*_KNOWN_REASONS, *_KIND_BY_STATUS.values()))
        self._status = LabelCap(max_label_values)
        self._endpoint = LabelCap(max_label_values, ("chat", "embeddings"))
        self._team = LabelCap(max_label_values)
        self._inflight: dict[str, str] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._series: dict[tuple[Any, ...], _Series] = {}
        # What the request path added since the last flush: series of label sets, and counts of
        # other children (gauges in flight, attempts, skips, ...), by child.
        self._dirty: list[_Series] = []
        self._pending: dict[Any, float] = {}

        reg = self.registry
        self.requests = Counter(
            "hedge_requests",
            "Requests answered, by endpoint, alias, serving (or last tried) deployment, HTTP status and "
            "the calling key's team.",
            ["endpoint", "alias", "provider", "deployment", "status", "status_class", "team"],
            registry=reg,
        )
        self.errors = Counter(
            "hedge_request_errors",
            "Requests answered with an error, by status and kind (the upstream error code if there is one).",
            ["endpoint", "alias", "provider", "status", "kind"],
            registry=reg,
        )
        self.latency = Histogram(
            "hedge_request_duration_seconds",
            "Time from request arrival to the last byte of the answer (streams: end of stream).",
            ["endpoint", "alias", "provider", "result"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.ttft = Histogram(
            "hedge_time_to_first_token_seconds",
            "Streams: time from request arrival to the first content sent to the client.",
            ["alias", "provider"],
            buckets=TTFT_BUCKETS,
            registry=reg,
        )
        token_labels = ["endpoint", "alias", "provider", "deployment", "team"]
        self.input_tokens = Counter(
            "hedge_input_tokens", "Prompt tokens, as the upstream reported them.", token_labels, registry=reg
        )
        self.output_tokens = Counter(
            "hedge_output_tokens",
            "Completion tokens, as the upstream reported them.",
            token_labels,
            registry=reg,
        )
        self.cached_tokens = Counter(
            "hedge_cached_input_tokens",
            "Prompt tokens the upstream served from its prompt cache (a part of input tokens).",
            token_labels,
            registry=reg,
        )
        self.cost = Counter(
            "hedge_cost_usd",
            "What the requests cost, in USD, at the prices in force.",
            token_labels,
            registry=reg,
        )
        self.baseline_cost = Counter(
            "hedge_baseline_cost_usd",
            "What the same requests would have cost at the alias's baseline price (its own price without "
            "a baseline); savings = baseline - cost.",
            token_labels,
            registry=reg,
        )
        self.attempts = Counter(
            "hedge_upstream_attempts",
            "Requests sent to deployments, by outcome: ok or why the attempt failed.",
            ["alias", "provider", "deployment", "outcome"],
            registry=reg,
        )
        self.skips = Counter(
            "hedge_deployment_skips",
            "Deployments passed over without a request (breaker open, cooling down, retry budget spent).",
            ["alias", "provider", "deployment", "reason"],
            registry=reg,
        )
        self.retries = Counter(
            "hedge_retries",
            "Upstream attempts beyond the first of a request (retries and failovers).",
            ["alias"],
            registry=reg,
        )
        self.failovers = Counter(
            "hedge_failovers",
            "Requests answered successfully only after at least one failed attempt.",
            ["alias", "provider"],
            registry=reg,
        )
        self.escalations = Counter(
            "hedge_escalations",
            "Answers escalated to a stronger alias, by reason.",
            ["alias", "reason"],
            registry=reg,
        )
        self.cache_hits = Counter(
            "hedge_cache_hits", "Requests answered from Hedge's response cache.", ["alias"], registry=reg
        )
        self.probes = Counter(
            "hedge_health_probes",
            "Active health probes sent to idle deployments, by outcome (ok or the error code).",
            ["provider", "deployment", "outcome"],
            registry=reg,
        )
        self.budget_fallbacks = Counter(
            "hedge_budget_fallbacks",
            "Requests served by a key's or team's budget_fallback alias because it was over its budget.",
            ["alias"],
            registry=reg,
        )
        self.budget_alerts = Counter(
            "hedge_budget_alerts",
            "Soft-limit budget alerts raised (each at most once per threshold and budget period).",
            ["scope", "threshold_pct"],
            registry=reg,
        )
        self.in_flight = Gauge(
            "hedge_requests_in_flight",
            "Requests being served now, by alias (summed over live workers).",
            ["alias"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        # What stalls the event loop (hedge.observe.loop): the sources of a latency tail.
        self.loop_lag = Histogram(
            "hedge_event_loop_lag_seconds",
            "How late the event loop ran a timer due every 50 ms: how long it was held.",
            registry=reg,
            buckets=STALL_BUCKETS,
        )
        self.gc_pause = Histogram(
            "hedge_gc_pause_seconds",
            "Garbage collections, by generation, and how long each held the process.",
            ["generation"],
            registry=reg,
            buckets=STALL_BUCKETS,
        )
        self.ledger_flush = Histogram(
            "hedge_ledger_flush_seconds",
            "Each batch of request records written to the database (rows built, then written).",
            registry=reg,
            buckets=STALL_BUCKETS,
        )

    def _series_of(self, rec: RequestRecord) -> _Series:
        """The labelled series one request updates, looked up once per distinct label set: about
        ten ``labels()`` lookups a request otherwise. Bounded: past :data:`MAX_SERIES_SETS` distinct
        sets (clients choose aliases) the cache starts again."""
        kind = error_kind(rec) if rec.status >= 400 else ""
        key = (rec.endpoint, rec.alias, rec.provider, rec.model, rec.status, rec.team, kind)
        series = self._series.get(key)
        if series is not None:
            return series
        if len(self._series) >= MAX_SERIES_SETS:
            self._series.clear()  # a series still pending stays in _dirty until the next flush
        endpoint = self._endpoint(rec.endpoint or NONE)
        alias = self._alias(rec.alias or NONE)
        provider = self._provider(rec.provider or NONE)
        deployment = self._deployment(f"{rec.provider}/{rec.model}" if rec.provider else NONE)
        status = self._status(str(rec.status))
        team = self._team(rec.team or NONE)
        ok = rec.status < 400
        labels = (endpoint, alias, provider, deployment, team)
        series = self._series[key] = _Series(
            alias=alias,
            provider=provider,
            requests=self._at(
                self.requests, endpoint, alias, provider, deployment, status, f"{rec.status // 100}xx", team
            ),
            errors=None
            if ok
            else self._at(self.errors, endpoint, alias, provider, status, self._reason(kind)),
            latency=_Tally(self._at(self.latency, endpoint, alias, provider, "ok" if ok else "error")),
            tokens=(
                self._at(self.input_tokens, *labels),
                self._at(self.output_tokens, *labels),
                self._at(self.cached_tokens, *labels),
                self._at(self.cost, *labels),
                self._at(self.baseline_cost, *labels),
            )
            if rec.provider
            else None,
        )
        return series

    # -- stalls --------------------------------------------------------------------------------------

    def stalled(self, seconds: float) -> None:
        self.loop_lag.observe(seconds)

    def collected(self, generation: int, seconds: float) -> None:
        self._at(self.gc_pause, _GENERATIONS[min(generation, 2)]).observe(seconds)

    def flushed(self, seconds: float) -> None:
        self.ledger_flush.observe(seconds)

    # -- the request path ------------------------------------------------------------------------

    def _at(self, metric: M, *values: str) -> M:
        """``metric.labels(*values)``, cached: label values are bounded, and this is the hot path."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def started(self, rec: RequestRecord) -> None:
        """A request for ``rec.alias`` began: counted in flight until its record is observed."""
        if rec.request_id in self._inflight:
            return
        alias = self._alias(rec.alias or NONE)
        self._inflight[rec.request_id] = alias
        self._add(self._at(self.in_flight, alias), 1)
        if self.multiprocess:
            self.flush()

    def probe(self, deployment: str, error: str | None) -> None:
        """A health probe of ``deployment`` came back (``error``: None, or a bounded error code)."""
        outcome = "ok" if error is None else self._reason(error)
        provider = self._provider(deployment.partition("/")[0])
        self._at(self.probes, provider, self._deployment(deployment), outcome).inc()

    def budget_alert(self, alert: Alert) -> None:
        """A key or team reached a budget threshold (thresholds are few: the config lists them)."""
        self._at(self.budget_alerts, alert.scope, f"{alert.threshold_pct:g}").inc()

    def cache_hit(self, alias: str) -> None:
        self._at(self.cache_hits, self._alias(alias or NONE)).inc()

    def _add(self, child: Any, amount: float) -> None:
        """``child.inc(amount)`` at the next flush."""
        pending = self._pending
        pending[child] = pending.get(child, 0.0) + amount

    def observe(self, rec: RequestRecord) -> None:
        """The sink: account for one finished request."""
        alias_in_flight = self._inflight.pop(rec.request_id, None)
        if alias_in_flight is not None:
            self._add(self._at(self.in_flight, alias_in_flight), -1)
        series = self._series_of(rec)
        if not series.count:  # nothing pending yet: not in _dirty
            if len(self._dirty) >= MAX_SERIES_SETS:  # never scraped, many label sets: stay bounded
                self.flush()
            self._dirty.append(series)
        series.count += 1
        series.latency.add(rec.latency_ms / 1000)
        if rec.ttft_ms is not None:
            if series.ttft is None:
                series.ttft = _Tally(self._at(self.ttft, series.alias, series.provider))
            series.ttft.add(rec.ttft_ms / 1000)
        if series.tokens is not None:
            sums = series.sums
            sums[0] += rec.prompt_tokens
            sums[1] += rec.completion_tokens
            sums[2] += rec.cached_tokens
            sums[3] += rec.cost_usd
            sums[4] += rec.baseline_cost_usd if rec.baseline_cost_usd is not None else rec.cost_usd
        alias, provider = series.alias, series.provider
        ok = rec.status < 400

        failed = False
        add = self._add
        for step in rec.route:
            if step.outcome is ESCALATED:
                add(self._at(self.escalations, alias, self._reason(step.detail)), 1)
                continue
            if step.outcome is CACHE_HIT:
                continue
            dep_label = self._deployment(step.target)
            dep_provider = self._provider(step.provider)
            if step.outcome.skipped:
                add(self._at(self.skips, alias, dep_provider, dep_label, step.reason), 1)
            else:
                failed = failed or (step.outcome is not OK and step.outcome is not HEDGE_LOST)
                add(self._at(self.attempts, alias, dep_provider, dep_label, self._reason(step.reason)), 1)
        if rec.cache_hit:
            add(self._at(self.cache_hits, alias), 1)
        if rec.budget == "fallback":
            add(self._at(self.budget_fallbacks, alias), 1)
        if rec.attempts > 1:
            add(self._at(self.retries, alias), rec.attempts - 1)
        if failed and ok:
            add(self._at(self.failovers, alias, provider), 1)
        if self.multiprocess:
            self.flush()

    def flush(self) -> None:
        """Hand what the request path added since the last flush to prometheus-client."""
        dirty, self._dirty = self._dirty, []
        for series in dirty:
            series.into()
        pending, self._pending = self._pending, {}
        for child, amount in pending.items():
            if amount:
                child.inc(amount)

    # -- the scrape --------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The exposition text: all workers' counters in multiprocess mode, this process's otherwise."""
        self.flush()
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        for collector in self._collectors:
            registry.register(collector)
        return generate_latest(registry)

    def add_collector(self, collector: Collector) -> None:
        """A collector read at each scrape (e.g. the batch lane's line counts, read from the database)."""
        self._collectors.append(collector)
        if not self.multiprocess:
            self.registry.register(collector)

    def close(self) -> None:
        """The process is going away: drop its share of the live gauges (multiprocess mode)."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            with contextlib.suppress(OSError):
                multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[str]:
    """Make sure ``PROMETHEUS_MULTIPROC_DIR`` names a directory for the workers to share.

    Must run before any worker imports prometheus-client. A directory Hedge
    makes is fresh and removed afterwards; one the user named is created if
    missing and left in place (wipe it between runs, as prometheus-client asks).
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        yield given
        return
    made = tempfile.mkdtemp(prefix="hedge-metrics-")
    os.environ[MULTIPROC_ENV] = made
    try:
        yield made
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(made, ignore_errors=True)
