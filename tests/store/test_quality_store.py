"""``hedge_quality``: one measured quality per deployment, a new measurement replacing the last."""

from __future__ import annotations

from hedge.store.db import Database
from hedge.store.evals import MeasuredQuality, QualityStore


async def test_save_replaces_and_load_reads(db: Database) -> None:
    store = QualityStore(db)
    assert await store.load() == {}
    first = MeasuredQuality("p/m", 0.9, 0.85, 0.94, 150, "exact", "d.jsonl", 1000.0)
    other = MeasuredQuality("q/n", 0.5, 0.42, 0.58, 150, "exact", "d.jsonl", 1000.0)
    await store.save([first, other])
    again = MeasuredQuality("p/m", 0.8, 0.7, 0.88, 40, "judge:j", "e.jsonl", 2000.0)
    await store.save([again])
    assert await store.load() == {"p/m": again, "q/n": other}
