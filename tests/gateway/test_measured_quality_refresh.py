"""A running gateway picks up the quality ``hedge eval --apply`` measures, and keeps the last known
values when the database cannot be read."""

from __future__ import annotations

from pathlib import Path

from hedge.config import parse_config
from hedge.gateway.runtime import open_runtime
from hedge.store.evals import measured


async def test_refresh_reads_measured_quality_and_survives_a_failed_read(tmp_path: Path) -> None:
    config = parse_config(
        {
            "server": {"master_key": "k"},
            "providers": {"p": {"style": "openai", "base_url": "http://127.0.0.1:1/v1"}},
            "models": {
                "pick": {
                    "strategy": "cheapest",
                    "min_quality": 0.8,
                    "deployments": [
                        {"provider": "p", "model": "cheap", "price": {"input": 1}, "quality": 0.9},
                        {"provider": "p", "model": "dear", "price": {"input": 9}, "quality": 0.9},
                    ],
                }
            },
            "state": {"dir": str(tmp_path)},
        }
    )
    runtime = await open_runtime(config)
    try:
        assert runtime.router.plan("pick")[1][0].id == "p/cheap"
        await runtime.quality.save([measured("p/cheap", 0.6, 0.5, 0.7, 100, "exact", "d.jsonl")])
        await runtime.refresh_quality()
        assert runtime.router.plan("pick")[1][0].id == "p/dear"
        assert runtime.measured_quality["p/cheap"].ci_low == 0.5

        async def broken() -> dict[str, object]:
            raise OSError("database gone")

        runtime.quality.load = broken  # type: ignore[method-assign,assignment]
        await runtime.refresh_quality()
        assert runtime.router.plan("pick")[1][0].id == "p/dear"  # the last known values stay
    finally:
        await runtime.close()
