"""Time windows: ``HH:MM-HH:MM`` ranges in a time zone, optionally on given weekdays.

Used by routing rules (send off-peak traffic to a discounted deployment) and
by time-varying prices. A window whose end is before its start wraps past
midnight (``22:00-06:00``). The clock is always passed in, so tests inject it.
A leaf (it imports nothing of Hedge's), so the config can validate windows as it loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Window:
    start: time
    end: time
    zone: ZoneInfo
    days: frozenset[int] | None = None

    def contains(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        t = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            inside = self.start <= t < self.end
            day = local.weekday()
        else:  # wraps midnight: the part after midnight belongs to the previous day's window
            inside = t >= self.start or t < self.end
            day = local.weekday() if t >= self.start else (local.weekday() - 1) % 7
        return inside and (self.days is None or day in self.days)


def parse_window(spec: str, timezone: str = "UTC", days: list[str] | None = None) -> Window:
    """Parse ``"22:00-06:00"``; raise ValueError with a readable reason."""
    match = _RANGE.match(spec)
    if not match:
        raise ValueError(f"window {spec!r} is not of the form HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"window {spec!r} has an invalid time")
    try:
        zone = ZoneInfo(timezone)
    except Exception:
        raise ValueError(f"unknown time zone {timezone!r}") from None
    end = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
    day_set = None
    if days:
        bad = [d for d in days if d.lower()[:3] not in DAYS]
        if bad:
            raise ValueError(f"unknown day(s) {bad}; use {', '.join(DAYS)}")
        day_set = frozenset(DAYS.index(d.lower()[:3]) for d in days)
    return Window(time(h1, m1), end, zone, day_set)
