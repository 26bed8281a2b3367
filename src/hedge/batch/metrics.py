"""The batch lane in ``/metrics``: lines by state, and what they cost, over every batch.

Read from the worker's last look at the database (every few seconds), so every replica reports
the same totals, the ones the state database holds; they are gauges, not per-process counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hedge.batch.store import Counts

STATES = ("pending", "running", "succeeded", "failed", "expired", "cancelled")


class BatchCollector(Collector):
    def __init__(self, totals: Callable[[], Counts]) -> None:
        self._totals = totals

    def collect(self) -> Iterable[Metric]:
        totals = self._totals()
        lines = GaugeMetricFamily(
            "hedge_batch_lines", "Batch lines in the state database, by state.", labels=["state"]
        )
        for state in STATES:
            lines.add_metric([state], totals.by_state.get(state, 0))
        cost = GaugeMetricFamily("hedge_batch_cost_usd", "What every batch line answered so far cost.")
        cost.add_metric([], totals.cost_usd)
        savings = GaugeMetricFamily(
            "hedge_batch_savings_usd", "Batch lines' cost run interactively (baseline) less what they cost."
        )
        savings.add_metric([], totals.baseline_cost_usd - totals.cost_usd)
        return [lines, cost, savings]

    def describe(self) -> Iterable[Metric]:
        return []
