"""Circuit breakers: stop sending traffic to a deployment that keeps failing.

closed -> open after ``failures`` consecutive retryable failures; open -> half-open
once ``cooldown_s`` has passed, when exactly one probe request is let through;
the probe's success closes the breaker, its failure opens it again. A
Retry-After from the provider also cools a deployment down until that time.
Every transition is logged. The clock is injected so tests never sleep.

With Redis configured, transitions (and cool-downs) are also published through
``on_change`` and other replicas' transitions arrive through :meth:`Breaker.adopt`
(see ``resilience/shared.py``), so a deployment one replica found dead is
avoided by all of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

from hedge.config import BreakerConfig

log = logging.getLogger("hedge.breaker")

Clock = Callable[[], float]


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker:
    __slots__ = (
        "_clock",
        "_config",
        "_failures",
        "_opened_at",
        "_probe_out",
        "changed_at",
        "cooldown_until",
        "name",
        "on_change",
        "state",
    )

    def __init__(self, name: str, config: BreakerConfig, clock: Clock = time.monotonic) -> None:
        self.name = name
        self._config = config
        self._clock = clock
        self.state = State.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_out = False
        self.cooldown_until = 0.0
        self.changed_at = 0.0
        """Wall-clock time of the last local change, to order it against other replicas'."""
        self.on_change: Callable[[Breaker], None] | None = None

    def blocked_reason(self) -> str | None:
        """Why this deployment must not get a request now, or None if it may (claims the probe slot)."""
        now = self._clock()
        if now < self.cooldown_until:
            return "cooling_down"
        if self.state is State.OPEN:
            if now - self._opened_at < self._config.cooldown_s:
                return "circuit_open"
            self._move(State.HALF_OPEN)
        if self.state is State.HALF_OPEN:
            if self._probe_out:
                return "circuit_half_open"
            self._probe_out = True
        return None

    def success(self) -> None:
        if self.state is State.OPEN:
            # A request sent before the breaker opened proves little: wait for the probe.
            return
        self._failures = 0
        self._probe_out = False
        if self.state is State.HALF_OPEN:
            self._move(State.CLOSED)

    def failure(self, retry_after: float | None = None) -> None:
        now = self._clock()
        if retry_after and now + retry_after > self.cooldown_until:
            self.cooldown_until = now + retry_after
            self._changed()
        self._failures += 1
        self._probe_out = False
        if self.state is State.HALF_OPEN or (
            self.state is State.CLOSED and self._failures >= self._config.failures
        ):
            self._opened_at = now
            self._move(State.OPEN)

    def observed_state(self) -> State:
        """The state as a gauge shows it, read without moving the breaker.

        An open breaker whose cooldown has passed lets the next request through as
        a probe, so it reads as half-open.
        """
        if self.state is State.OPEN and self._clock() - self._opened_at >= self._config.cooldown_s:
            return State.HALF_OPEN
        return self.state

    def cooling_down(self) -> bool:
        """Whether a Retry-After from the provider still holds this deployment back."""
        return self._clock() < self.cooldown_until

    def release(self) -> None:
        """The attempt ended with no verdict on the deployment (e.g. a client error): free the probe."""
        self._probe_out = False

    def _move(self, new: State, note: str = "") -> None:
        log.warning("breaker %s: %s -> %s%s", self.name, self.state.value, new.value, note)
        self.state = new
        if not note:
            self._changed()

    def _changed(self) -> None:
        self.changed_at = time.time()
        if self.on_change is not None:
            self.on_change(self)

    def snapshot(self) -> dict[str, float | str]:
        """This breaker in wall-clock terms, for other replicas."""
        offset = time.time() - self._clock()
        return {
            "state": self.state.value,
            "opened_at": self._opened_at + offset,
            "cooldown_until": self.cooldown_until + offset,
            "changed_at": self.changed_at,
        }

    def adopt(self, remote: dict[str, float | str]) -> None:
        """Take another replica's newer view of this deployment (without publishing it back)."""
        changed = float(remote["changed_at"])
        if changed <= self.changed_at:
            return
        self.changed_at = changed
        offset = time.time() - self._clock()
        self.cooldown_until = max(self.cooldown_until, float(remote["cooldown_until"]) - offset)
        state = State(str(remote["state"]))
        if state is State.CLOSED:
            self._failures = 0
            if self.state is not State.CLOSED:
                self._move(State.CLOSED, " (from another replica)")
        elif self.state is State.CLOSED or state is State.OPEN:
            self._opened_at = float(remote["opened_at"]) - offset
            self._failures = self._config.failures
            self._probe_out = False
            if self.state is not State.OPEN:
                self._move(State.OPEN, " (from another replica)")
