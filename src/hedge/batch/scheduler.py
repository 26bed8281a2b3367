"""When a batch runs: the cheapest price window that still finishes before its deadline.

Pure arithmetic over an injected time and a price function, so it is tested with a fake clock.
The worker asks again every tick, with the lines still open and the throughput observed so far,
so a plan that waits for a cheaper window turns into "run now" once waiting longer would risk the
deadline, and a window that closes before the batch is done is weighed again.

The time a batch needs is ``open lines x seconds per line`` (the observed line duration over the
lines run at once), times ``safety_factor``, plus ``min_margin_s``: the latest start that still
meets the deadline. Candidate starts are now and every moment before that latest start at which
the price changes (sampled every ``step_s``); the cheapest wins, the earliest among equals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

STEP_S = 60.0
"""Price windows are minutes wide at the finest (``HH:MM``): sampling each minute sees every change."""


@dataclass(frozen=True, slots=True)
class Plan:
    start_at: float
    """Epoch seconds the batch should run from (now, or the start of a cheaper window)."""
    run_now: bool
    cost_per_line_usd: float
    """Expected cost of a line at ``start_at``'s price (an estimate: tokens are guessed from the body)."""
    now_cost_per_line_usd: float
    """The same at today's price, had it run at once."""
    needed_s: float
    """The time the open lines are expected to take, margin included."""
    reason: str

    def to_dict(self, open_lines: int) -> dict[str, Any]:
        return {
            "start_at": int(self.start_at),
            "run_now": self.run_now,
            "estimated_cost_usd": round(self.cost_per_line_usd * open_lines, 10),
            "estimated_cost_now_usd": round(self.now_cost_per_line_usd * open_lines, 10),
            "needed_s": round(self.needed_s, 1),
            "reason": self.reason,
        }


def needed_seconds(
    open_lines: int, line_s: float, concurrency: int, safety_factor: float, min_margin_s: float
) -> float:
    """How long the open lines take at ``concurrency`` at once, with the safety margin."""
    return open_lines * line_s / max(1, concurrency) * safety_factor + min_margin_s


def plan(
    now: float,
    deadline: float,
    needed_s: float,
    cost_at: Callable[[float], float],
    step_s: float = STEP_S,
) -> Plan:
    """The start that minimises ``cost_at(start)`` (a line's expected cost at that moment) among
    those that leave ``needed_s`` before ``deadline``; at once if none does."""
    now_cost = cost_at(now)
    latest = deadline - needed_s
    if latest <= now:
        return Plan(now, True, now_cost, now_cost, needed_s, "deadline close: running at once")
    best_at, best_cost = now, now_cost
    previous = now_cost
    t = (now // step_s + 1) * step_s  # on the minute, where windows start
    while t <= latest:
        cost = cost_at(t)
        if cost != previous and cost < best_cost:
            best_at, best_cost = t, cost
        previous = cost
        t += step_s
    if best_at == now:
        return Plan(now, True, now_cost, now_cost, needed_s, "running now: no cheaper window in time")
    when = datetime.fromtimestamp(best_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Plan(best_at, False, best_cost, now_cost, needed_s, f"waiting for a cheaper window at {when}")
