"""Buffered batch writes: how request-path sinks reach the database without waiting for it.

``add`` only appends to an in-memory buffer; a background task writes the
buffer every ``flush_interval_s`` (sooner once ``flush_batch`` items wait, and
in batches of at least that many while they keep coming).
Nothing that was served may be lost from the ledger, so a write that fails is
never simply retried as it was:

* **A row the database rejects** (a value the column cannot hold, a constraint)
  must not hold back the others: the batch is bisected down to the failing rows,
  the rest is written, and each failing row goes to a quarantine file under
  ``state_dir/quarantine/`` with the reason (and an error line), where an
  operator can read or replay it. The row builders sanitize values first
  (:mod:`hedge.store.values`), so this is a
  last resort.
* **A database that is down or does not answer** (see
  :func:`hedge.store.db.is_unavailable`) is not the rows' fault: the pending rows
  are appended to this process's spool file under ``state_dir/spool/`` (one JSON
  array per line, fsynced once per batch) and the memory buffer is cleared, so a
  crash during the outage loses at most the last flush interval. While the
  database is down new batches go straight to the spool; a recovery task retries
  with backoff and replays the spool in order, then truncates it. Inserts are
  ``ON CONFLICT DO NOTHING`` on the request id, so replaying rows that were
  partly written books nothing twice.
* **Spool files left by a process that died** (its lock is free) are replayed at
  the next start and on recovery, then removed; a torn last line (the process
  was killed while writing it) is skipped.
* ``close`` is bounded by ``shutdown_timeout_s``: what the database has not taken
  by then goes to the spool, so a clean shutdown loses nothing even with the
  database down.

Without a ``state_dir`` (unit tests, tools) there is no spool: a failed write
keeps the items in memory for the next try and raises, as before. A full buffer
drops new items with an error line rather than grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

from hedge.store.db import Database, is_unavailable
from hedge.store.spool import Row, Spool, SpoolFull, slug

T = TypeVar("T")

MAX_RETRY_S = 2.0
"""Longest wait between two attempts to reach a database that is down."""
ROW_SLICE = 50
"""Rows built before the writer lets the event loop serve requests again (about a millisecond)."""


class _Unavailable(Exception):
    """The database could not take ``rows`` for a reason not in the rows (``written`` others it took)."""

    def __init__(self, rows: list[Row], error: BaseException, written: int = 0) -> None:
        super().__init__(str(error))
        self.rows = rows
        self.error = error
        self.written = written


# -- the writer ------------------------------------------------------------------------------------


class BatchWriter(Generic[T]):
    def __init__(
        self,
        db: Database,
        insert_sql: str,
        to_row: Callable[[T], Sequence[Any]],
        *,
        what: str,
        flush_interval_s: float = 1.0,
        flush_batch: int = 500,
        max_buffer: int = 1_000_000,
        write_chunk: int = 5000,
        state_dir: str | Path | None = None,
        shutdown_timeout_s: float = 5.0,
        max_spool_bytes: int | None = None,
    ) -> None:
        self.db = db
        self.flush_interval_s = flush_interval_s
        self.flush_batch = flush_batch
        self.max_buffer = max_buffer
        self.shutdown_timeout_s = shutdown_timeout_s
        self.dropped = 0
        self.quarantined = 0
        self._insert = insert_sql
        self._to_row = to_row
        self._what = what
        self._chunk = write_chunk
        self._buffer: deque[T] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._log = logging.getLogger(f"hedge.{what.replace(' ', '_')}")
        name = slug(what)
        self._spool = Spool(Path(state_dir) / "spool", name, max_spool_bytes) if state_dir else None
        self._quarantine_path = Path(state_dir) / "quarantine" / f"{name}.jsonl" if state_dir else None
        self._down = False
        """The database failed: new batches go to the spool until the recovery task has replayed it."""
        self._closing = False
        self.on_flush: Callable[[float], None] | None = None
        """Told how long each batch written took: rows built, then written or spooled (the
        ``hedge_ledger_flush_seconds`` metric)."""

    def add(self, item: T) -> None:
        if len(self._buffer) >= self.max_buffer:
            self._drop(1, f"buffer full ({self.max_buffer})")
            return
        self._buffer.append(item)
        if len(self._buffer) >= self.flush_batch:
            self._wake.set()

    def _drop(self, n: int, why: str) -> None:
        before, self.dropped = self.dropped, self.dropped + n
        if before == 0 or before // 10_000 != self.dropped // 10_000:
            self._log.error("%s %s: %d dropped so far", self._what, why, self.dropped)

    def start(self) -> None:
        """Start the background writer; spool files a dead process left are replayed first."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        if self._spool is not None and self._spool.orphans():
            self._kick_recovery()

    async def _run(self) -> None:
        # Stops on the flag as well as on cancellation: a cancel that lands inside a driver's own
        # timeout handling can come back as a TimeoutError, and shutdown must not wait on this loop.
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            if self._closing:
                return
            try:
                await self.flush(whole=False)
            except Exception:
                self._log.exception(
                    "%s flush failed; %d kept for the next try", self._what, len(self._buffer)
                )
            if len(self._buffer) < self.flush_batch and not self._closing:
                # add() set it while the batch being written still counted in the buffer.
                self._wake.clear()

    @property
    def pending(self) -> int:
        """Items in memory, not yet in the database or the spool."""
        return len(self._buffer)

    @property
    def spooled(self) -> int:
        """Rows in this process's spool, waiting for the database."""
        return self._spool.rows if self._spool is not None else 0

    async def flush(self, *, whole: bool = True) -> int:
        """Write everything buffered now (to the spool while the database is down); returns how many
        items reached the database.

        ``whole=False`` (the background writer) goes on past its first pass only while a full
        ``flush_batch`` waits: under steady load, draining to the last item made batches of what
        arrived during the previous write (tens of rows, dozens of commits a second, each rewriting
        the same table and index pages), where waiting for a full batch or the interval writes the
        same rows in a few large ones. Readers that need every row call ``flush()`` first."""
        async with self._lock:
            written = 0
            while self._buffer:
                began = time.perf_counter()
                batch = [self._buffer[i] for i in range(min(len(self._buffer), self._chunk))]
                rows = await self._rows(batch)
                if self._down and self._spool is not None:
                    await self._spill(rows)
                else:
                    try:
                        written += await self._write(rows)
                    except _Unavailable as exc:
                        if self._spool is None:
                            raise exc.error from None  # no spool: the items stay buffered for the next try
                        written += exc.written
                        self._outage(exc.error)
                        await self._spill(exc.rows)
                for _ in batch:
                    self._buffer.popleft()
                if self.on_flush is not None:
                    self.on_flush(time.perf_counter() - began)
                if not whole and len(self._buffer) < self.flush_batch:
                    break  # the rest waits for a full batch or the interval
            if self._spool is not None and (self._down or self._spool.pending):
                self._kick_recovery()
            return written

    async def _rows(self, items: list[T]) -> list[Row]:
        """The items as rows, built a slice at a time: a thousand rows built in one go would hold
        the event loop for tens of milliseconds, and every request waiting on it with it."""
        rows = []
        for n, item in enumerate(items, 1):
            try:
                rows.append(tuple(self._to_row(item)))
            except Exception as exc:
                self._quarantine(repr(item), f"cannot build a row: {type(exc).__name__}: {exc}")
            if n % ROW_SLICE == 0:
                await asyncio.sleep(0)
        return rows

    async def _spill(self, rows: list[Row]) -> None:
        assert self._spool is not None
        lines = []
        for row in rows:
            try:
                lines.append(orjson.dumps(row) + b"\n")
            except TypeError as exc:  # a value JSON cannot hold must not block the spool
                self._quarantine(repr(row), f"cannot spool: {exc}")
        try:
            await self._spool.append(lines)
        except SpoolFull as exc:
            self._drop(len(lines), f"spool full ({exc})")

    def _outage(self, error: BaseException) -> None:
        if not self._down:
            assert self._spool is not None
            self._log.warning(
                "%s: the database is unavailable (%s: %s); spooling to %s until it is back",
                self._what,
                type(error).__name__,
                error,
                self._spool.path,
            )
        self._down = True

    async def _write(self, rows: list[Row]) -> int:
        """Write ``rows``, isolating and quarantining any the database rejects; how many were written.

        Raises :class:`_Unavailable` with the rows not yet written when the database itself fails.
        """
        if not rows:
            return 0
        try:
            await self.db.executemany(self._insert, rows)
            return len(rows)
        except Exception as exc:
            if is_unavailable(exc):
                raise _Unavailable(rows, exc) from exc
            if len(rows) == 1:
                self._quarantine(rows[0], f"{type(exc).__name__}: {exc}")
                return 0
        middle = len(rows) // 2
        first, second = rows[:middle], rows[middle:]
        try:
            written = await self._write(first)
        except _Unavailable as exc:
            raise _Unavailable(exc.rows + second, exc.error, exc.written) from exc.error
        try:
            return written + await self._write(second)
        except _Unavailable as exc:
            exc.written += written
            raise

    def _quarantine(self, row: object, reason: str) -> None:
        """Keep a row the database will never take where an operator can find it; log why."""
        self.quarantined += 1
        ident = str(row[0])[:80] if isinstance(row, tuple) and row else "?"
        where = "the log only (no state dir)"
        if self._quarantine_path is not None:
            entry = {"at": time.time(), "what": self._what, "reason": reason[:1000], "row": row}
            try:
                line = orjson.dumps(entry, default=repr)
            except TypeError:  # e.g. an integer beyond 64 bits
                line = orjson.dumps({**entry, "row": repr(row)})
            try:
                self._quarantine_path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self._quarantine_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    os.write(fd, line + b"\n")
                    os.fsync(fd)
                finally:
                    os.close(fd)
                where = str(self._quarantine_path)
            except OSError as exc:
                where = f"nowhere ({exc})"
        self._log.error("%s: row %s rejected (%s); quarantined in %s", self._what, ident, reason[:300], where)

    # -- recovery ----------------------------------------------------------------------------------

    def _kick_recovery(self) -> None:
        if self._closing:  # what is left stays in the spool for the next start
            return
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.ensure_future(self._recover())

    async def _recover(self) -> None:
        """Replay the spool (dead processes' files, then this one's) until it is empty, backing off
        while the database stays unavailable."""
        assert self._spool is not None
        delay = min(max(self.flush_interval_s, 0.1), MAX_RETRY_S)
        while not self._closing:
            if self._down:
                await asyncio.sleep(delay)
            try:
                written = await self._replay()
            except _Unavailable as exc:
                self._outage(exc.error)
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            except Exception:
                self._log.exception("%s: replaying the spool failed; will retry", self._what)
                self._down = True
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            if written:
                self._log.warning("%s: the database is back; %d spooled rows written", self._what, written)
            return

    async def _replay(self) -> int:
        spool = self._spool
        assert spool is not None
        written = 0
        for path in spool.orphans():
            done = await spool.replay_orphan(path, self._write, self._chunk, self._quarantine)
            if done:
                self._log.warning("%s: replayed %d rows left in %s", self._what, done, path)
                written += done
        while True:
            rows, end = spool.next_rows(self._chunk, self._quarantine)
            if rows:
                try:
                    written += await self._write(rows)
                except _Unavailable as exc:
                    exc.written += written
                    raise
            spool.advance(end, len(rows))
            async with spool.lock:
                if spool.truncate_if_done():
                    self._down = False
                    return written

    async def close(self) -> None:
        """Write what remains, within ``shutdown_timeout_s``; the rest goes to the spool."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_timeout_s
        self._closing = True
        self._wake.set()
        tasks = [task for task in (self._task, self._recovery) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: a task whose cancel was swallowed stops at its next check of the flag
            await asyncio.wait(tasks, timeout=self.shutdown_timeout_s)
        self._task = self._recovery = None
        try:
            await asyncio.wait_for(self.flush(), max(0.0, deadline - loop.time()))
        except Exception as exc:
            if self._spool is None:
                self._log.error("%s: %d records could not be written: %r", self._what, len(self._buffer), exc)
            else:
                self._log.warning(
                    "%s: the database did not take the last %d records within %.1f s (%r); spooled",
                    self._what,
                    len(self._buffer),
                    self.shutdown_timeout_s,
                    exc,
                )
                self._down = True
                with contextlib.suppress(Exception):
                    await self.flush()
                if self._buffer:
                    self._log.error("%s: %d records could not be spooled either", self._what, self.pending)
        if self._spool is not None:
            if self._spool.pending:
                spool = self._spool
                self._log.warning(
                    "%s: %d rows left in %s for the next start", self._what, spool.rows, spool.path
                )
            self._spool.close()
