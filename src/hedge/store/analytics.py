"""Read-only queries over the ledger for the dashboard (``/admin/dashboard/*``).

Everything here reads ``hedge_requests`` (and ``hedge_bodies`` for a request's
detail) and writes nothing. The SQL is shared by SQLite and PostgreSQL: the few
differences (integer division into time buckets) come from ``db.dialect``.
Percentiles are computed in Python from the newest ``LATENCY_ROW_CAP`` rows of
the window, so they cost the same on both databases and stay bounded as the
ledger grows; counts and error rates are exact.

Per deployment, attempts are counted from each request's route (the ``route``
column, a JSON array of ``[target, outcome, detail]``), so a deployment that
failed and was failed over shows its failed attempts although another one served
the request. Rows written before the route was kept (``route`` NULL) count as
they always did: one attempt on the deployment that served (or last tried) the
request, served if the request succeeded, failed if not.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import orjson

from hedge.record import Outcome
from hedge.store import rollup
from hedge.store.db import Database

LATENCY_ROW_CAP = 100_000
"""Latency percentiles are computed from at most this many of the window's newest requests."""

MAX_PAGE = 500
MAX_SERIES = 8
"""Groups beyond the costliest ``MAX_SERIES`` are summed into one ``other`` series."""
MAX_POINTS = 2_000

TIMESERIES_GROUPS: dict[str, str] = {
    "provider": "COALESCE(r.provider, '-')",
    "model": "COALESCE(r.model, '-')",
    "alias": "COALESCE(NULLIF(r.alias, ''), '-')",
    "team": "COALESCE(r.team, '-')",
    "key": "COALESCE(k.name, r.key_id, 'master key')",
}

# Bucket widths in seconds that read well on an axis; ``auto`` takes the smallest giving <= 100 points.
_NICE_BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)

_KEY_JOIN = " LEFT JOIN hedge_keys k ON k.id = r.key_id"

_SEARCHED = (
    "r.request_id",
    "r.alias",
    "r.provider",
    "r.model",
    "r.error",
    "r.tags",
    "r.team",
    "r.key_id",
    "k.name",
)


def auto_bucket(span_s: float, max_points: int = 100) -> int:
    """Bucket seconds giving at most ``max_points`` (and, on this ladder, usually 40 or more) points."""
    need = max(span_s, 1.0) / max_points
    for width in _NICE_BUCKETS:
        if width >= need:
            return width
    days = math.ceil(need / 86400)
    return days * 86400


def percentile(ordered: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of sorted values, interpolating linearly (like ``percentile_cont``)."""
    if not ordered:
        return None
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _num(value: Any) -> float:
    return float(value) if value is not None else 0.0


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _usd(value: float) -> float:
    return round(value, 10)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass(slots=True)
class RequestFilter:
    """The request log's filters; every one optional and combined with AND."""

    since: float
    until: float | None = None
    q: str | None = None
    provider: str | None = None
    model: str | None = None
    alias: str | None = None
    status: str | None = None
    """``ok`` (status < 400) or ``error``."""
    key: str | None = None
    """A key id or name; ``master`` for the master key's requests."""

    def where(self) -> tuple[str, list[Any]]:
        clauses = ["r.ts >= ?"]
        args: list[Any] = [self.since]
        if self.until is not None:
            clauses.append("r.ts < ?")
            args.append(self.until)
        for column, value in (("provider", self.provider), ("model", self.model), ("alias", self.alias)):
            if value:
                clauses.append(f"r.{column} = ?")
                args.append(value)
        if self.status == "ok":
            clauses.append("r.status < 400")
        elif self.status == "error":
            clauses.append("r.status >= 400")
        if self.key:
            if self.key in ("master", "master key"):
                clauses.append("r.key_id IS NULL")
            else:
                clauses.append("(r.key_id = ? OR k.name = ?)")
                args += [self.key, self.key]
        if self.q and self.q.strip():
            pattern = "%" + _escape_like(self.q.strip().lower()) + "%"
            clauses.append(
                "(" + " OR ".join(f"LOWER(COALESCE({c}, '')) LIKE ? ESCAPE '\\'" for c in _SEARCHED) + ")"
            )
            args += [pattern] * len(_SEARCHED)
        return " AND ".join(clauses), args


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_CHARGE_COLUMNS = (
    ("input", "input_cost_usd"),
    ("cache_read", "cache_read_cost_usd"),
    ("cache_write", "cache_write_cost_usd"),
    ("output", "output_cost_usd"),
    ("reasoning", "reasoning_cost_usd"),
    ("request", "request_fee_usd"),
)


def _request_row(row: dict[str, Any]) -> dict[str, Any]:
    tags: list[str] = []
    if row.get("tags"):
        try:
            tags = [str(t) for t in orjson.loads(row["tags"])]
        except orjson.JSONDecodeError:
            tags = [str(row["tags"])]
    return {
        "request_id": row["request_id"],
        "ts": float(row["ts"]),
        "key_id": row["key_id"],
        "key_name": row.get("key_name") or (None if row["key_id"] else "master key"),
        "team": row["team"],
        "alias": row["alias"],
        "endpoint": row["endpoint"],
        "provider": row["provider"],
        "model": row["model"],
        "status": int(row["status"]),
        "stream": bool(row["stream"]),
        "prompt_tokens": _int(row["prompt_tokens"]),
        "completion_tokens": _int(row["completion_tokens"]),
        "cached_tokens": _int(row["cached_tokens"]),
        "cache_write_tokens": _int(row.get("cache_write_tokens")),
        "reasoning_tokens": _int(row.get("reasoning_tokens")),
        "service_tier": row.get("service_tier"),
        "cost_usd": _usd(_num(row["cost_usd"])),
        "charges_usd": None
        if row.get("input_cost_usd") is None
        else {name: _usd(_num(row.get(column))) for name, column in _CHARGE_COLUMNS},
        "price_missing": bool(row.get("price_missing")),
        "usage_missing": bool(row.get("usage_missing")),
        "baseline_cost_usd": None
        if row["baseline_cost_usd"] is None
        else _usd(float(row["baseline_cost_usd"])),
        "latency_ms": _ms(row["latency_ms"]),
        "ttft_ms": _ms(row["ttft_ms"]),
        "attempts": _int(row["attempts"]),
        "tags": tags,
        "cache_hit": bool(row["cache_hit"]),
        "error": row["error"],
        "route": _route_steps(row.get("route")),
    }


def _route_steps(raw: Any) -> list[dict[str, str]] | None:
    """The stored route as ``[{target, outcome, detail}]``; None for a row written before it was kept."""
    if raw is None:
        return None
    try:
        steps = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return [
        {"target": str(s[0]), "outcome": str(s[1]), "detail": str(s[2]) if len(s) > 2 else ""}
        for s in steps
        if isinstance(s, list) and len(s) >= 2
    ]


_STATUS_CLASS = "CASE WHEN r.status < 400 THEN 'ok' WHEN r.status = 499 THEN 'left' ELSE 'error' END"
"""How the request ended: served, the client left (499), or failed."""


def _attempt_kind(outcome: str, ended: str) -> str | None:
    """What one step of a route says about its deployment: ``served``, ``failed``, ``cancelled``, or
    None for a step that sent it nothing (a skip, the cache, an escalation).

    ``ok`` is the deployment's answer (for a stream, its first token): it served unless the request
    still ended in an error after it (a stream that broke mid-way counts as failed, one the client
    left as cancelled). ``cancelled`` (the client left, or the request's deadline passed while the
    attempt was in flight) is counted apart from the failures: it is no verdict on the deployment,
    as failover tells its breaker nothing either.
    """
    if outcome == Outcome.OK:
        return "served" if ended == "ok" else "cancelled" if ended == "left" else "failed"
    if outcome == Outcome.FAILED:
        return "failed"
    if outcome == Outcome.CANCELLED or outcome == Outcome.HEDGE_LOST:
        return "cancelled"
    return None


@dataclass(slots=True)
class _Attempts:
    served: int = 0
    failed: int = 0
    cancelled: int = 0

    def add(self, kind: str, n: int) -> None:
        setattr(self, kind, getattr(self, kind) + n)


class Analytics:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _sums(self, since: float, until: float | None) -> dict[str, float]:
        """The rollup measures (and ``errors``, ``first_ts``, ``last_ts``) over ``[since, until)``:
        whole hours from the hourly rollup, the partial hours at the ends from the ledger."""
        out: dict[str, float] = {}
        firsts: list[float] = []
        lasts: list[float] = []
        for span in rollup.spans(since, until, await rollup.covered_from(self.db)):
            if span.rollup and span.until is not None:
                measures = ", ".join(f"SUM(u.{name}) AS {name}" for name in rollup.MEASURE_NAMES)
                rows = await self.db.fetch(
                    f"SELECT {measures}, SUM(CASE WHEN u.failed = 1 THEN u.requests ELSE 0 END) AS errors, "
                    f"MIN(u.first_ts) AS first_ts, MAX(u.last_ts) AS last_ts FROM {rollup.TABLE} u "
                    "WHERE u.hour >= ? AND u.hour < ?",
                    [int(span.since), int(span.until)],
                )
            else:
                where, args = RequestFilter(span.since, span.until).where()
                measures = ", ".join(f"SUM({expr}) AS {name}" for name, expr in rollup.MEASURES)
                rows = await self.db.fetch(
                    f"SELECT {measures}, SUM(CASE WHEN r.status >= 400 THEN 1 ELSE 0 END) AS errors, "
                    f"MIN(r.ts) AS first_ts, MAX(r.ts) AS last_ts FROM hedge_requests r WHERE {where}",
                    args,
                )
            row = rows[0]
            for name, value in row.items():
                if value is None:
                    continue
                if name == "first_ts":
                    firsts.append(float(value))
                elif name == "last_ts":
                    lasts.append(float(value))
                else:
                    out[name] = out.get(name, 0) + float(value)
        if firsts:
            out["first_ts"] = min(firsts)
        if lasts:
            out["last_ts"] = max(lasts)
        return out

    async def summary(self, since: float, until: float | None = None) -> dict[str, Any]:
        """Totals over every request in the window, failed ones included (their cost is what they cost).

        A request without a baseline (its alias has no ``baseline``) counts its own cost as the
        baseline, so it saves nothing; ``baseline_requests`` says how many had one: with none, the
        savings say nothing at all. ``price_missing`` counts requests booked at 0 because their
        deployment had no price, ``usage_missing`` those whose upstream reported no usage. Read from
        the hourly rollups (:mod:`hedge.store.rollup`), so a 30-day window costs the same at any size.
        """
        t = await self._sums(since, until)

        def n(name: str) -> int:
            return int(t.get(name, 0))

        requests, errors, failovers, cache_hits = n("requests"), n("errors"), n("failovers"), n("cache_hits")
        cost = t.get("cost_usd", 0.0)
        baseline = t.get("baseline_usd", 0.0)
        prompt, completion = n("prompt_tokens"), n("completion_tokens")
        latency_n = n("latency_n")
        charges = {
            "input": _usd(t.get("input_cost_usd", 0.0)),
            "cache_read": _usd(t.get("cache_read_cost_usd", 0.0)),
            "cache_write": _usd(t.get("cache_write_cost_usd", 0.0)),
            "output": _usd(t.get("output_cost_usd", 0.0)),
            "reasoning": _usd(t.get("reasoning_cost_usd", 0.0)),
            "request": _usd(t.get("request_fee_usd", 0.0)),
        }
        return {
            "since": since,
            "until": until if until is not None else time.time(),
            "requests": requests,
            "errors": errors,
            "error_rate": _rate(errors, requests),
            "failovers": failovers,
            "failover_rate": _rate(failovers, requests),
            "cache_hits": cache_hits,
            "cache_hit_rate": _rate(cache_hits, requests),
            "streams": n("streams"),
            "cost_usd": _usd(cost),
            "baseline_cost_usd": _usd(baseline),
            "savings_usd": _usd(baseline - cost),
            "savings_rate": (baseline - cost) / baseline if baseline > 0 else 0.0,
            "baseline_requests": n("baseline_requests"),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cached_tokens": n("cached_tokens"),
            "cache_write_tokens": n("cache_write_tokens"),
            "reasoning_tokens": n("reasoning_tokens"),
            "total_tokens": prompt + completion,
            "charges_usd": charges,
            "price_missing": n("price_missing"),
            "usage_missing": n("usage_missing"),
            "avg_latency_ms": _ms(t["latency_ms_sum"] / latency_n if latency_n else None),
            "first_ts": t.get("first_ts"),
            "last_ts": t.get("last_ts"),
        }

    def _index(self, column: str, start: float, bucket: int) -> str:
        # Both are numbers computed here, never user text; inlined so GROUP BY sees one expression.
        offset = f"({column} - {float(start)!r}) / {float(bucket)!r}"
        if self.db.dialect == "sqlite":
            return f"CAST({offset} AS INTEGER)"
        return f"CAST(FLOOR({offset}) AS BIGINT)"

    async def _bucket_ledger(
        self, by: str, start: float, bucket: int, since: float, until: float | None
    ) -> list[dict[str, Any]]:
        where, args = RequestFilter(since, until).where()
        group = TIMESERIES_GROUPS[by]
        source = "hedge_requests r" + (_KEY_JOIN if by == "key" else "")
        return await self.db.fetch(
            f"SELECT {self._index('r.ts', start, bucket)} AS b, {group} AS grp, COUNT(*) AS requests, "
            "SUM(CASE WHEN r.status >= 400 THEN 1 ELSE 0 END) AS errors, "
            "SUM(CASE WHEN r.attempts > 1 THEN 1 ELSE 0 END) AS failovers, "
            "SUM(r.cost_usd) AS cost, SUM(COALESCE(r.baseline_cost_usd, r.cost_usd)) AS baseline, "
            "SUM(r.prompt_tokens + r.completion_tokens) AS tokens "
            f"FROM {source} WHERE {where} GROUP BY 1, 2",
            args,
        )

    async def _bucket_rollup(
        self, by: str, start: float, bucket: int, since: float, until: float
    ) -> list[dict[str, Any]]:
        """The same sums as :meth:`_bucket_ledger`, from the hourly rollup (``bucket`` whole hours)."""
        table = rollup.for_group(by).table
        if by == "key":
            group = "COALESCE(k.name, NULLIF(u.key_id, ''), 'master key')"
            source = f"{table} u LEFT JOIN hedge_keys k ON k.id = u.key_id"
        else:
            group = f"COALESCE(NULLIF(u.{by}, ''), '-')"
            source = f"{table} u"
        return await self.db.fetch(
            f"SELECT {self._index('u.hour', start, bucket)} AS b, {group} AS grp, "
            "SUM(u.requests) AS requests, SUM(CASE WHEN u.failed = 1 THEN u.requests ELSE 0 END) AS errors, "
            "SUM(u.failovers) AS failovers, SUM(u.cost_usd) AS cost, SUM(u.baseline_usd) AS baseline, "
            "SUM(u.prompt_tokens + u.completion_tokens) AS tokens "
            f"FROM {source} WHERE u.hour >= ? AND u.hour < ? GROUP BY 1, 2",
            [int(since), int(until)],
        )

    async def timeseries(
        self, since: float, by: str = "provider", bucket: int | None = None, until: float | None = None
    ) -> dict[str, Any]:
        """Cost (and requests, errors, baseline) per time bucket, one series per group.

        ``bucket=None`` picks a width giving 50-100 points over the span from the
        window's first request (or ``since``, whichever is later) to ``until``.
        """
        if by not in TIMESERIES_GROUPS:
            raise ValueError(f"by: cannot group by {by!r}; choose from {', '.join(TIMESERIES_GROUPS)}")
        end = until if until is not None else time.time()
        if bucket is None:
            where, args = RequestFilter(since, until).where()
            first = await self.db.fetch(
                f"SELECT MIN(r.ts) AS first FROM hedge_requests r WHERE {where}", args
            )
            first_ts = first[0]["first"]
            start_raw = max(since, float(first_ts)) if first_ts is not None else since
            span = max(end - start_raw, 60.0)
            start_raw = min(start_raw, end - span)
            bucket = auto_bucket(span)
        else:
            start_raw = since
            if bucket < 1:
                raise ValueError("bucket: must be a whole number of seconds >= 1, or 'auto'")
            if (end - start_raw) / bucket > MAX_POINTS:
                raise ValueError(f"bucket: {bucket}s gives more than {MAX_POINTS} points over this range")
        start = math.floor(start_raw / bucket) * bucket
        count = max(1, math.ceil((end - start) / bucket))
        if bucket % rollup.HOUR == 0:  # whole hours: from the rollups, the ragged ends from the ledger
            rows = []
            for part in rollup.spans(since, until, await rollup.covered_from(self.db)):
                if part.rollup and part.until is not None:
                    rows += await self._bucket_rollup(by, start, bucket, part.since, part.until)
                else:
                    rows += await self._bucket_ledger(by, start, bucket, part.since, part.until)
        else:
            rows = await self._bucket_ledger(by, start, bucket, since, until)
        per_group: dict[str, list[float]] = {}
        per_group_requests: dict[str, list[int]] = {}
        totals = {
            name: [0.0] * count
            for name in ("cost_usd", "baseline_cost_usd", "requests", "errors", "failovers")
        }
        tokens = [0] * count
        for row in rows:
            i = min(max(_int(row["b"]), 0), count - 1)
            name = str(row["grp"])
            per_group.setdefault(name, [0.0] * count)[i] += _num(row["cost"])
            per_group_requests.setdefault(name, [0] * count)[i] += _int(row["requests"])
            totals["cost_usd"][i] += _num(row["cost"])
            totals["baseline_cost_usd"][i] += _num(row["baseline"])
            totals["requests"][i] += _int(row["requests"])
            totals["errors"][i] += _int(row["errors"])
            totals["failovers"][i] += _int(row["failovers"])
            tokens[i] += _int(row["tokens"])
        ranked = sorted(per_group, key=lambda g: (-sum(per_group[g]), -sum(per_group_requests[g]), g))
        series = []
        for name in ranked[:MAX_SERIES]:
            series.append((name, per_group[name], per_group_requests[name]))
        if len(ranked) > MAX_SERIES:
            other_cost = [0.0] * count
            other_requests = [0] * count
            for name in ranked[MAX_SERIES:]:
                other_cost = [a + b for a, b in zip(other_cost, per_group[name], strict=True)]
                other_requests = [
                    a + b for a, b in zip(other_requests, per_group_requests[name], strict=True)
                ]
            series.append(("other", other_cost, other_requests))
        return {
            "since": since,
            "until": end,
            "by": by,
            "bucket_s": bucket,
            "start": start,
            "buckets": [start + i * bucket for i in range(count)],
            "series": [
                {
                    "group": name,
                    "cost_usd": [_usd(v) for v in cost],
                    "requests": req,
                    "total_cost_usd": _usd(sum(cost)),
                    "total_requests": sum(req),
                }
                for name, cost, req in series
            ],
            "cost_usd": [_usd(v) for v in totals["cost_usd"]],
            "baseline_cost_usd": [_usd(v) for v in totals["baseline_cost_usd"]],
            "requests": [int(v) for v in totals["requests"]],
            "errors": [int(v) for v in totals["errors"]],
            "failovers": [int(v) for v in totals["failovers"]],
            "tokens": tokens,
        }

    async def latency(
        self, since: float, until: float | None = None, row_cap: int = LATENCY_ROW_CAP
    ) -> dict[str, Any]:
        """Per deployment: its attempts (exact, from the routes), what it was paid (exact, on the
        deployment that served) and sampled latency percentiles.

        ``served`` counts the requests the deployment answered, ``failed_attempts`` the attempts it
        failed (whether or not another deployment then served the request), ``cancelled_attempts``
        those cut off by the client leaving or the deadline (see :func:`_attempt_kind`);
        ``failure_rate`` is failed over failed plus served. ``failovers``, cost and tokens belong to
        the deployment that served (or last tried) each request, like the ledger's rows.

        Latency percentiles are over successful requests (a failure's latency
        says how fast it failed, not how fast the deployment serves); time to
        first token over successful streams.
        """
        where, args = RequestFilter(since, until).where()
        answered = where + " AND r.provider IS NOT NULL"
        counts = await self.db.fetch(
            "SELECT r.provider AS provider, r.model AS model, "
            "SUM(CASE WHEN r.attempts > 1 THEN 1 ELSE 0 END) AS failovers, "
            "SUM(CASE WHEN r.route IS NULL THEN 1 ELSE 0 END) AS unrouted, "
            "SUM(CASE WHEN r.route IS NULL AND r.status >= 400 THEN 1 ELSE 0 END) AS unrouted_errors, "
            "SUM(r.cost_usd) AS cost, SUM(r.prompt_tokens) AS prompt_tokens, "
            "SUM(r.completion_tokens) AS completion_tokens "
            f"FROM hedge_requests r WHERE {answered} GROUP BY r.provider, r.model",
            args,
        )
        if self.db.dialect == "sqlite":
            steps = "json_each(r.route) AS s"
            target, outcome = "json_extract(s.value, '$[0]')", "json_extract(s.value, '$[1]')"
        else:
            steps = "jsonb_array_elements(r.route::jsonb) AS s(value)"
            target, outcome = "s.value->>0", "s.value->>1"
        attempted = ", ".join(f"'{o.value}'" for o in Outcome if o.attempted)
        routed = await self.db.fetch(
            f"SELECT {target} AS target, {outcome} AS outcome, {_STATUS_CLASS} AS ended, COUNT(*) AS n "
            f"FROM hedge_requests r, {steps} WHERE {where} AND r.route IS NOT NULL "
            f"AND {outcome} IN ({attempted}) GROUP BY 1, 2, 3",
            args,
        )
        samples = await self.db.fetch(
            "SELECT r.provider AS provider, r.model AS model, r.latency_ms AS latency_ms, "
            "r.ttft_ms AS ttft_ms "
            f"FROM hedge_requests r WHERE {answered} AND r.status < 400 "
            f"ORDER BY r.ts DESC LIMIT {int(row_cap)}",
            args,
        )
        latencies: dict[str, list[float]] = {}
        ttfts: dict[str, list[float]] = {}
        for row in samples:
            dep = f"{row['provider']}/{row['model']}"
            if row["latency_ms"] is not None:
                latencies.setdefault(dep, []).append(float(row["latency_ms"]))
            if row["ttft_ms"] is not None:
                ttfts.setdefault(dep, []).append(float(row["ttft_ms"]))
        attempts: dict[str, _Attempts] = {}
        for row in routed:
            kind = _attempt_kind(str(row["outcome"]), str(row["ended"]))
            if kind is not None and row["target"] is not None:
                attempts.setdefault(str(row["target"]), _Attempts()).add(kind, _int(row["n"]))
        booked: dict[str, dict[str, Any]] = {}
        for c in counts:
            dep = f"{c['provider']}/{c['model']}"
            booked[dep] = c
            unrouted, unrouted_errors = _int(c["unrouted"]), _int(c["unrouted_errors"])
            if unrouted:  # written before routes were kept: one attempt on the row's deployment
                a = attempts.setdefault(dep, _Attempts())
                a.add("served", unrouted - unrouted_errors)
                a.add("failed", unrouted_errors)
        out: list[dict[str, Any]] = []
        for dep in sorted(set(attempts) | set(booked)):
            a = attempts.get(dep, _Attempts())
            c = booked.get(dep, {})
            provider, _, model = dep.partition("/")
            lat = sorted(latencies.get(dep, []))
            ttft = sorted(ttfts.get(dep, []))
            out.append(
                {
                    "deployment": dep,
                    "provider": provider,
                    "model": model,
                    "served": a.served,
                    "failed_attempts": a.failed,
                    "cancelled_attempts": a.cancelled,
                    "attempts": a.served + a.failed + a.cancelled,
                    "failure_rate": _rate(a.failed, a.failed + a.served),
                    "failovers": _int(c.get("failovers")),
                    "cost_usd": _usd(_num(c.get("cost"))),
                    "prompt_tokens": _int(c.get("prompt_tokens")),
                    "completion_tokens": _int(c.get("completion_tokens")),
                    "latency_samples": len(lat),
                    "latency_ms": {f"p{q}": _ms(percentile(lat, q / 100)) for q in (50, 95, 99)},
                    "ttft_samples": len(ttft),
                    "ttft_ms": {f"p{q}": _ms(percentile(ttft, q / 100)) for q in (50, 95, 99)},
                }
            )
        out.sort(key=lambda d: (-d["attempts"], d["deployment"]))
        return {
            "since": since,
            "until": until if until is not None else time.time(),
            "deployments": out,
            "sampled": len(samples) >= row_cap,
            "row_cap": row_cap,
        }

    async def requests(self, filters: RequestFilter, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """The request log, newest first, with the number of matching requests for paging."""
        limit = max(1, min(int(limit), MAX_PAGE))
        offset = max(0, int(offset))
        where, args = filters.where()
        source = "hedge_requests r" + _KEY_JOIN
        total = await self.db.fetch(f"SELECT COUNT(*) AS n FROM {source} WHERE {where}", args)
        rows = await self.db.fetch(
            f"SELECT r.*, k.name AS key_name FROM {source} WHERE {where} "
            f"ORDER BY r.ts DESC, r.request_id DESC LIMIT {limit} OFFSET {offset}",
            args,
        )
        return {
            "total": _int(total[0]["n"]),
            "limit": limit,
            "offset": offset,
            "rows": [_request_row(r) for r in rows],
        }

    async def request(self, request_id: str) -> dict[str, Any] | None:
        """One request with its bodies, when they were logged (``server.log_bodies``)."""
        rows = await self.db.fetch(
            "SELECT r.*, k.name AS key_name FROM hedge_requests r" + _KEY_JOIN + " WHERE r.request_id = ?",
            [request_id],
        )
        if not rows:
            return None
        out = _request_row(rows[0])
        bodies = await self.db.fetch(
            "SELECT request, response FROM hedge_bodies WHERE request_id = ?", [request_id]
        )
        out["request_body"] = bodies[0]["request"] if bodies else None
        out["response_body"] = bodies[0]["response"] if bodies else None
        return out

    async def facets(self, since: float, until: float | None = None) -> dict[str, list[str]]:
        """The distinct providers, models and aliases in the window, for the log's filter menus."""
        where, args = RequestFilter(since, until).where()
        out: dict[str, list[str]] = {}
        for column in ("provider", "model", "alias"):
            rows = await self.db.fetch(
                f"SELECT DISTINCT r.{column} AS v FROM hedge_requests r "
                f"WHERE {where} AND r.{column} IS NOT NULL ORDER BY 1 LIMIT 200",
                args,
            )
            out[column] = [str(r["v"]) for r in rows if r["v"]]
        return out
