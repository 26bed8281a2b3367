"""What evaluations read from and write to the state database.

* :func:`logged_chats`: the body log's successful chat requests to an alias, from which
  ``hedge dataset export`` builds a dataset (the answer each got becomes its reference);
* :class:`QualityStore`: the quality ``hedge eval --apply`` measured per deployment
  (``hedge_quality``), which the ``cheapest`` strategy's ``min_quality`` reads in preference to a
  configured ``quality``. One row per deployment: a new measurement replaces the last.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from hedge.store.db import Database


async def logged_chats(db: Database, alias: str, since: float) -> list[dict[str, Any]]:
    """Request id, provider, model and both bodies of each logged 2xx chat request to ``alias``."""
    return await db.fetch(
        "SELECT r.request_id, r.provider, r.model, b.request, b.response "
        "FROM hedge_requests r JOIN hedge_bodies b ON b.request_id = r.request_id "
        "WHERE r.alias = ? AND r.ts >= ? AND r.status >= 200 AND r.status < 300 AND r.endpoint = 'chat' "
        "AND b.request IS NOT NULL AND b.response IS NOT NULL ORDER BY r.ts",
        (alias, since),
    )


@dataclass(frozen=True, slots=True)
class MeasuredQuality:
    """One deployment's measured quality: the mean and its 95% interval over ``n`` graded items."""

    deployment: str
    quality: float
    ci_low: float
    ci_high: float
    n: int
    grader: str
    dataset: str
    measured_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_UPSERT = (
    "INSERT INTO hedge_quality (deployment, quality, ci_low, ci_high, n, grader, dataset, measured_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (deployment) DO UPDATE SET quality = excluded.quality, "
    "ci_low = excluded.ci_low, ci_high = excluded.ci_high, n = excluded.n, grader = excluded.grader, "
    "dataset = excluded.dataset, measured_at = excluded.measured_at"
)


class QualityStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(self, rows: list[MeasuredQuality]) -> None:
        await self.db.executemany(
            _UPSERT,
            [
                (r.deployment, r.quality, r.ci_low, r.ci_high, r.n, r.grader, r.dataset, r.measured_at)
                for r in rows
            ],
        )

    async def load(self) -> dict[str, MeasuredQuality]:
        rows = await self.db.fetch(
            "SELECT deployment, quality, ci_low, ci_high, n, grader, dataset, measured_at FROM hedge_quality"
        )
        return {
            str(r["deployment"]): MeasuredQuality(
                str(r["deployment"]),
                float(r["quality"]),
                float(r["ci_low"]),
                float(r["ci_high"]),
                int(r["n"]),
                str(r["grader"]),
                str(r["dataset"]),
                float(r["measured_at"]),
            )
            for r in rows
        }


def measured(
    deployment: str, quality: float, ci_low: float, ci_high: float, n: int, grader: str, dataset: str
) -> MeasuredQuality:
    """A measurement taken now."""
    return MeasuredQuality(deployment, quality, ci_low, ci_high, n, grader, dataset, time.time())
