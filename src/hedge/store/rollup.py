"""Hourly rollups of the ledger, so spend reports and the dashboard's summary stay fast as it grows.

Two tables hold, per hour, the sums the reports read (requests, tokens by class, cost by class,
baseline, latency...): ``hedge_rollup_hourly`` per (alias, provider, model, failed), for the summary
and spend by provider, model, alias and day, and ``hedge_rollup_hourly_keys`` per (key, team,
failed), for spend by key and team. Apart, each stays small (a few rows an hour per deployment, one
per active key), where one table per (key x deployment) would approach one row per request. They
are kept by a trigger on ``hedge_requests`` (migration 7), so every writer (the ledger's batches,
a replayed spool, an import) keeps them exact, in the same transaction as the row, and a row the
INSERT skips as a duplicate (``ON CONFLICT DO NOTHING``) is not counted. ``hedge rollups rebuild``
recomputes them from the ledger (after a restore, or rows deleted by hand).

A report over ``[since, until)`` reads the whole hours inside it from the rollup and the partial
hours at either end from the ledger (a range scan of under an hour each on ``ts``), so answers are
exact, not rounded to the hour. NULL dimensions are stored as ``''`` (a primary key cannot hold
NULL); :data:`DIMENSIONS` gives each dimension's expression on both tables.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from hedge.store.db import Database

HOUR = 3600

# (rollup column, expression over a ledger row ``r``) for each summed measure.
MEASURES: tuple[tuple[str, str], ...] = (
    ("requests", "1"),
    ("failovers", "CASE WHEN r.attempts > 1 THEN 1 ELSE 0 END"),
    ("cache_hits", "r.cache_hit"),
    ("streams", "r.stream"),
    ("prompt_tokens", "r.prompt_tokens"),
    ("completion_tokens", "r.completion_tokens"),
    ("cached_tokens", "r.cached_tokens"),
    ("cache_write_tokens", "r.cache_write_tokens"),
    ("reasoning_tokens", "r.reasoning_tokens"),
    ("cost_usd", "r.cost_usd"),
    ("baseline_usd", "COALESCE(r.baseline_cost_usd, r.cost_usd)"),
    ("baseline_requests", "CASE WHEN r.baseline_cost_usd IS NULL THEN 0 ELSE 1 END"),
    ("input_cost_usd", "COALESCE(r.input_cost_usd, 0)"),
    ("cache_read_cost_usd", "COALESCE(r.cache_read_cost_usd, 0)"),
    ("cache_write_cost_usd", "COALESCE(r.cache_write_cost_usd, 0)"),
    ("output_cost_usd", "COALESCE(r.output_cost_usd, 0)"),
    ("reasoning_cost_usd", "COALESCE(r.reasoning_cost_usd, 0)"),
    ("request_fee_usd", "COALESCE(r.request_fee_usd, 0)"),
    ("latency_ms_sum", "COALESCE(r.latency_ms, 0)"),
    ("latency_n", "CASE WHEN r.latency_ms IS NULL THEN 0 ELSE 1 END"),
    ("price_missing", "r.price_missing"),
    ("usage_missing", "r.usage_missing"),
)
MEASURE_NAMES = tuple(name for name, _ in MEASURES)

_INTEGER = {
    "requests",
    "failovers",
    "cache_hits",
    "streams",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "baseline_requests",
    "latency_n",
    "price_missing",
    "usage_missing",
}


@dataclass(frozen=True, slots=True)
class Rollup:
    """One hourly rollup table: the ledger's sums per hour, per its ``keys`` and ``failed``."""

    table: str
    keys: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return ("hour", *self.keys, "failed", *MEASURE_NAMES, "first_ts", "last_ts")

    def create(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.table} (hour BIGINT NOT NULL, "
            + "".join(f"{c} TEXT NOT NULL, " for c in self.keys)
            + "failed INTEGER NOT NULL, "
            + ", ".join(
                f"{name} {'BIGINT' if name in _INTEGER else 'DOUBLE PRECISION'} NOT NULL"
                for name in MEASURE_NAMES
            )
            + ", first_ts DOUBLE PRECISION, last_ts DOUBLE PRECISION, "
            + f"PRIMARY KEY (hour, {''.join(c + ', ' for c in self.keys)}failed))"
        )

    def upsert(self, dialect: str, row: str) -> str:
        """Add the ledger row named ``row`` (``NEW`` in a trigger) to its rollup row."""
        values = [_hour(f"{row}.ts", dialect)]
        values += [f"COALESCE({row}.{c}, '')" for c in self.keys]
        values.append(f"CASE WHEN {row}.status >= 400 THEN 1 ELSE 0 END")
        values += [expr.replace("r.", f"{row}.") for _, expr in MEASURES]
        values += [f"{row}.ts", f"{row}.ts"]
        least, greatest = ("LEAST", "GREATEST") if dialect == "postgresql" else ("MIN", "MAX")
        t = self.table
        sets = [f"{m} = {t}.{m} + excluded.{m}" for m in MEASURE_NAMES]
        sets.append(f"first_ts = {least}({t}.first_ts, excluded.first_ts)")
        sets.append(f"last_ts = {greatest}({t}.last_ts, excluded.last_ts)")
        return (
            f"INSERT INTO {t} ({', '.join(self.columns)}) VALUES ({', '.join(values)}) "
            f"ON CONFLICT (hour, {''.join(c + ', ' for c in self.keys)}failed) DO UPDATE SET "
            + ", ".join(sets)
        )

    def rebuild(self, dialect: str, where: str | None = None) -> list[str]:
        keys = [_hour("r.ts", dialect), *(f"COALESCE(r.{c}, '')" for c in self.keys)]
        keys.append("CASE WHEN r.status >= 400 THEN 1 ELSE 0 END")
        sums = [f"SUM({expr})" for _, expr in MEASURES]
        positions = ", ".join(str(i) for i in range(1, len(keys) + 1))
        return [
            f"DELETE FROM {self.table}",
            f"INSERT INTO {self.table} ({', '.join(self.columns)}) SELECT {', '.join(keys)}, "
            f"{', '.join(sums)}, MIN(r.ts), MAX(r.ts) FROM hedge_requests r "
            f"{'WHERE ' + where + ' ' if where else ''}GROUP BY {positions}",
        ]


BY_DEPLOYMENT = Rollup("hedge_rollup_hourly", ("alias", "provider", "model"))
"""For the summary and spend by provider, model, alias and day: few rows an hour."""
BY_KEY = Rollup("hedge_rollup_hourly_keys", ("key_id", "team"))
"""For spend by key and team: one row an hour per active key."""
ROLLUPS = (BY_DEPLOYMENT, BY_KEY)
TABLE = BY_DEPLOYMENT.table


def for_group(by: str) -> Rollup:
    """The rollup that answers a report grouped ``by``."""
    return BY_KEY if by in ("key", "team") else BY_DEPLOYMENT


def _hour(ts: str, dialect: str) -> str:
    if dialect == "sqlite":
        return f"(CAST({ts} / {HOUR} AS INTEGER) * {HOUR})"
    return f"(CAST(FLOOR({ts} / {HOUR}) AS BIGINT) * {HOUR})"


def create_statements() -> list[str]:
    return [r.create() for r in ROLLUPS]


def trigger_statements(dialect: str) -> list[str]:
    """The trigger that adds each new ledger row to its hour's row of every rollup."""
    body = "; ".join(r.upsert(dialect, "NEW") for r in ROLLUPS)
    if dialect == "sqlite":
        return [
            "CREATE TRIGGER IF NOT EXISTS hedge_requests_rollup AFTER INSERT ON hedge_requests "
            f"BEGIN {body}; END"
        ]
    return [
        "CREATE OR REPLACE FUNCTION hedge_rollup_add() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN {body}; RETURN NULL; END $$",
        "DROP TRIGGER IF EXISTS hedge_requests_rollup ON hedge_requests",
        "CREATE TRIGGER hedge_requests_rollup AFTER INSERT ON hedge_requests "
        "FOR EACH ROW EXECUTE FUNCTION hedge_rollup_add()",
    ]


STATE_TABLE = "hedge_rollup_state"
"""One row: ``covered_from``, the first hour the rollups hold every ledger row of; reports read
earlier hours from the ledger."""
MIGRATION_DAYS = 35
"""How far back migration 7 builds the rollups: a month's reports at once, while a ledger of any
size migrates in one bounded pass (``hedge rollups rebuild`` covers the rest)."""


def state_statements() -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} "
        "(id INTEGER PRIMARY KEY, covered_from DOUBLE PRECISION NOT NULL)"
    ]


def _days_ago(dialect: str, days: int) -> str:
    """SQL for the start of the hour ``days`` days before now."""
    back = days * 86400
    if dialect == "sqlite":
        return f"(CAST((CAST(strftime('%s', 'now') AS REAL) - {back}) / {HOUR} AS INTEGER) * {HOUR})"
    return f"(FLOOR((EXTRACT(EPOCH FROM now()) - {back}) / {HOUR}) * {HOUR})"


def rebuild_statements(dialect: str, days: int | None = None) -> list[str]:
    """Recompute the rollups from the ledger, all of it (``days`` None) or its last ``days`` days,
    in one transaction (on PostgreSQL, writers wait for it), and record what they cover."""
    lock = ["LOCK TABLE hedge_requests IN SHARE MODE"] if dialect == "postgresql" else []
    since = "0" if days is None else _days_ago(dialect, days)
    where = None if days is None else f"r.ts >= {since}"
    return [
        *lock,
        *(s for r in ROLLUPS for s in r.rebuild(dialect, where)),
        f"DELETE FROM {STATE_TABLE}",
        f"INSERT INTO {STATE_TABLE} (id, covered_from) VALUES (1, {since})",
    ]


async def covered_from(db: Database) -> float:
    """The first hour the rollups cover (infinity if they were never built: read the ledger)."""
    rows = await db.fetch(f"SELECT covered_from FROM {STATE_TABLE} WHERE id = 1")
    return float(rows[0]["covered_from"]) if rows else math.inf


@dataclass(frozen=True, slots=True)
class Span:
    """A part of a report's window: ``rollup`` for whole hours, else ledger rows."""

    since: float
    until: float | None
    """None: open-ended (rows still being written count)."""
    rollup: bool


def spans(since: float, until: float | None, covered: float = 0.0) -> list[Span]:
    """``[since, until)`` as the whole hours inside it the rollups cover (from ``covered`` on: read
    from the rollups) and the rest (read from the ledger); an empty part is left out."""
    end = time.time() if until is None else until
    first = max(math.ceil(since / HOUR), math.ceil(covered / HOUR) if math.isfinite(covered) else math.inf)
    last = math.floor(end / HOUR) * HOUR
    if not math.isfinite(first) or first * HOUR >= last:
        return [Span(since, until, False)]
    start = first * HOUR
    out = []
    if since < start:
        out.append(Span(since, start, False))
    out.append(Span(start, last, True))
    out.append(Span(last, until, False))
    return out
