"""What experiments keep in the state database: feedback, shadow pairs and weight changes.

Every replica reads and writes the same tables, so assignment weights, results and the daily
shadow spend are shared. Per-arm results come from one aggregate query over the ledger (cost,
latency, the arm a request was assigned) joined with the feedback (the metric), as sufficient
statistics: no per-request rows are read however long an experiment runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from hedge.store.batch import BatchWriter
from hedge.store.db import Database
from hedge.store.values import INT32, clamp_int, clean_float, clean_text

ANSWER_LIMIT = 64 * 1024
"""Characters kept of each answer of a shadow pair."""


@dataclass(frozen=True, slots=True)
class ArmAggregate:
    arm: str
    requests: int
    cost_usd: float
    latency_ms: float | None
    n: int
    """Requests of the arm with a value of the experiment's metric."""
    total: float
    squares: float
    binary: bool


@dataclass(frozen=True, slots=True)
class PairAggregate:
    alias: str
    target: str
    grader: str
    pairs: int
    graded: int
    errors: int
    """Pairs whose grader failed, or whose candidate failed to answer."""
    total: float
    squares: float
    binary: bool
    primary_cost_usd: float
    shadow_cost_usd: float
    primary_latency_ms: float | None
    shadow_latency_ms: float | None


@dataclass(frozen=True, slots=True)
class Change:
    slot: int
    ts: float
    weights: dict[str, float]
    evidence: dict[str, Any]


PAIR_INSERT = (
    "INSERT INTO hedge_shadow_pairs (shadow_request_id, primary_request_id, ts, alias, target, grader, "
    "status, score, grade_error, primary_answer, shadow_answer, primary_cost_usd, shadow_cost_usd, "
    "primary_latency_ms, shadow_latency_ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


def pair_row(pair: Mapping[str, Any]) -> tuple[Any, ...]:
    """A shadow pair (the ``hedge_shadow_pairs`` columns by name) as a row: texts cleaned and capped."""
    return (
        clean_text(pair["shadow_request_id"]) or "",
        clean_text(pair["primary_request_id"]) or "",
        clean_float(pair["ts"]),
        clean_text(pair["alias"]) or "",
        clean_text(pair["target"]) or "",
        clean_text(pair["grader"]) or "",
        clamp_int(pair["status"], *INT32),
        clean_float(pair.get("score"), nullable=True),
        clean_text(pair.get("grade_error"), 500),
        clean_text(pair.get("primary_answer"), ANSWER_LIMIT),
        clean_text(pair.get("shadow_answer"), ANSWER_LIMIT),
        clean_float(pair["primary_cost_usd"]),
        clean_float(pair["shadow_cost_usd"]),
        clean_float(pair.get("primary_latency_ms"), nullable=True),
        clean_float(pair.get("shadow_latency_ms"), nullable=True),
    )


class PairLog(BatchWriter[Mapping[str, Any]]):
    """Shadow pairs, written in batches like the ledger (spooled while the database is down)."""

    def __init__(
        self,
        db: Database,
        flush_interval_s: float = 1.0,
        *,
        state_dir: str | Path | None = None,
        shutdown_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(
            db,
            PAIR_INSERT,
            pair_row,
            what="shadow pairs",
            flush_interval_s=flush_interval_s,
            max_buffer=100_000,
            state_dir=state_dir,
            shutdown_timeout_s=shutdown_timeout_s,
        )


class ExperimentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- feedback ---------------------------------------------------------------------------------

    async def request_owner(self, request_id: str) -> tuple[bool, str | None]:
        """Whether the ledger holds ``request_id`` (not a shadow copy), and the key that made it."""
        rows = await self.db.fetch(
            "SELECT key_id FROM hedge_requests WHERE request_id = ? AND COALESCE(shadow, 0) = 0",
            [request_id],
        )
        if not rows:
            return False, None
        return True, rows[0]["key_id"]

    async def put_feedback(
        self, request_id: str, metric: str, value: float, key_id: str | None, ts: float | None = None
    ) -> None:
        await self.db.execute(
            "INSERT INTO hedge_feedback (request_id, metric, value, key_id, ts) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (request_id, metric) DO UPDATE SET value = excluded.value, ts = excluded.ts",
            [request_id, metric, value, key_id, time.time() if ts is None else ts],
        )

    async def arms(self, experiment: str, metric: str, since: float = 0.0) -> list[ArmAggregate]:
        rows = await self.db.fetch(
            "SELECT r.arm AS arm, COUNT(*) AS requests, SUM(r.cost_usd) AS cost, "
            "AVG(r.latency_ms) AS latency, COUNT(f.value) AS n, SUM(f.value) AS total, "
            "SUM(f.value * f.value) AS squares, "
            "SUM(CASE WHEN f.value IS NOT NULL AND f.value <> 0 AND f.value <> 1 THEN 1 ELSE 0 END) "
            "AS scores "
            "FROM hedge_requests r LEFT JOIN hedge_feedback f "
            "ON f.request_id = r.request_id AND f.metric = ? "
            "WHERE r.experiment = ? AND r.status < 400 AND r.ts >= ? AND r.arm IS NOT NULL "
            "GROUP BY r.arm ORDER BY r.arm",
            [metric, experiment, since],
        )
        return [
            ArmAggregate(
                str(r["arm"]),
                int(r["requests"]),
                float(r["cost"] or 0.0),
                None if r["latency"] is None else float(r["latency"]),
                int(r["n"] or 0),
                float(r["total"] or 0.0),
                float(r["squares"] or 0.0),
                int(r["scores"] or 0) == 0,
            )
            for r in rows
        ]

    # -- shadow pairs -----------------------------------------------------------------------------

    async def add_pair(self, pair: dict[str, Any]) -> None:
        """One shadow pair, written now (:class:`PairLog` batches them off the request path)."""
        await self.db.execute(PAIR_INSERT, pair_row(pair))

    async def shadow_spent(self, alias: str, target: str, since: float) -> float:
        rows = await self.db.fetch(
            "SELECT SUM(shadow_cost_usd) AS cost FROM hedge_shadow_pairs "
            "WHERE alias = ? AND target = ? AND ts >= ?",
            [alias, target, since],
        )
        return float(rows[0]["cost"] or 0.0)

    async def pair_summary(self, since: float = 0.0, alias: str | None = None) -> list[PairAggregate]:
        where = "ts >= ?"
        args: list[Any] = [since]
        if alias is not None:
            where += " AND alias = ?"
            args.append(alias)
        rows = await self.db.fetch(
            "SELECT alias, target, grader, COUNT(*) AS pairs, COUNT(score) AS graded, "
            "SUM(CASE WHEN score IS NULL THEN 1 ELSE 0 END) AS errors, SUM(score) AS total, "
            "SUM(score * score) AS squares, "
            "SUM(CASE WHEN score IS NOT NULL AND score <> 0 AND score <> 1 THEN 1 ELSE 0 END) AS scores, "
            "SUM(primary_cost_usd) AS primary_cost, SUM(shadow_cost_usd) AS shadow_cost, "
            "AVG(primary_latency_ms) AS primary_latency, AVG(shadow_latency_ms) AS shadow_latency "
            f"FROM hedge_shadow_pairs WHERE {where} GROUP BY alias, target, grader ORDER BY alias, target",
            args,
        )
        return [
            PairAggregate(
                str(r["alias"]),
                str(r["target"]),
                str(r["grader"]),
                int(r["pairs"]),
                int(r["graded"] or 0),
                int(r["errors"] or 0),
                float(r["total"] or 0.0),
                float(r["squares"] or 0.0),
                int(r["scores"] or 0) == 0,
                float(r["primary_cost"] or 0.0),
                float(r["shadow_cost"] or 0.0),
                None if r["primary_latency"] is None else float(r["primary_latency"]),
                None if r["shadow_latency"] is None else float(r["shadow_latency"]),
            )
            for r in rows
        ]

    async def pairs(self, alias: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The latest pairs, answers included."""
        where, args = ("WHERE alias = ?", [alias]) if alias is not None else ("", [])
        return await self.db.fetch(
            f"SELECT * FROM hedge_shadow_pairs {where} ORDER BY ts DESC LIMIT {int(limit)}", args
        )

    # -- adaptive weights -------------------------------------------------------------------------

    async def add_change(
        self,
        experiment: str,
        slot: int,
        config_hash: str,
        weights: dict[str, float],
        evidence: dict[str, Any],
        ts: float,
    ) -> Change:
        """Record the change decided for ``slot``, unless another replica already did: either way,
        the change that holds for the slot."""
        await self.db.execute(
            "INSERT INTO hedge_experiment_changes (experiment, slot, ts, config_hash, weights, evidence) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [
                experiment,
                slot,
                ts,
                config_hash,
                orjson.dumps(weights).decode(),
                orjson.dumps(evidence).decode(),
            ],
        )
        rows = await self.db.fetch(
            "SELECT slot, ts, weights, evidence FROM hedge_experiment_changes "
            "WHERE experiment = ? AND slot = ?",
            [experiment, slot],
        )
        return _change(rows[0])

    async def changes(self, experiment: str, config_hash: str, limit: int = 50) -> list[Change]:
        """The experiment's changes for its current arms, newest first."""
        rows = await self.db.fetch(
            "SELECT slot, ts, weights, evidence FROM hedge_experiment_changes "
            f"WHERE experiment = ? AND config_hash = ? ORDER BY slot DESC LIMIT {int(limit)}",
            [experiment, config_hash],
        )
        return [_change(r) for r in rows]


def _change(row: dict[str, Any]) -> Change:
    return Change(
        int(row["slot"]), float(row["ts"]), orjson.loads(row["weights"]), orjson.loads(row["evidence"])
    )
