"""Buffered batch writes: how request-path sinks reach the database without waiting for it.

``add`` only appends to an in-memory buffer; a background task writes the
buffer every ``flush_interval_s`` (sooner once ``flush_batch`` items wait).
Nothing that was served may be lost from the ledger, so a write that fails is
never simply retried as it was:

* **A row the database rejects** (a value the column cannot hold, a constraint)
  must not hold back the others: the batch is bisected down to the failing rows,
  the rest is written, and each failing row goes to a quarantine file under
  ``state_dir/quarantine/`` with the reason (and an error line), where an
  operator can read or replay it. The row builders sanitize values first
  (:func:`clean_text`, :func:`clamp_int`, :func:`clean_float`), so this is a
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
import fcntl
import logging
import math
import os
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

from hedge.store.db import Database, is_unavailable

T = TypeVar("T")
Row = tuple[Any, ...]

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
TEXT_LIMIT = 1000
"""Longest value kept in a short text column (names, ids); the rest is cut."""
MAX_RETRY_S = 2.0
"""Longest wait between two attempts to reach a database that is down."""
_READ_WINDOW = 8 * 1024 * 1024


# -- values every column takes ---------------------------------------------------------------------


def clean_text(value: object, limit: int = TEXT_LIMIT) -> str | None:
    """``value`` as text that any database takes: None stays None; U+0000 (which PostgreSQL
    rejects in text) removed, lone surrogates (which cannot be encoded) replaced, at most
    ``limit`` characters."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:limit] if len(text) > limit else text


def clamp_int(value: object, low: int = INT64[0], high: int = INT64[1]) -> int:
    """``value`` as an integer inside a column's range ``[low, high]``: out-of-range values are
    clamped, floats truncated (infinities clamped), anything that is not a number is 0 (inside
    the range)."""
    if isinstance(value, int):  # bool included
        number = int(value)
    elif isinstance(value, float):
        if math.isnan(value):
            number = 0
        elif math.isinf(value):
            number = high if value > 0 else low
        else:
            number = int(value)
    else:
        try:
            number = int(str(value))
        except ValueError:
            number = 0
    return min(max(number, low), high)


def clean_float(value: object, nullable: bool = False) -> float | None:
    """``value`` as a finite float; NaN, infinities and non-numbers become None (or 0.0 for a
    NOT NULL column): SQLite stores NaN as NULL, and no report can add up an infinity."""
    if value is None and nullable:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if math.isfinite(number):
        return number
    return None if nullable else 0.0


# -- the spool -------------------------------------------------------------------------------------


class SpoolFull(Exception):
    """The spool reached its size limit; the rows were not spooled."""


def _slug(what: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-") or "rows"


def _parse(line: bytes) -> Row | None:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return tuple(data) if isinstance(data, list) else None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # replayed and removed by another process meanwhile
        return 0.0


def _read_lines(fd: int, offset: int, end: int, max_rows: int) -> tuple[list[bytes], int]:
    """Up to ``max_rows`` complete lines of ``fd`` from ``offset`` (before ``end``); the offset after them."""
    window = _READ_WINDOW
    while True:
        size = min(window, end - offset)
        data = os.pread(fd, size, offset) if size > 0 else b""
        cut = data.rfind(b"\n")
        if cut >= 0 or offset + size >= end:
            break
        window *= 2  # one line longer than the window: read more
    if cut < 0:
        return [], offset
    lines = data[: cut + 1].split(b"\n")[:-1]
    if len(lines) > max_rows:
        lines = lines[:max_rows]
    return lines, offset + sum(len(line) + 1 for line in lines)


class Spool:
    """Rows the database could not take, in an append-only file of this process until it can.

    The file (``<name>-<pid>-<random>.jsonl`` in ``directory``) is created under a temporary
    name, locked (``flock``) and then renamed, so any spool file that is not locked belongs to
    a process that has died: :meth:`orphans` lists those, :meth:`replay_orphan` replays one.
    Appends are whole lines written and fsynced in one call per batch.
    """

    def __init__(self, directory: Path, name: str, max_bytes: int | None = None) -> None:
        self.dir = directory
        self.name = name
        self.max_bytes = max_bytes
        self.path = directory / f"{name}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        self.lock = asyncio.Lock()
        """Held for appends and for the replay's truncation, so that no line is cut or lost between them."""
        self._fd: int | None = None
        self._size = 0
        self._replayed = 0
        self._rows = 0

    @property
    def rows(self) -> int:
        """Rows in this process's spool file not yet written to the database."""
        return self._rows

    @property
    def pending(self) -> bool:
        return self._size > self._replayed

    def _open(self) -> int:
        if self._fd is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            temporary = self.dir / f".{self.path.name}.new"
            fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(temporary, self.path)
            dir_fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the file's name survives a power cut too
            finally:
                os.close(dir_fd)
            self._fd = fd
        return self._fd

    async def append(self, lines: Sequence[bytes]) -> None:
        """Append encoded rows (one JSON line each) durably, with one fsync; raises OSError or
        :class:`SpoolFull` having appended nothing."""
        if not lines:
            return
        data = b"".join(lines)
        async with self.lock:
            if self.max_bytes is not None and self._size + len(data) > self.max_bytes:
                raise SpoolFull(f"{self.path} would exceed {self.max_bytes} bytes")
            await asyncio.to_thread(self._write, data)
            self._rows += len(lines)

    def _write(self, data: bytes) -> None:
        fd = self._open()
        before = self._size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):  # never leave half a line for the next append to glue onto
                os.ftruncate(fd, before)
            raise
        self._size = before + len(data)

    def next_rows(self, max_rows: int, quarantine: Callable[[object, str], None]) -> tuple[list[Row], int]:
        """The next rows of this process's spool to replay, and the offset to :meth:`advance` to after."""
        if self._fd is None or not self.pending:
            return [], self._replayed
        lines, end = _read_lines(self._fd, self._replayed, self._size, max_rows)
        if not lines:  # only a partial line: cannot happen with whole-line appends, never loop on it
            return [], self._size
        rows = []
        for line in lines:
            row = _parse(line)
            if row is None:
                quarantine(line.decode("utf-8", "replace"), "unreadable spool line")
            else:
                rows.append(row)
        return rows, end

    def advance(self, offset: int, rows: int) -> None:
        self._replayed = max(self._replayed, offset)
        self._rows = max(0, self._rows - rows)

    def truncate_if_done(self) -> bool:
        """Empty the file once every row in it has been written; call with :attr:`lock` held."""
        if self.pending:
            return False
        if self._fd is not None and self._size:
            os.ftruncate(self._fd, 0)
        self._size = self._replayed = self._rows = 0
        return True

    def orphans(self) -> list[Path]:
        """Spool files of this kind that are not this process's own, oldest first."""
        if not self.dir.is_dir():
            return []
        found = [p for p in self.dir.glob(f"{self.name}-*.jsonl") if p != self.path]
        return sorted(found, key=_mtime)

    async def replay_orphan(
        self,
        path: Path,
        write: Callable[[list[Row]], Awaitable[int]],
        max_rows: int,
        quarantine: Callable[[object, str], None],
    ) -> int | None:
        """Write a dead process's spool file through ``write`` and remove it.

        None if a live process holds it. ``write`` raising leaves the file in place for the
        next try (rows already written are not booked twice: the inserts ignore conflicts).
        """
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            stat = os.fstat(fd)
            if stat.st_nlink == 0:  # another replica replayed and removed it while we waited
                return None
            offset, end, written = 0, stat.st_size, 0
            while offset < end:
                lines, after = _read_lines(fd, offset, end, max_rows)
                if not lines:
                    logging.getLogger("hedge.spool").warning(
                        "%s: ignored a torn last line of %d bytes (its process died while writing it)",
                        path,
                        end - offset,
                    )
                    break
                rows = []
                for line in lines:
                    row = _parse(line)
                    if row is None:
                        quarantine(line.decode("utf-8", "replace"), f"unreadable line in {path.name}")
                    else:
                        rows.append(row)
                written += await write(rows)
                offset = after
            os.unlink(path)
            return written
        finally:
            os.close(fd)

    def close(self) -> None:
        """Release this process's file: removed when empty, else left for the next start to replay."""
        if self._fd is None:
            return
        if not self.pending:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


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
        name = _slug(what)
        self._spool = Spool(Path(state_dir) / "spool", name, max_spool_bytes) if state_dir else None
        self._quarantine_path = Path(state_dir) / "quarantine" / f"{name}.jsonl" if state_dir else None
        self._down = False
        """The database failed: new batches go to the spool until the recovery task has replayed it."""
        self._closing = False

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
                await self.flush()
            except Exception:
                self._log.exception(
                    "%s flush failed; %d kept for the next try", self._what, len(self._buffer)
                )

    @property
    def pending(self) -> int:
        """Items in memory, not yet in the database or the spool."""
        return len(self._buffer)

    @property
    def spooled(self) -> int:
        """Rows in this process's spool, waiting for the database."""
        return self._spool.rows if self._spool is not None else 0

    async def flush(self) -> int:
        """Write everything buffered now (to the spool while the database is down); returns how many
        items reached the database."""
        async with self._lock:
            written = 0
            while self._buffer:
                batch = [self._buffer[i] for i in range(min(len(self._buffer), self._chunk))]
                rows = self._rows(batch)
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
            if self._spool is not None and (self._down or self._spool.pending):
                self._kick_recovery()
            return written

    def _rows(self, items: list[T]) -> list[Row]:
        rows = []
        for item in items:
            try:
                rows.append(tuple(self._to_row(item)))
            except Exception as exc:
                self._quarantine(repr(item), f"cannot build a row: {type(exc).__name__}: {exc}")
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
