"""The spend ledger: every request recorded, written in batches off the request path.

``Ledger.__call__`` is a record sink: it only appends to an in-memory buffer.
A background task writes the buffer every ``flush_interval_s`` (or sooner
when ``flush_batch`` records are waiting); ``close`` writes what remains, so a
clean shutdown loses nothing and a crash loses at most one flush interval.
With a ``state_dir``, records the database cannot take (it is down, or does not
answer) wait in a spool file there and are written when it is back; a record it
rejects is quarantined without holding back the others (see
:mod:`hedge.store.batch`). Rows are sanitized first: text without U+0000 and
capped, integers inside their column's range, so no request's content can
poison a batch.

Each row keeps the request's route (``route``: a JSON array of ``[target, outcome,
detail]``, see :class:`hedge.record.RouteStep`), written in the same INSERT, so the
dashboard can count every deployment's attempts, not only the one that served. Rows
written before it was kept have ``route`` NULL; a new row always has an array (``[]``
when nothing was tried).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from hedge.record import RequestRecord, RouteStep
from hedge.store.batch import BatchWriter
from hedge.store.db import Database
from hedge.store.spool import Row
from hedge.store.values import INT32, clamp_int, clean_float, clean_text

log = logging.getLogger("hedge.ledger")

GroupBy = Literal["provider", "model", "alias", "key", "team", "tag", "day"]
GROUPS: tuple[str, ...] = ("provider", "model", "alias", "key", "team", "tag", "day")

_COLUMNS = (
    "request_id, ts, key_id, team, alias, endpoint, provider, model, status, stream, prompt_tokens, "
    "completion_tokens, cached_tokens, cost_usd, baseline_cost_usd, latency_ms, ttft_ms, attempts, tags, "
    "cache_hit, error, route, shadow, experiment, arm, batch_id"
)
_WIDTH = len(_COLUMNS.split(","))
_INSERT = f"INSERT INTO hedge_requests ({_COLUMNS}) VALUES ({', '.join('?' * _WIDTH)}) ON CONFLICT DO NOTHING"
_ADDED_LATER: tuple[Any, ...] = (None, 0, None, None, None)
"""What an old spooled row gets for the columns it lacks, newest last (route, shadow, experiment, arm,
batch_id): a row spooled by a version that did not keep the route lacks all five."""
SHADOW_GROUP = "(shadow)"
"""The group of a spend report that holds every shadow copy, whatever the grouping."""


ERROR_LIMIT = 500
TAG_LIMIT = 200
MAX_TAGS = 64
MAX_TOKENS = 2**48
"""Token counts are clamped to this: far beyond any real request, and a SUM of many still fits 64 bits."""
MAX_ROUTE_STEPS = 256
"""Steps kept of one route: beyond it the skips (which count as nothing) go first, then the oldest steps."""
ROUTE_TEXT_LIMIT = 200


def _tags(tags: frozenset[str]) -> str | None:
    """The tags as the JSON array ``by=tag`` reads: no U+0000 (jsonb rejects it), each capped, at most 64."""
    cleaned = sorted({t for t in (clean_text(tag, TAG_LIMIT) for tag in tags) if t})[:MAX_TAGS]
    return orjson.dumps(cleaned).decode() if cleaned else None


def _route(route: list[RouteStep]) -> str:
    """The route as the JSON array the dashboard reads: ``[[target, outcome, detail], ...]``, texts
    without U+0000 (jsonb rejects it) and capped; ``[]`` for a request that tried nothing."""
    if len(route) > MAX_ROUTE_STEPS:  # many deployments skipped round after round
        route = [step for step in route if not step.outcome.skipped][-MAX_ROUTE_STEPS:]
    return orjson.dumps(
        [
            [
                clean_text(step.target, ROUTE_TEXT_LIMIT) or "",
                str(step.outcome.value),
                clean_text(step.detail, ROUTE_TEXT_LIMIT) or "",
            ]
            for step in route
        ]
    ).decode()


def _row(r: RequestRecord) -> tuple[Any, ...]:
    """The record as a row every column accepts, whatever a client or an upstream put in it."""
    tokens = (0, MAX_TOKENS)
    return (
        clean_text(r.request_id) or "",
        clean_float(r.started_at),
        clean_text(r.key_id),
        clean_text(r.team),
        clean_text(r.alias),
        clean_text(r.endpoint),
        clean_text(r.provider),
        clean_text(r.model),
        clamp_int(r.status, *INT32),
        int(bool(r.stream)),
        clamp_int(r.prompt_tokens, *tokens),
        clamp_int(r.completion_tokens, *tokens),
        clamp_int(r.cached_tokens, *tokens),
        clean_float(r.cost_usd),
        clean_float(r.baseline_cost_usd, nullable=True),
        clean_float(r.latency_ms, nullable=True),
        clean_float(r.ttft_ms, nullable=True),
        clamp_int(r.attempts, *INT32),
        _tags(r.tags),
        int(bool(r.cache_hit)),
        clean_text(r.error, ERROR_LIMIT) or None,
        _route(r.route),
        int(bool(r.shadow)),
        clean_text(r.experiment, TAG_LIMIT),
        clean_text(r.arm, TAG_LIMIT),
        clean_text(r.batch_id),
    )


def _with_route(row: Row) -> Row:
    """A row spooled before the route (or the later columns) was kept gets the defaults of the
    columns it lacks: a NULL route counts as rows without one do; it is no shadow, in no experiment
    and in no batch."""
    missing = _WIDTH - len(row)
    if 0 < missing <= len(_ADDED_LATER):
        return (*row, *_ADDED_LATER[len(_ADDED_LATER) - missing :])
    return row


@dataclass(slots=True)
class SpendRow:
    group: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    baseline_cost_usd: float

    @property
    def savings_usd(self) -> float:
        return self.baseline_cost_usd - self.cost_usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 10),
            "baseline_cost_usd": round(self.baseline_cost_usd, 10),
            "savings_usd": round(self.savings_usd, 10),
        }


class Ledger(BatchWriter[RequestRecord]):
    def __init__(
        self,
        db: Database,
        flush_interval_s: float = 1.0,
        flush_batch: int = 500,
        max_buffer: int = 1_000_000,
        *,
        state_dir: str | Path | None = None,
        shutdown_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(
            db,
            _INSERT,
            _row,
            what="ledger",
            flush_interval_s=flush_interval_s,
            flush_batch=flush_batch,
            max_buffer=max_buffer,
            state_dir=state_dir,
            shutdown_timeout_s=shutdown_timeout_s,
        )

    def __call__(self, record: RequestRecord) -> None:
        self.add(record)

    async def _write(self, rows: list[Row]) -> int:
        # Spool files outlive upgrades: rows an older version spooled are replayed with this INSERT.
        return await super()._write([_with_route(row) for row in rows])

    async def spend(
        self, by: str, since: float, until: float | None = None
    ) -> tuple[list[SpendRow], SpendRow]:
        """Cost, tokens, requests and savings of successful requests, grouped ``by``."""
        if by not in GROUPS:
            raise ValueError(f"cannot group by {by!r}; choose from {', '.join(GROUPS)}")
        source = "hedge_requests r"
        if by == "key":
            group = "COALESCE(k.name, r.key_id, 'master key')"
            source += " LEFT JOIN hedge_keys k ON k.id = r.key_id"
        elif by == "team":
            group = "COALESCE(r.team, '-')"
        elif by == "day":
            group = self.db.day_expr("r.ts")
        elif by == "tag":
            if self.db.dialect == "sqlite":
                source += ", json_each(r.tags) t"
            else:
                source += ", jsonb_array_elements_text(r.tags::jsonb) AS t(value)"
            group = "t.value"
        else:
            group = f"COALESCE(r.{by}, '-')"
        where = "r.ts >= ? AND r.status < 400"
        args: list[Any] = [since]
        if until is not None:
            where += " AND r.ts < ?"
            args.append(until)
        # Shadow copies are one line of their own (whatever the grouping), counted in the total.
        group = f"CASE WHEN COALESCE(r.shadow, 0) = 1 THEN '{SHADOW_GROUP}' ELSE {group} END"
        sql = (
            f"SELECT {group} AS grp, COUNT(*) AS requests, SUM(r.prompt_tokens) AS input_tokens, "
            "SUM(r.completion_tokens) AS output_tokens, SUM(r.cost_usd) AS cost, "
            "SUM(COALESCE(r.baseline_cost_usd, r.cost_usd)) AS baseline "
            f"FROM {source} WHERE {where} GROUP BY {group} ORDER BY cost DESC, grp"
        )
        rows = [
            SpendRow(
                str(r["grp"]),
                int(r["requests"]),
                int(r["input_tokens"] or 0),
                int(r["output_tokens"] or 0),
                float(r["cost"] or 0.0),
                float(r["baseline"] or 0.0),
            )
            for r in await self.db.fetch(sql, args)
        ]
        total_sql = (
            "SELECT COUNT(*) AS requests, SUM(prompt_tokens) AS input_tokens, "
            "SUM(completion_tokens) AS output_tokens, SUM(cost_usd) AS cost, "
            f"SUM(COALESCE(baseline_cost_usd, cost_usd)) AS baseline FROM hedge_requests r WHERE {where}"
        )
        t = (await self.db.fetch(total_sql, args))[0]
        total = SpendRow(
            "total",
            int(t["requests"] or 0),
            int(t["input_tokens"] or 0),
            int(t["output_tokens"] or 0),
            float(t["cost"] or 0.0),
            float(t["baseline"] or 0.0),
        )
        return rows, total

    async def key_spend(self, key_id: str, since: float) -> float:
        rows = await self.db.fetch(
            "SELECT SUM(cost_usd) AS cost FROM hedge_requests "
            "WHERE key_id = ? AND ts >= ? AND COALESCE(shadow, 0) = 0",
            [key_id, since],
        )
        return float(rows[0]["cost"] or 0.0)

    async def team_spend(self, team: str, since: float) -> float:
        rows = await self.db.fetch(
            "SELECT SUM(cost_usd) AS cost FROM hedge_requests WHERE team = ? AND ts >= ?", [team, since]
        )
        return float(rows[0]["cost"] or 0.0)

    async def records(self, limit: int = 100) -> list[dict[str, Any]]:
        return await self.db.fetch(f"SELECT * FROM hedge_requests ORDER BY ts DESC LIMIT {int(limit)}")


def parse_since(value: str, now: float | None = None) -> float:
    """``7d``, ``24h``, ``30m``, ``90s``, or an epoch number, to an epoch timestamp."""
    now = time.time() if now is None else now
    value = value.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if value and value[-1] in units:
        try:
            return now - float(value[:-1]) * units[value[-1]]
        except ValueError:
            pass
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"cannot read {value!r} as a duration like 7d, 24h, 30m") from None
