"""Files, batches and batch lines in the state database (migration 6), shared by every replica.

A batch's lines are rows of ``hedge_batch_lines``; replicas take lines by *claiming* them: one
``UPDATE ... RETURNING`` sets a line ``running`` under a claim token of the replica's with a lease
(on PostgreSQL the candidate rows are locked ``FOR UPDATE SKIP LOCKED``, so two replicas never
claim the same line and neither waits for the other). A line whose lease has lapsed (its replica
died) may be claimed again. Finishing a line is conditional on still holding its claim, so a line
is answered once even if a replica that lost its claim finishes too: its answer is discarded.

Files and batches belong to the key that created them (``owner``: the key's id, ``""`` for the
master key) and every read is scoped by it; ``owner=None`` (the CLI, the worker) sees them all.
Counts, cost and savings are summed from the lines when asked, never kept twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from hedge.store.db import Database

ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
"""Batch statuses a worker still has work for."""
CANCELLABLE = ("validating", "in_progress")
FINAL = ("completed", "failed", "expired", "cancelled")
SUCCEEDED = "succeeded"
ERRORED = ("failed", "expired", "cancelled")
"""Line states that go to the error file (``succeeded`` lines go to the output file)."""


def owner_of(key_id: str | None) -> str:
    """A row's owner: the virtual key's id, or ``""`` for the master key."""
    return key_id or ""


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


@dataclass(slots=True)
class FileRow:
    id: str
    owner: str
    purpose: str
    filename: str
    bytes: int
    created_at: float
    batch_id: str | None = None

    def to_openai(self) -> dict[str, Any]:
        """The File object as OpenAI returns it."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": int(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
        }


@dataclass(slots=True)
class BatchRow:
    id: str
    owner: str
    key_id: str | None
    endpoint: str
    model: str | None
    input_file_id: str
    completion_window: str
    status: str
    created_at: float
    deadline: float
    times: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    plan: dict[str, Any] | None = None
    native: dict[str, Any] | None = None
    """The provider batch its lines were handed to: deployment, provider, upstream id, claim."""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BatchRow:
        def load(name: str) -> Any:
            value = row.get(name)
            return orjson.loads(value) if value else None

        return cls(
            id=row["id"],
            owner=row["owner"],
            key_id=row["key_id"],
            endpoint=row["endpoint"],
            model=row["model"],
            input_file_id=row["input_file_id"],
            completion_window=row["completion_window"],
            status=row["status"],
            created_at=float(row["created_at"]),
            deadline=float(row["deadline"]),
            times=load("times") or {},
            metadata=load("metadata"),
            errors=load("errors"),
            output_file_id=row["output_file_id"],
            error_file_id=row["error_file_id"],
            plan=load("plan"),
            native=load("native"),
        )


@dataclass(slots=True)
class Counts:
    """A batch's lines by state, and what they cost."""

    by_state: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    @property
    def completed(self) -> int:
        return self.by_state.get(SUCCEEDED, 0)

    @property
    def failed(self) -> int:
        return sum(self.by_state.get(s, 0) for s in ERRORED)

    @property
    def open(self) -> int:
        """Lines not yet answered: waiting or in flight."""
        return self.by_state.get("pending", 0) + self.by_state.get("running", 0)


@dataclass(frozen=True, slots=True)
class NewLine:
    """A line of an input file as the batch is created: a request to run, or an answer already
    (``state`` ``failed`` with its ``result``, for a line that did not pass validation)."""

    idx: int
    custom_id: str
    body: dict[str, Any] | None
    state: str = "pending"
    result: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    idx: int
    custom_id: str
    body: dict[str, Any]
    attempts: int


_BATCH_COLUMNS = (
    "id, owner, key_id, endpoint, model, input_file_id, completion_window, status, created_at, deadline, "
    "times, metadata, errors, output_file_id, error_file_id, plan, native"
)
_LINE_INSERT = (
    "INSERT INTO hedge_batch_lines (batch_id, idx, custom_id, body, state, not_before, attempts, result, "
    "cost_usd, baseline_cost_usd) VALUES (?, ?, ?, ?, ?, 0, 0, ?, 0, 0) ON CONFLICT DO NOTHING"
)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class BatchStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # Files

    async def add_file(self, row: FileRow) -> None:
        await self.db.execute(
            "INSERT INTO hedge_files (id, owner, purpose, filename, bytes, created_at, batch_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (row.id, row.owner, row.purpose, row.filename, row.bytes, row.created_at, row.batch_id),
        )

    async def get_file(self, file_id: str, owner: str | None) -> FileRow | None:
        sql = "SELECT * FROM hedge_files WHERE id = ?"
        args: list[Any] = [file_id]
        if owner is not None:
            sql += " AND owner = ?"
            args.append(owner)
        rows = await self.db.fetch(sql, args)
        return FileRow(**rows[0]) if rows else None

    async def list_files(
        self, owner: str, purpose: str | None, after: str | None, limit: int, order: str = "desc"
    ) -> tuple[list[FileRow], bool]:
        """A page of the owner's files, newest first (``order="asc"``: oldest first), after the file
        ``after``; and whether more follow."""
        where, args = "owner = ?", [owner]
        if purpose:
            where += " AND purpose = ?"
            args.append(purpose)
        return await self._page("hedge_files", where, args, after, limit, order, FileRow)

    async def delete_file(self, file_id: str, owner: str) -> bool:
        rows = await self.db.write_returning(
            "DELETE FROM hedge_files WHERE id = ? AND owner = ? RETURNING id", (file_id, owner)
        )
        return bool(rows)

    # Batches

    async def create_batch(self, batch: BatchRow, lines: Iterable[NewLine] = ()) -> None:
        """The batch, with ``lines`` (more may have been added with :meth:`add_lines` before: a
        worker only sees a batch once its row is written, so write the lines first)."""
        await self.add_lines(batch.id, lines)
        await self.db.execute(
            f"INSERT INTO hedge_batches ({_BATCH_COLUMNS}) VALUES ({', '.join('?' * 17)})",
            (
                batch.id,
                batch.owner,
                batch.key_id,
                batch.endpoint,
                batch.model,
                batch.input_file_id,
                batch.completion_window,
                batch.status,
                batch.created_at,
                batch.deadline,
                _json(batch.times),
                _json(batch.metadata),
                _json(batch.errors),
                batch.output_file_id,
                batch.error_file_id,
                _json(batch.plan),
                _json(batch.native),
            ),
        )

    async def add_lines(self, batch_id: str, lines: Iterable[NewLine]) -> None:
        rows = [(batch_id, ln.idx, ln.custom_id, _json(ln.body), ln.state, _json(ln.result)) for ln in lines]
        if rows:
            await self.db.executemany(_LINE_INSERT, rows)

    async def drop_lines(self, batch_id: str) -> None:
        """The lines of a batch that was never created (its input was refused half-way)."""
        await self.db.execute("DELETE FROM hedge_batch_lines WHERE batch_id = ?", (batch_id,))

    async def get_batch(self, batch_id: str, owner: str | None = None) -> BatchRow | None:
        sql = f"SELECT {_BATCH_COLUMNS} FROM hedge_batches WHERE id = ?"
        args: list[Any] = [batch_id]
        if owner is not None:
            sql += " AND owner = ?"
            args.append(owner)
        rows = await self.db.fetch(sql, args)
        return BatchRow.from_row(rows[0]) if rows else None

    async def list_batches(
        self, owner: str | None, after: str | None, limit: int
    ) -> tuple[list[BatchRow], bool]:
        """A page of batches, newest first, after the batch ``after``; and whether more follow."""
        where, args = ("owner = ?", [owner]) if owner is not None else ("1 = 1", [])
        return await self._page("hedge_batches", where, args, after, limit, "desc", None)

    async def active(self) -> list[BatchRow]:
        marks = ", ".join("?" * len(ACTIVE))
        rows = await self.db.fetch(
            f"SELECT {_BATCH_COLUMNS} FROM hedge_batches WHERE status IN ({marks}) ORDER BY created_at",
            ACTIVE,
        )
        return [BatchRow.from_row(r) for r in rows]

    async def move(
        self,
        batch: BatchRow,
        to: str,
        now: float,
        *,
        output_file_id: str | None = None,
        error_file_id: str | None = None,
    ) -> bool:
        """Move ``batch`` from the status it was read in to ``to`` (stamping ``<to>_at``); False if
        another replica (or a cancel) moved it first."""
        times = {**batch.times, f"{to}_at": now}
        rows = await self.db.write_returning(
            "UPDATE hedge_batches SET status = ?, times = ?, "
            "output_file_id = COALESCE(?, output_file_id), error_file_id = COALESCE(?, error_file_id) "
            "WHERE id = ? AND status = ? RETURNING id",
            (to, _json(times), output_file_id, error_file_id, batch.id, batch.status),
        )
        if rows:
            batch.status, batch.times = to, times
            batch.output_file_id = output_file_id or batch.output_file_id
            batch.error_file_id = error_file_id or batch.error_file_id
        return bool(rows)

    async def cancel(self, batch: BatchRow, now: float) -> bool:
        """Ask for ``batch`` to be cancelled (a worker finishes it: lines in flight are answered,
        waiting ones are not run); False if it is already past cancelling."""
        while batch.status in CANCELLABLE:
            if await self.move(batch, "cancelling", now):
                return True
            fresh = await self.get_batch(batch.id)
            if fresh is None:
                return False
            batch.status, batch.times = fresh.status, fresh.times
        return batch.status == "cancelling"

    async def set_native(self, batch: BatchRow, native: dict[str, Any] | None) -> None:
        batch.native = native
        await self.db.execute("UPDATE hedge_batches SET native = ? WHERE id = ?", (_json(native), batch.id))

    async def extend(self, batch_id: str, claim: str, lease_until: float) -> None:
        """Hold every line of ``claim`` until ``lease_until`` (lines handed to a native batch)."""
        await self.db.execute(
            "UPDATE hedge_batch_lines SET lease_until = ? "
            "WHERE batch_id = ? AND claim = ? AND state = 'running'",
            (lease_until, batch_id, claim),
        )

    async def claimed_line(self, batch_id: str, idx: int, claim: str) -> Claimed | None:
        """Line ``idx``, if ``claim`` still holds it."""
        rows = await self.db.fetch(
            "SELECT idx, custom_id, body, attempts FROM hedge_batch_lines "
            "WHERE batch_id = ? AND idx = ? AND claim = ? AND state = 'running'",
            (batch_id, idx, claim),
        )
        if not rows:
            return None
        r = rows[0]
        return Claimed(int(r["idx"]), str(r["custom_id"]), orjson.loads(r["body"]), int(r["attempts"]))

    async def release_claim(self, batch_id: str, claim: str) -> None:
        """Give back every line still held under ``claim``, untried."""
        await self.db.execute(
            "UPDATE hedge_batch_lines SET state = 'pending', claim = NULL, lease_until = NULL, "
            "attempts = attempts - 1 WHERE batch_id = ? AND claim = ? AND state = 'running'",
            (batch_id, claim),
        )

    async def save_plan(self, batch_id: str, plan: dict[str, Any]) -> None:
        await self.db.execute("UPDATE hedge_batches SET plan = ? WHERE id = ?", (_json(plan), batch_id))

    # Lines

    async def counts(self, batch_id: str) -> Counts:
        rows = await self.db.fetch(
            "SELECT state, COUNT(*) AS n, SUM(cost_usd) AS cost, SUM(baseline_cost_usd) AS baseline "
            "FROM hedge_batch_lines WHERE batch_id = ? GROUP BY state",
            (batch_id,),
        )
        counts = Counts()
        for r in rows:
            counts.by_state[str(r["state"])] = int(r["n"])
            counts.cost_usd += float(r["cost"] or 0.0)
            counts.baseline_cost_usd += float(r["baseline"] or 0.0)
        return counts

    async def totals(self) -> Counts:
        """Every batch's lines by state, and their cost (for ``/metrics``)."""
        rows = await self.db.fetch(
            "SELECT state, COUNT(*) AS n, SUM(cost_usd) AS cost, SUM(baseline_cost_usd) AS baseline "
            "FROM hedge_batch_lines GROUP BY state"
        )
        counts = Counts()
        for r in rows:
            counts.by_state[str(r["state"])] = int(r["n"])
            counts.cost_usd += float(r["cost"] or 0.0)
            counts.baseline_cost_usd += float(r["baseline"] or 0.0)
        return counts

    async def sample_body(self, batch_id: str) -> dict[str, Any] | None:
        """An open line's request, for the scheduler's estimate of what a line costs."""
        rows = await self.db.fetch(
            "SELECT body FROM hedge_batch_lines WHERE batch_id = ? AND state IN ('pending', 'running') "
            "ORDER BY idx LIMIT 1",
            (batch_id,),
        )
        if not rows or not rows[0]["body"]:
            return None
        body: dict[str, Any] = orjson.loads(rows[0]["body"])
        return body

    async def claim(
        self, batch_id: str, claim: str, limit: int, now: float, lease_until: float
    ) -> list[Claimed]:
        """Take up to ``limit`` lines that are waiting (or whose lease lapsed) for ``claim``."""
        pick = (
            "SELECT idx FROM hedge_batch_lines WHERE batch_id = ? AND not_before <= ? AND "
            "(state = 'pending' OR (state = 'running' AND lease_until < ?)) ORDER BY idx LIMIT ?"
        )
        if self.db.dialect == "postgresql":
            # A CTE, evaluated once: a LIMIT in an IN (...) subquery may be re-run per row and
            # claim more lines than asked for.
            sql = (
                f"WITH picked AS ({pick} FOR UPDATE SKIP LOCKED) UPDATE hedge_batch_lines AS l "
                "SET state = 'running', claim = ?, lease_until = ?, attempts = l.attempts + 1 "
                "FROM picked WHERE l.batch_id = ? AND l.idx = picked.idx "
                "RETURNING l.idx, l.custom_id, l.body, l.attempts"
            )
            args: tuple[Any, ...] = (batch_id, now, now, int(limit), claim, lease_until, batch_id)
        else:  # one writer at a time: the statement is the claim
            sql = (
                "UPDATE hedge_batch_lines SET state = 'running', claim = ?, lease_until = ?, "
                f"attempts = attempts + 1 WHERE batch_id = ? AND idx IN ({pick}) "
                "RETURNING idx, custom_id, body, attempts"
            )
            args = (claim, lease_until, batch_id, batch_id, now, now, int(limit))
        rows = await self.db.write_returning(sql, args)
        return [
            Claimed(int(r["idx"]), str(r["custom_id"]), orjson.loads(r["body"]), int(r["attempts"]))
            for r in sorted(rows, key=lambda r: int(r["idx"]))
        ]

    async def finish(
        self,
        batch_id: str,
        idx: int,
        claim: str,
        state: str,
        result: dict[str, Any],
        cost_usd: float,
        baseline_cost_usd: float,
        replica: str,
    ) -> bool:
        """Answer a claimed line; False (and nothing written) if the claim is no longer held."""
        rows = await self.db.write_returning(
            "UPDATE hedge_batch_lines SET state = ?, result = ?, cost_usd = ?, baseline_cost_usd = ?, "
            "replica = ?, claim = NULL, lease_until = NULL "
            "WHERE batch_id = ? AND idx = ? AND claim = ? AND state = 'running' RETURNING idx",
            (state, _json(result), cost_usd, baseline_cost_usd, replica, batch_id, idx, claim),
        )
        return bool(rows)

    async def release(
        self, batch_id: str, idx: int, claim: str, not_before: float, *, tried: bool = True
    ) -> None:
        """Give a claimed line back, to be run again from ``not_before``; ``tried=False``: it was
        not (fully) tried (no capacity, or the replica is stopping), so the claim does not count
        as one of its attempts."""
        await self.db.execute(
            "UPDATE hedge_batch_lines SET state = 'pending', claim = NULL, lease_until = NULL, "
            f"not_before = ?{'' if tried else ', attempts = attempts - 1'} "
            "WHERE batch_id = ? AND idx = ? AND claim = ? AND state = 'running'",
            (not_before, batch_id, idx, claim),
        )

    async def close_pending(self, batch_id: str, state: str) -> None:
        """Every line still waiting becomes ``state`` (``expired``, ``cancelled``): in the error file."""
        await self.db.execute(
            "UPDATE hedge_batch_lines SET state = ? WHERE batch_id = ? AND state = 'pending'",
            (state, batch_id),
        )

    async def lines(
        self, batch_id: str, states: Sequence[str], after_idx: int, limit: int
    ) -> list[dict[str, Any]]:
        """A page of a batch's answered lines in ``states``, in input order."""
        marks = ", ".join("?" * len(states))
        return await self.db.fetch(
            "SELECT idx, custom_id, state, result FROM hedge_batch_lines "
            f"WHERE batch_id = ? AND state IN ({marks}) AND idx > ? ORDER BY idx LIMIT ?",
            (batch_id, *states, after_idx, int(limit)),
        )

    async def _page(
        self,
        table: str,
        where: str,
        args: list[Any],
        after: str | None,
        limit: int,
        order: str,
        kind: type[FileRow] | None,
    ) -> tuple[list[Any], bool]:
        newest_first = order != "asc"
        if after is not None:
            rows = await self.db.fetch(f"SELECT created_at FROM {table} WHERE id = ?", (after,))
            if rows:
                mark = float(rows[0]["created_at"])
                cmp = "<" if newest_first else ">"
                where += f" AND (created_at {cmp} ? OR (created_at = ? AND id {cmp} ?))"
                args = [*args, mark, mark, after]
        direction = "DESC" if newest_first else "ASC"
        columns = "*" if kind is FileRow else _BATCH_COLUMNS
        rows = await self.db.fetch(
            f"SELECT {columns} FROM {table} WHERE {where} "
            f"ORDER BY created_at {direction}, id {direction} LIMIT ?",
            (*args, int(limit) + 1),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        if kind is FileRow:
            return [FileRow(**r) for r in rows], more
        return [BatchRow.from_row(r) for r in rows], more


def batch_object(batch: BatchRow, counts: Counts) -> dict[str, Any]:
    """The Batch object as OpenAI returns it, plus Hedge's ``hedge`` object (cost, savings, plan)."""
    times = batch.times

    def at(name: str) -> int | None:
        value = times.get(f"{name}_at")
        return None if value is None else int(value)

    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "model": batch.model,
        "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": int(batch.created_at),
        "in_progress_at": at("in_progress"),
        "expires_at": int(batch.deadline),
        "finalizing_at": at("finalizing"),
        "completed_at": at("completed"),
        "failed_at": at("failed"),
        "expired_at": at("expired"),
        "cancelling_at": at("cancelling"),
        "cancelled_at": at("cancelled"),
        "request_counts": {"total": counts.total, "completed": counts.completed, "failed": counts.failed},
        "metadata": batch.metadata,
        "hedge": {
            "cost_usd": round(counts.cost_usd, 10),
            "baseline_cost_usd": round(counts.baseline_cost_usd, 10),
            "savings_usd": round(counts.baseline_cost_usd - counts.cost_usd, 10),
            "deadline": int(batch.deadline),
            "plan": batch.plan,
            "lines": dict(sorted(counts.by_state.items())),
        },
    }
