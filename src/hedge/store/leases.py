"""Leases: one replica at a time does a periodic job (a health probe of one deployment).

With Redis, a lease is a ``SET NX PX`` claim (:meth:`~hedge.store.counters.Counters.once`); without
it, a row of ``hedge_leases`` that a replica may take over only once its holder's term has passed,
written in one upsert so two replicas racing for it cannot both win. Time is wall-clock (replicas
share it), injectable for tests.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Protocol

from hedge.store.counters import Counters
from hedge.store.db import Database


class Leases(Protocol):
    async def acquire(self, name: str, term_s: float) -> bool:
        """True if this caller holds ``name`` for the next ``term_s`` seconds (no one else does)."""
        ...


class CounterLeases:
    """Leases as shared-counter claims (Redis: every replica; memory: this process)."""

    def __init__(self, counters: Counters) -> None:
        self._counters = counters

    async def acquire(self, name: str, term_s: float) -> bool:
        return await self._counters.once(f"lease:{name}", term_s)


class DatabaseLeases:
    """Leases in the state database, for replicas that share PostgreSQL but no Redis."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def acquire(self, name: str, term_s: float) -> bool:
        now = self._clock()
        holder = secrets.token_hex(8)
        await self._db.execute(
            "INSERT INTO hedge_leases (name, holder, until) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until "
            "WHERE hedge_leases.until <= ?",
            [name, holder, now + term_s, now],
        )
        rows = await self._db.fetch("SELECT holder FROM hedge_leases WHERE name = ?", [name])
        return bool(rows) and rows[0]["holder"] == holder
