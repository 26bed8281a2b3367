"""The conformance gate: a deployment that requires it gets traffic only after a recent passing run.

``require_conformance: [case ids]`` (or ``[all]``) on a deployment keeps it out
of routing until ``hedge check`` has recorded, within ``conformance_max_age_s``,
a pass for each named case (for ``all``: no failure in its latest run). The
verdict is cached for ``refresh_s`` so the request path never reads the results
file itself more than once in that interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from hedge.config import Config
from hedge.routing.deployment import Deployment
from hedge.store.conformance import ResultStore


@dataclass(frozen=True, slots=True)
class Requirement:
    cases: tuple[str, ...]
    max_age_s: float


class ConformanceGate:
    def __init__(
        self,
        store: ResultStore,
        requirements: dict[str, Requirement],
        refresh_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.requirements = requirements
        self.refresh_s = refresh_s
        self._clock = clock
        self._now = now
        self._cache: dict[str, tuple[float, str | None]] = {}

    @classmethod
    def from_config(cls, config: Config, store: ResultStore) -> ConformanceGate:
        requirements: dict[str, Requirement] = {}
        for model in config.models.values():
            for d in model.deployments:
                if d.require_conformance:
                    requirements[f"{d.provider}/{d.model}"] = Requirement(
                        tuple(d.require_conformance), d.conformance_max_age_s
                    )
        return cls(store, requirements, refresh_s=config.state.conformance_refresh_s)

    def problem(self, deployment_id: str) -> str | None:
        """Why this deployment may not take traffic yet, or None if it may."""
        requirement = self.requirements.get(deployment_id)
        if requirement is None:
            return None
        now = self._clock()
        cached = self._cache.get(deployment_id)
        if cached is not None and now - cached[0] < self.refresh_s:
            return cached[1]
        verdict = self._evaluate(deployment_id, requirement)
        self._cache[deployment_id] = (now, verdict)
        return verdict

    def _evaluate(self, deployment_id: str, requirement: Requirement) -> str | None:
        latest = self.store.latest(deployment_id)
        if not latest:
            return "no conformance run on record"
        oldest_ok = self._now().timestamp() - requirement.max_age_s
        if "all" in requirement.cases:
            newest = max(r.checked_at for r in latest.values())
            run = {case: r for case, r in latest.items() if r.checked_at == newest}
            if newest.timestamp() < oldest_ok:
                return "latest conformance run is too old"
            failed = sorted(case for case, r in run.items() if r.status == "fail")
            return f"failed {', '.join(failed)}" if failed else None
        for case in requirement.cases:
            result = latest.get(case)
            if result is None or result.status != "pass":
                return f"case {case} has not passed"
            if result.checked_at.timestamp() < oldest_ok:
                return f"case {case} last passed too long ago"
        return None

    def split(self, plan: Sequence[Deployment]) -> tuple[list[Deployment], list[tuple[Deployment, str]]]:
        """The deployments that may take traffic, and those held back with the reason."""
        if not self.requirements:
            return list(plan), []
        allowed: list[Deployment] = []
        held: list[tuple[Deployment, str]] = []
        for dep in plan:
            reason = self.problem(dep.id)
            if reason is None:
                allowed.append(dep)
            else:
                held.append((dep, reason))
        return allowed, held
