"""Hourly rollups of the ledger, so spend reports and the dashboard's summary stay fast as it grows.

``hedge_rollup_hourly`` holds, per hour and per (key, team, alias, provider, model, failed), the sums
the reports read: requests, tokens by class, cost by class, baseline, latency... It is kept by a
trigger on ``hedge_requests`` (migration 7), so every writer (the ledger's batches, a replayed spool,
an import) keeps it exact, in the same transaction as the row, and a row the INSERT skips as a
duplicate (``ON CONFLICT DO NOTHING``) is not counted. ``hedge rollups rebuild`` recomputes it from
the ledger (after a restore, or rows deleted by hand).

A report over ``[since, until)`` reads the whole hours inside it from the rollup and the partial
hours at either end from the ledger (a range scan of under an hour each on ``ts``), so answers are
exact, not rounded to the hour. NULL dimensions are stored as ``''`` (a primary key cannot hold
NULL); :data:`DIMENSIONS` gives each dimension's expression on both tables.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

HOUR = 3600

TABLE = "hedge_rollup_hourly"

KEY_COLUMNS = ("key_id", "team", "alias", "provider", "model")

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

CREATE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (hour BIGINT NOT NULL, "
    + ", ".join(f"{c} TEXT NOT NULL" for c in KEY_COLUMNS)
    + ", failed INTEGER NOT NULL, "
    + ", ".join(
        f"{name} {'BIGINT' if name in _INTEGER else 'DOUBLE PRECISION'} NOT NULL" for name in MEASURE_NAMES
    )
    + ", first_ts DOUBLE PRECISION, last_ts DOUBLE PRECISION, "
    + f"PRIMARY KEY (hour, {', '.join(KEY_COLUMNS)}, failed))"
)

_COLUMNS = ("hour", *KEY_COLUMNS, "failed", *MEASURE_NAMES, "first_ts", "last_ts")
_CONFLICT = f"ON CONFLICT (hour, {', '.join(KEY_COLUMNS)}, failed) DO UPDATE SET "


def _hour(ts: str, dialect: str) -> str:
    if dialect == "sqlite":
        return f"(CAST({ts} / {HOUR} AS INTEGER) * {HOUR})"
    return f"(CAST(FLOOR({ts} / {HOUR}) AS BIGINT) * {HOUR})"


def _row_values(dialect: str, row: str) -> list[str]:
    """The rollup values of one ledger row named ``row`` (``NEW`` in a trigger)."""
    values = [_hour(f"{row}.ts", dialect)]
    values += [f"COALESCE({row}.{c}, '')" for c in KEY_COLUMNS]
    values.append(f"CASE WHEN {row}.status >= 400 THEN 1 ELSE 0 END")
    values += [expr.replace("r.", f"{row}.") for _, expr in MEASURES]
    values += [f"{row}.ts", f"{row}.ts"]
    return values


def _upsert(dialect: str) -> str:
    table = TABLE
    least, greatest = ("LEAST", "GREATEST") if dialect == "postgresql" else ("MIN", "MAX")
    sets = [f"{m} = {table}.{m} + excluded.{m}" for m in MEASURE_NAMES]
    sets.append(f"first_ts = {least}({table}.first_ts, excluded.first_ts)")
    sets.append(f"last_ts = {greatest}({table}.last_ts, excluded.last_ts)")
    return _CONFLICT + ", ".join(sets)


def trigger_statements(dialect: str) -> list[str]:
    """The trigger that adds each new ledger row to its hour's rollup row."""
    insert = (
        f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) VALUES ({', '.join(_row_values(dialect, 'NEW'))}) "
        + _upsert(dialect)
    )
    if dialect == "sqlite":
        return [
            "CREATE TRIGGER IF NOT EXISTS hedge_requests_rollup AFTER INSERT ON hedge_requests "
            f"BEGIN {insert}; END"
        ]
    return [
        "CREATE OR REPLACE FUNCTION hedge_rollup_add() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN {insert}; RETURN NULL; END $$",
        "DROP TRIGGER IF EXISTS hedge_requests_rollup ON hedge_requests",
        "CREATE TRIGGER hedge_requests_rollup AFTER INSERT ON hedge_requests "
        "FOR EACH ROW EXECUTE FUNCTION hedge_rollup_add()",
    ]


def rebuild_statements(dialect: str) -> list[str]:
    """Recompute every rollup row from the ledger (one transaction; writers wait on PostgreSQL)."""
    keys = [_hour("r.ts", dialect), *(f"COALESCE(r.{c}, '')" for c in KEY_COLUMNS)]
    keys.append("CASE WHEN r.status >= 400 THEN 1 ELSE 0 END")
    sums = [f"SUM({expr})" for _, expr in MEASURES]
    select = (
        f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) SELECT {', '.join(keys)}, {', '.join(sums)}, "
        f"MIN(r.ts), MAX(r.ts) FROM hedge_requests r GROUP BY {', '.join(str(i) for i in range(1, 8))}"
    )
    lock = ["LOCK TABLE hedge_requests IN SHARE MODE"] if dialect == "postgresql" else []
    return [*lock, f"DELETE FROM {TABLE}", select]


@dataclass(frozen=True, slots=True)
class Span:
    """A part of a report's window: ``rollup`` for whole hours, else ledger rows."""

    since: float
    until: float | None
    """None: open-ended (rows still being written count)."""
    rollup: bool


def spans(since: float, until: float | None) -> list[Span]:
    """``[since, until)`` as the whole hours inside it (read from the rollup) and the partial hours
    at its ends (read from the ledger); an empty part is left out."""
    end = time.time() if until is None else until
    first = math.ceil(since / HOUR) * HOUR
    last = math.floor(end / HOUR) * HOUR
    if last <= first:
        return [Span(since, until, False)]
    out = []
    if since < first:
        out.append(Span(since, first, False))
    out.append(Span(first, last, True))
    out.append(Span(last, until, False))
    return out
