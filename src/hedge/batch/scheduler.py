"""When a batch runs: the cheapest price window that still finishes before its deadline.

Pure arithmetic over an injected time and a price function, so it is tested with a fake clock.
The worker asks again every tick, with the lines still open and the throughput observed so far,
so a plan that waits for a cheaper window turns into "run now" once waiting longer would risk the
deadline, and a window that closes before the batch is done is weighed again.

The time a batch needs is ``open lines x seconds per line`` (the observed line duration over the
lines run at once), times ``safety_factor``, plus ``min_margin_s``: the latest start that still
meets the deadline. Candidate starts are now and every moment before that latest start at which
a price window opens or closes (:func:`boundaries`); the cheapest wins, the earliest among equals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from hedge.windows import Window

STEP_S = 60.0
"""Price windows are minutes wide at the finest (``HH:MM``): sampling each minute sees every change."""
END_OF_DAY = time(23, 59, 59, 999999)
"""How :func:`hedge.windows.parse_window` writes an end of ``24:00``."""


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
    candidates: Iterable[float] | None = None,
    step_s: float = STEP_S,
) -> Plan:
    """The start that minimises ``cost_at(start)`` (a line's expected cost at that moment) among
    those that leave ``needed_s`` before ``deadline``; at once if none does. ``candidates`` are
    the moments the price may change (:func:`boundaries`); without them, every ``step_s``."""
    now_cost = cost_at(now)
    latest = deadline - needed_s
    if latest <= now:
        return Plan(now, True, now_cost, now_cost, needed_s, "deadline close: running at once")
    if candidates is None:
        first = (now // step_s + 1) * step_s  # on the minute, where windows start
        candidates = (first + i * step_s for i in range(int((latest - first) // step_s) + 1))
    best_at, best_cost = now, now_cost
    for t in sorted(c for c in candidates if now < c <= latest):
        cost = cost_at(t)
        if cost < best_cost:
            best_at, best_cost = t, cost
    if best_at == now:
        return Plan(now, True, now_cost, now_cost, needed_s, "running now: no cheaper window in time")
    when = datetime.fromtimestamp(best_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Plan(best_at, False, best_cost, now_cost, needed_s, f"waiting for a cheaper window at {when}")


def boundaries(windows: Iterable[Window], start: float, end: float) -> set[float]:
    """Every moment in ``(start, end]`` at which one of ``windows`` opens or closes: the only
    moments a price (or a time-window routing rule) can change, so the only starts worth pricing."""
    out: set[float] = set()
    for window in windows:
        first = datetime.fromtimestamp(start, window.zone).date()
        days = int((end - start) // 86400) + 2
        for offset in range(-1, days + 1):
            day = first + timedelta(days=offset)
            for moment in (window.start, window.end):
                ts = datetime.combine(day, moment, tzinfo=window.zone).timestamp()
                if moment == END_OF_DAY:  # "24:00": the window closes at midnight
                    ts += 1e-6
                if start < ts <= end:
                    out.add(ts)
    return out
