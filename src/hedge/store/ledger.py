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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from hedge.record import RequestRecord, RouteStep
from hedge.store import rollup
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
    "cache_hit, error, route, shadow, experiment, arm, batch_id, cache_write_tokens, reasoning_tokens, "
    "service_tier, price_missing, usage_missing, input_cost_usd, cache_read_cost_usd, "
    "cache_write_cost_usd, output_cost_usd, reasoning_cost_usd, request_fee_usd"
)
_WIDTH = len(_COLUMNS.split(","))
_INSERT = f"INSERT INTO hedge_requests ({_COLUMNS}) VALUES ({', '.join('?' * _WIDTH)}) ON CONFLICT DO NOTHING"
_ADDED_LATER: Row = (None, 0, None, None, None, 0, 0, None, 0, 0, None, None, None, None, None, None)
"""What a row spooled by an older version gets for the columns it lacks, oldest first: the route,
shadow, experiment, arm and batch id (a NULL route counts as rows without one do; no shadow, in no
experiment, in no batch), then the token classes and the cost split (none known)."""
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
TIER_LIMIT = 32


def _tags(tags: frozenset[str]) -> str | None:
    """The tags as the JSON array ``by=tag`` reads: no U+0000 (jsonb rejects it), each capped, at most 64."""
    if not tags:
        return None
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
                str(step.outcome),  # a StrEnum: its value
                clean_text(step.detail, ROUTE_TEXT_LIMIT) or "",
            ]
            for step in route
        ]
    ).decode()


def _row(r: RequestRecord) -> tuple[Any, ...]:
    """The record as a row every column accepts, whatever a client or an upstream put in it."""
    tokens = (0, MAX_TOKENS)
    c = r.charges
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
        clamp_int(r.cache_write_tokens, *tokens),
        clamp_int(r.reasoning_tokens, *tokens),
        clean_text(r.service_tier, TIER_LIMIT) or None,
        int(bool(r.price_missing)),
        int(bool(r.usage_missing)),
        clean_float(c.input),
        clean_float(c.cache_read),
        clean_float(c.cache_write),
        clean_float(c.output),
        clean_float(c.reasoning),
        clean_float(c.request),
    )


def _upgraded(row: Row) -> Row:
    """A row spooled by an older version, widened to today's columns (see :data:`_ADDED_LATER`)."""
    missing = _WIDTH - len(row)
    if 0 < missing <= len(_ADDED_LATER):
        return (*row, *_ADDED_LATER[len(_ADDED_LATER) - missing :])
    return row


def _rollup_order(row: Row) -> tuple[Any, ...]:
    """Rows sorted by their rollup row (hour, alias, provider, model, failed), so PostgreSQL's trigger
    takes those rows' locks in the same order in every replica's batch (fewer lock waits, no deadlock on
    them; one on the per-key rollup is retried through the spool like any store failure)."""
    ts = row[1] if isinstance(row[1], int | float) else 0.0
    status = row[8] if isinstance(row[8], int) else 0
    key = (row[4], row[6], row[7], row[2], row[3])  # alias, provider, model, key_id, team
    return (
        int(ts // 3600),
        *(str(v or "") for v in key[:3]),
        status >= 400,
        *(str(v or "") for v in key[3:]),
    )


CHARGES = ("input", "cache_read", "cache_write", "output", "reasoning", "request")
"""The cost classes a spend row splits its cost into (see :class:`hedge.record.Charges`)."""
_CHARGE_COLUMNS = {
    "input": "input_cost_usd",
    "cache_read": "cache_read_cost_usd",
    "cache_write": "cache_write_cost_usd",
    "output": "output_cost_usd",
    "reasoning": "reasoning_cost_usd",
    "request": "request_fee_usd",
}
_SPEND_MEASURES = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "baseline_usd",
    *_CHARGE_COLUMNS.values(),
    "price_missing",
    "usage_missing",
)


@dataclass(slots=True)
class SpendRow:
    group: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    baseline_cost_usd: float
    cached_tokens: int = 0
    """Of ``input_tokens``, read from the provider's cache."""
    cache_write_tokens: int = 0
    """Of ``input_tokens``, written to the provider's cache."""
    reasoning_tokens: int = 0
    """Of ``output_tokens``, reasoning."""
    charges: dict[str, float] = field(default_factory=dict)
    """``cost_usd`` by class (:data:`CHARGES`); what rows written before the split cost is ``unsplit``."""
    price_missing: int = 0
    """Requests booked at 0 because their deployment had no price."""
    usage_missing: int = 0
    """Requests whose upstream reported no usage."""

    @property
    def savings_usd(self) -> float:
        return self.baseline_cost_usd - self.cost_usd

    @classmethod
    def of(cls, group: str, sums: dict[str, float]) -> SpendRow:
        charges = {name: sums.get(column, 0.0) for name, column in _CHARGE_COLUMNS.items()}
        unsplit = sums.get("cost_usd", 0.0) - sum(charges.values())
        if abs(unsplit) > 1e-9:
            charges["unsplit"] = unsplit
        return cls(
            group,
            int(sums.get("requests", 0)),
            int(sums.get("prompt_tokens", 0)),
            int(sums.get("completion_tokens", 0)),
            float(sums.get("cost_usd", 0.0)),
            float(sums.get("baseline_usd", 0.0)),
            int(sums.get("cached_tokens", 0)),
            int(sums.get("cache_write_tokens", 0)),
            int(sums.get("reasoning_tokens", 0)),
            charges,
            int(sums.get("price_missing", 0)),
            int(sums.get("usage_missing", 0)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": round(self.cost_usd, 10),
            "baseline_cost_usd": round(self.baseline_cost_usd, 10),
            "savings_usd": round(self.savings_usd, 10),
            "charges_usd": {k: round(v, 10) for k, v in self.charges.items()},
            "price_missing": self.price_missing,
            "usage_missing": self.usage_missing,
        }


_LEDGER_SUMS = ", ".join(f"SUM({dict(rollup.MEASURES)[n]}) AS {n}" for n in _SPEND_MEASURES)
"""The spend measures summed over ledger rows (``r``), as the rollups sum them."""
_ROLLUP_SUMS = ", ".join(f"SUM(u.{n}) AS {n}" for n in _SPEND_MEASURES)
"""The same measures summed over rollup rows (``u``)."""


def _add(into: dict[str, float], row: dict[str, Any]) -> None:
    for name in _SPEND_MEASURES:
        value = row.get(name)
        if value is not None:
            into[name] = into.get(name, 0) + float(value)


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
        rows = [_upgraded(row) for row in rows]
        if self.db.dialect == "postgresql":  # replicas' batches take the rollup rows' locks in order
            rows.sort(key=_rollup_order)  # (SQLite has one writer at a time: nothing to order)
        return await super()._write(rows)

    def _group(self, by: str, t: str) -> tuple[str, str]:
        """The group expression and any join for ``by`` over the ledger (``t`` = ``r``) or the rollup
        (``t`` = ``u``, whose NULLs are stored as ``''``)."""

        def col(name: str) -> str:
            return f"{t}.{name}" if t == "r" else f"NULLIF({t}.{name}, '')"

        if by == "key":
            return (
                f"COALESCE(k.name, {col('key_id')}, 'master key')",
                f" LEFT JOIN hedge_keys k ON k.id = {t}.key_id",
            )
        if by == "day":
            return self.db.day_expr(f"{t}.ts" if t == "r" else f"{t}.hour"), ""
        column = "alias" if by == "alias" else by
        return f"COALESCE({col(column)}, '-')", ""

    async def _spend_ledger(self, by: str, since: float, until: float | None) -> dict[str, dict[str, float]]:
        source = "hedge_requests r"
        if by == "tag":
            if self.db.dialect == "sqlite":
                source += ", json_each(r.tags) t"
            else:
                source += ", jsonb_array_elements_text(r.tags::jsonb) AS t(value)"
            group = "t.value"
        else:
            group, join = self._group(by, "r")
            source += join
        where = "r.ts >= ? AND r.status < 400"
        args: list[Any] = [since]
        if until is not None:
            where += " AND r.ts < ?"
            args.append(until)
        # Shadow copies are one line of their own (whatever the grouping), counted in the total.
        group = f"CASE WHEN COALESCE(r.shadow, 0) = 1 THEN '{SHADOW_GROUP}' ELSE {group} END"
        sql = f"SELECT {group} AS grp, {_LEDGER_SUMS} FROM {source} WHERE {where} GROUP BY {group}"
        out: dict[str, dict[str, float]] = {}
        for row in await self.db.fetch(sql, args):
            _add(out.setdefault(str(row["grp"]), {}), row)
        return out

    async def _spend_rollup(self, by: str, since: float, until: float) -> dict[str, dict[str, float]]:
        group, join = self._group(by, "u")
        sql = (
            f"SELECT {group} AS grp, {_ROLLUP_SUMS} FROM {rollup.for_group(by).table} u{join} "
            f"WHERE u.hour >= ? AND u.hour < ? AND u.failed = 0 GROUP BY {group}"
        )
        out: dict[str, dict[str, float]] = {}
        for row in await self.db.fetch(sql, [int(since), int(until)]):
            _add(out.setdefault(str(row["grp"]), {}), row)
        return out

    async def _shadow_apart(
        self, groups: dict[str, dict[str, float]], by: str, since: float, until: float
    ) -> None:
        """The rollups count shadow copies in their groups: move them to their own line, from the
        ledger (a partial index on shadow rows keeps this cheap; they are a sample of traffic)."""
        group, join = self._group(by, "r")
        sql = (
            f"SELECT {group} AS grp, {_LEDGER_SUMS} FROM hedge_requests r{join} "
            f"WHERE r.shadow = 1 AND r.ts >= ? AND r.ts < ? AND r.status < 400 GROUP BY {group}"
        )
        for row in await self.db.fetch(sql, [since, until]):
            name = str(row["grp"])
            _add(groups.setdefault(SHADOW_GROUP, {}), row)
            held = groups.setdefault(name, {})
            _add(held, {k: -float(v) for k, v in row.items() if k != "grp" and v is not None})
            if held.get("requests", 0) < 0.5:  # only shadow copies were in it
                del groups[name]

    async def spend(
        self, by: str, since: float, until: float | None = None
    ) -> tuple[list[SpendRow], SpendRow]:
        """Cost, tokens (by class), requests and savings of successful requests, grouped ``by``.

        Whole hours are read from the hourly rollup, the partial hours at the window's ends from the
        ledger (:func:`hedge.store.rollup.spans`); ``by=tag`` reads the ledger (a request has many tags).
        """
        if by not in GROUPS:
            raise ValueError(f"cannot group by {by!r}; choose from {', '.join(GROUPS)}")
        groups: dict[str, dict[str, float]] = {}
        total: dict[str, float] = {}
        covered = await rollup.covered_from(self.db)
        parts = [rollup.Span(since, until, False)] if by == "tag" else rollup.spans(since, until, covered)
        for span in parts:
            if span.rollup:
                assert span.until is not None
                found = await self._spend_rollup(by, span.since, span.until)
            else:
                found = await self._spend_ledger(by, span.since, span.until)
            for name, sums in found.items():
                _add(groups.setdefault(name, {}), sums)
                if by != "tag":
                    _add(total, sums)
            if span.rollup and span.until is not None and by != "tag":
                await self._shadow_apart(groups, by, span.since, span.until)
        if by == "tag":  # a request counts once in the total however many tags it has
            for span in rollup.spans(since, until, covered):
                found = await (
                    self._spend_rollup("team", span.since, span.until)
                    if span.rollup and span.until is not None
                    else self._spend_ledger("team", span.since, span.until)
                )
                for sums in found.values():
                    _add(total, sums)
        rows = [SpendRow.of(name, sums) for name, sums in groups.items()]
        rows.sort(key=lambda r: (-r.cost_usd, r.group))
        return rows, SpendRow.of("total", total)

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
