"""The typed route trace and its one rendering (``x-hedge-route``, the access log, the spans)."""

from __future__ import annotations

import pytest

from hedge.record import Outcome, RouteStep, render_route


@pytest.mark.parametrize(
    ("step", "shown", "skipped", "attempted", "failed"),
    [
        (RouteStep("a/m", Outcome.OK), "a/m=ok", False, True, False),
        (RouteStep("a/m", Outcome.FAILED, "upstream_timeout"), "a/m=upstream_timeout", False, True, True),
        (RouteStep("a/m", Outcome.FAILED, "502"), "a/m=502", False, True, True),
        (RouteStep("a/m", Outcome.CANCELLED), "a/m=cancelled", False, True, True),
        (RouteStep("a/m", Outcome.NOT_CONFORMANT, "tools failed"), "a/m=not_conformant", False, False, False),
        (RouteStep("a/m", Outcome.CIRCUIT_OPEN), "a/m=circuit_open", True, False, False),
        (RouteStep("a/m", Outcome.CIRCUIT_HALF_OPEN), "a/m=circuit_half_open", True, False, False),
        (RouteStep("a/m", Outcome.COOLING_DOWN), "a/m=cooling_down", True, False, False),
        (RouteStep("a/m", Outcome.RETRY_BUDGET_EXHAUSTED), "a/m=retry_budget_exhausted", True, False, False),
        (RouteStep("cache", Outcome.CACHE_HIT), "cache=hit", False, False, False),
        (RouteStep("strong", Outcome.ESCALATED, "refusal"), "escalate:refusal->strong", False, False, False),
    ],
)
def test_route_steps(step: RouteStep, shown: str, skipped: bool, attempted: bool, failed: bool) -> None:
    assert str(step) == shown
    assert step.outcome.skipped is skipped
    assert step.outcome.attempted is attempted
    assert step.failed is failed


def test_a_route_renders_in_order() -> None:
    route = [RouteStep("a/m", Outcome.FAILED, "429"), RouteStep("b/m", Outcome.OK)]
    assert render_route(route) == "a/m=429, b/m=ok"
    assert render_route([]) == ""
    assert route[1].provider == "b"
