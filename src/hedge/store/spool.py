"""The spool: an append-only file per process for rows the database cannot take now.

One JSON array per line, fsynced once per batch, locked by its process; replayed in
order when the database answers again, and by the next process if this one died (a torn
last line is skipped). See :mod:`hedge.store.batch` for when rows go here.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

Row = tuple[Any, ...]
_READ_WINDOW = 8 * 1024 * 1024


# -- the spool -------------------------------------------------------------------------------------


class SpoolFull(Exception):
    """The spool reached its size limit; the rows were not spooled."""


def slug(what: str) -> str:
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
