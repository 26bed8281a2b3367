"""Circuit breakers: stop sending traffic to a deployment that keeps failing.

closed -> open after ``failures`` consecutive retryable failures; open -> half-open
once ``cooldown_s`` has passed, when exactly one probe request is let through;
the probe's success closes the breaker, its failure opens it again. A
Retry-After from the provider also cools a deployment down until that time,
never longer than ``max_cooldown_s``: a rate limit (429) only cools it down
(:meth:`Breaker.cool_down`), it is not a failure of health. A deployment whose
provider rejects the gateway's credentials is flagged ``misconfigured`` (one
WARNING per episode) until it answers again. Every transition is logged. The
clock is injected so tests never sleep.

With Redis configured, transitions (and cool-downs) are also published through
``on_change`` and other replicas' transitions arrive through :meth:`Breaker.adopt`
(see ``resilience/shared.py``), so a deployment one replica found dead is
avoided by all of them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from hedge.config import BreakerConfig

log = logging.getLogger("hedge.breaker")

Clock = Callable[[], float]


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# Module names for the members, read on every request: on Python 3.11 ``State.OPEN`` goes through
# EnumType's ``__getattr__`` hook, a slow attribute path (about 0.2 µs; 3.12 dropped the hook).
CLOSED, OPEN, HALF_OPEN = State.CLOSED, State.OPEN, State.HALF_OPEN


class Breaker:
    __slots__ = (
        "_clock",
        "_config",
        "_failures",
        "_max_cooldown",
        "_opened_at",
        "_probe_out",
        "changed_at",
        "cooldown_until",
        "misconfigured",
        "name",
        "on_change",
        "state",
    )

    def __init__(
        self, name: str, config: BreakerConfig, clock: Clock = time.monotonic, max_cooldown_s: float = 300.0
    ) -> None:
        self.name = name
        self._config = config
        self._clock = clock
        self._max_cooldown = max_cooldown_s
        self.misconfigured: str | None = None
        """Why the provider refused this deployment's credentials (401/403), until it answers again."""
        self.state = CLOSED
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
        if self.state is OPEN:
            if now - self._opened_at < self._config.cooldown_s:
                return "circuit_open"
            self._move(HALF_OPEN)
        if self.state is HALF_OPEN:
            if self._probe_out:
                return "circuit_half_open"
            self._probe_out = True
        return None

    def success(self) -> None:
        if self.state is OPEN:
            # A request sent before the breaker opened proves little: wait for the probe.
            return
        self._failures = 0
        self._probe_out = False
        if self.misconfigured is not None:
            self.misconfigured = None
            log.warning("deployment %s: the provider accepts its credentials again", self.name)
        if self.state is HALF_OPEN:
            self._move(CLOSED)

    def failure(self, retry_after: float | None = None) -> None:
        """A failure of health (5xx, timeout, connection error): a strike, and any Retry-After's cool-down."""
        now = self._clock()
        self.cool_down(retry_after)
        self._failures += 1
        self._probe_out = False
        if self.state is HALF_OPEN or (self.state is CLOSED and self._failures >= self._config.failures):
            self._opened_at = now
            self._move(OPEN)

    def cool_down(self, seconds: float | None) -> None:
        """Keep traffic off for ``seconds`` (capped at ``max_cooldown_s``) without counting a failure.

        What a 429 does: the deployment is healthy but asked for a pause, so when the
        pause is over it serves again rather than staying behind an open breaker.
        """
        if seconds is None or not math.isfinite(seconds) or seconds <= 0:
            return
        until = self._clock() + min(seconds, self._max_cooldown)
        if until > self.cooldown_until:
            self.cooldown_until = until
            self._changed()

    def mark_misconfigured(self, reason: str) -> None:
        """The provider rejected the gateway's credentials: say so once, not once per request."""
        if self.misconfigured is None:
            log.warning(
                "deployment %s is misconfigured: %s; requests fail over to other deployments until fixed",
                self.name,
                reason,
            )
        self.misconfigured = reason

    def observed_state(self) -> State:
        """The state as a gauge shows it, read without moving the breaker.

        An open breaker whose cooldown has passed lets the next request through as
        a probe, so it reads as half-open.
        """
        if self.state is OPEN and self._clock() - self._opened_at >= self._config.cooldown_s:
            return HALF_OPEN
        return self.state

    def ready_in(self, now: float) -> float:
        """Seconds from ``now`` until this breaker lets a request through again (0: it may now)."""
        wait = max(0.0, self.cooldown_until - now)
        if self.state is OPEN:
            wait = max(wait, self._config.cooldown_s - (now - self._opened_at))
        return wait

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

    def adopt(self, remote: Mapping[str, Any]) -> None:
        """Take another replica's newer view of this deployment (without publishing it back).

        A snapshot is data from elsewhere (another replica, an older version of Hedge): one
        that does not parse, or claims to come from the future, is ignored, and its times are
        clamped so it can neither cool the deployment down past ``max_cooldown_s`` nor keep
        it open longer than one ``cooldown_s`` from now.
        """
        changed, cooldown_until, opened_at = (
            _seconds(remote.get(k)) for k in ("changed_at", "cooldown_until", "opened_at")
        )
        try:
            state = State(str(remote.get("state")))
        except ValueError:
            return
        if changed is None or cooldown_until is None or opened_at is None:
            return
        wall = time.time()
        if changed <= self.changed_at or changed > wall + FUTURE_SLACK_S:
            return
        self.changed_at = changed
        now = self._clock()
        offset = wall - now
        self.cooldown_until = max(self.cooldown_until, min(cooldown_until - offset, now + self._max_cooldown))
        if state is CLOSED:
            self._failures = 0
            if self.state is not CLOSED:
                self._move(CLOSED, " (from another replica)")
        elif self.state is CLOSED or state is OPEN:
            self._opened_at = min(opened_at - offset, now)
            self._failures = self._config.failures
            self._probe_out = False
            if self.state is not OPEN:
                self._move(OPEN, " (from another replica)")


FUTURE_SLACK_S = 60.0
"""Clock skew tolerated between replicas; a snapshot stamped later than this is not believed."""


def _seconds(value: Any) -> float | None:
    """A finite number from a snapshot field, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
