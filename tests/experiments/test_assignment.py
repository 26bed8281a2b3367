"""Sticky assignment and the adaptive step, as pure functions (table-driven), and the config's checks."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from hedge.access.keys import VirtualKey
from hedge.config import AdaptiveConfig, ConfigError, ExperimentConfig, parse_config
from hedge.experiments.adaptive import ArmEvidence, _move, decide
from hedge.experiments.arms import pick, point, shares, unit_of
from hedge.experiments.grading import check_spec, grade_pair
from hedge.experiments.stats import Sample

EXPERIMENT = ExperimentConfig.model_validate(
    {
        "alias": "chat",
        "arms": {"control": {"use": "chat", "weight": 80}, "b": {"use": "b", "weight": 20}},
        "metric": "ok",
        "margin": 0.05,
    }
)
ADAPTIVE = AdaptiveConfig(min_samples=30, max_step=10, control_floor=20)


def _key(key_id: str) -> VirtualKey:
    return VirtualKey(id=key_id, name=key_id, key_prefix="sk-", created_at=0.0, key_hash="x")


def test_shares_are_percent_in_arm_order() -> None:
    assert list(shares({"z": 1, "control": 3, "a": 0})) == ["control", "a", "z"]
    assert shares({"control": 3, "b": 1}) == {"control": 75.0, "b": 25.0}
    assert shares({"control": 0, "b": 0}) == {"control": 100.0, "b": 0.0}


def test_pick_splits_by_weight_and_is_sticky() -> None:
    weights = {"control": 80.0, "b": 20.0}
    counts = Counter(pick(weights, point("exp", f"key:{i}")) for i in range(5000))
    assert 0.18 < counts["b"] / 5000 < 0.22
    assert all(pick(weights, point("exp", "key:7")) == pick(weights, point("exp", "key:7")) for _ in range(3))
    assert pick({"control": 0.0, "b": 100.0}, 0.0) == "b"
    assert pick({"control": 100.0, "b": 0.0}, 0.999999) == "control"


@pytest.mark.parametrize(
    ("assign_by", "body", "headers", "unit"),
    [
        ("key", {"user": "u1"}, {}, "key:k1"),
        ("user", {"user": "u1"}, {}, "user:u1"),
        ("user", {}, {}, "key:k1"),  # no user: the key
        ("header:X-Team", {}, {"x-team": "red"}, "header:red"),
        ("header:X-Team", {}, {}, "key:k1"),
    ],
)
def test_unit_of(assign_by: str, body: dict[str, Any], headers: dict[str, str], unit: str) -> None:
    config = EXPERIMENT.model_copy(update={"assign_by": assign_by})
    assert unit_of(config, _key("k1"), body, headers) == unit
    assert unit_of(EXPERIMENT, None, {}, {}) == "key:master"


@pytest.mark.parametrize(
    ("weights", "target", "step", "floor", "expected"),
    [
        ({"control": 80.0, "b": 20.0}, "b", 10, 20, {"control": 70.0, "b": 30.0}),
        ({"control": 25.0, "b": 75.0}, "b", 10, 20, {"control": 20.0, "b": 80.0}),  # the floor holds
        ({"control": 20.0, "b": 80.0}, "b", 10, 20, None),  # nothing left to move
        ({"control": 50.0, "b": 30.0, "c": 20.0}, "c", 10, 0, {"control": 43.75, "b": 26.25, "c": 30.0}),
        ({"control": 60.0, "b": 40.0}, "control", 10, 20, {"control": 70.0, "b": 30.0}),
    ],
)
def test_move_within_guardrails(
    weights: dict[str, float], target: str, step: float, floor: float, expected: dict[str, float] | None
) -> None:
    assert _move(weights, target, step, floor) == expected


def _arm(name: str, good: int, n: int, cost: float) -> ArmEvidence:
    return ArmEvidence(name, Sample.of([1.0] * good + [0.0] * (n - good)), cost)


@pytest.mark.parametrize(
    ("arms", "target"),
    [
        ([_arm("control", 900, 1000, 1.0), _arm("b", 890, 1000, 0.1)], "b"),  # not worse, cheaper
        ([_arm("control", 90, 100, 1.0), _arm("b", 60, 100, 0.1)], "control"),  # worse: back to control
        ([_arm("control", 90, 100, 1.0), _arm("b", 10, 10, 0.1)], None),  # too few samples yet
        ([_arm("control", 90, 100, 0.1), _arm("b", 90, 100, 1.0)], None),  # control already cheapest at 80 %
    ],
)
def test_decide_targets_the_cheapest_arm_that_is_not_worse(
    arms: list[ArmEvidence], target: str | None
) -> None:
    weights = {"control": 80.0, "b": 20.0}
    decision = decide(EXPERIMENT, ADAPTIVE, weights, arms)
    if target is None:
        assert decision is None or decision.evidence["target"] == "control"
        return
    assert decision is not None and decision.evidence["target"] == target
    assert decision.evidence["before"] == weights and decision.evidence["after"] == decision.weights
    assert sum(decision.weights.values()) == pytest.approx(100.0)


def test_decide_with_a_bar_needs_the_lower_bound_above_it() -> None:
    config = EXPERIMENT.model_copy(update={"margin": None, "bar": 0.8})
    weights = {"control": 80.0, "b": 20.0}
    sure = decide(config, ADAPTIVE, weights, [_arm("control", 95, 100, 1.0), _arm("b", 95, 100, 0.1)])
    assert sure is not None and sure.evidence["target"] == "b"
    unsure = decide(config, ADAPTIVE, weights, [_arm("control", 95, 100, 1.0), _arm("b", 26, 30, 0.1)])
    assert unsure is not None and unsure.evidence["target"] == "control"  # 0.87, but the bound is < 0.8


async def test_grading_seam() -> None:
    assert (await grade_pair("exact", "Paris ", "paris")).score == 1.0
    assert (await grade_pair("exact", "Paris", "Lyon")).score == 0.0
    assert (await grade_pair("contains", "paris", "It is Paris.")).score == 1.0
    missing = await grade_pair("judge:big", "a", "a")
    assert missing.score is None and missing.error is not None and "not available" in missing.error
    assert check_spec("contains") is None and check_spec("tool_call") is not None


def primary_starts_the_answer(case: Any) -> float:
    """A user grader for shadow pairs (``python:tests.experiments.test_assignment:...``)."""
    return 1.0 if case.answer.text.startswith(case.expected) else 0.25


async def test_evaluation_graders_over_two_texts_grade_shadow_pairs() -> None:
    # regex: and python: come from hedge.evals.graders; the primary's answer is their `expected`.
    assert check_spec("regex:^{expected}$") is None
    assert (await grade_pair("regex:^{expected}$", "Paris", "Paris")).score == 1.0
    assert (await grade_pair("regex:^{expected}$", "Paris", "Paris, France")).score == 0.0
    assert check_spec("regex:(") is not None  # an invalid pattern is refused at start-up
    spec = "python:experiments.test_assignment:primary_starts_the_answer"
    assert check_spec(spec) is None
    assert (await grade_pair(spec, "Paris", "Paris, France")).score == 1.0
    assert (await grade_pair(spec, "Paris", "Lyon")).score == 0.25
    assert check_spec("python:nowhere_at_all:f") is not None


BASE: dict[str, Any] = {
    "server": {"master_key": "k"},
    "providers": {"p": {"style": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {
        "a": {"deployments": [{"provider": "p", "model": "m"}]},
        "b": {"deployments": [{"provider": "p", "model": "n"}]},
    },
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "models": {
                    **BASE["models"],
                    "a": {"deployments": [{"provider": "p", "model": "m"}], "shadow": [{"to": "zz"}]},
                }
            },
            "models.a.shadow[0].to: 'zz' is neither another alias nor a configured deployment",
        ),
        (
            {
                "models": {
                    **BASE["models"],
                    "a": {"deployments": [{"provider": "p", "model": "m"}], "shadow": [{"to": "a"}]},
                }
            },
            "models.a.shadow[0].to",
        ),
        (
            {
                "experiments": {
                    "x": {
                        "alias": "a",
                        "arms": {"c": {"use": "a", "weight": 1}, "d": {"use": "b", "weight": 1}},
                        "metric": "m",
                    }
                }
            },
            "experiments.x: needs an arm named 'control'",
        ),
        (
            {
                "experiments": {
                    "x": {
                        "alias": "zz",
                        "arms": {"control": {"use": "a", "weight": 1}, "d": {"use": "b", "weight": 1}},
                        "metric": "m",
                    }
                }
            },
            "experiments.x.alias: unknown model alias 'zz'",
        ),
        (
            {
                "experiments": {
                    "x": {
                        "alias": "a",
                        "arms": {"control": {"use": "a", "weight": 1}, "d": {"use": "q", "weight": 1}},
                        "metric": "m",
                    }
                }
            },
            "experiments.x.arms.d.use: unknown model alias 'q'",
        ),
        (
            {
                "experiments": {
                    "x": {
                        "alias": "a",
                        "assign_by": "cookie",
                        "arms": {"control": {"use": "a", "weight": 1}, "d": {"use": "b", "weight": 1}},
                        "metric": "m",
                    }
                }
            },
            "experiments.x.assign_by: must be key, user or header:NAME",
        ),
        (
            {
                "experiments": {
                    "x": {
                        "alias": "a",
                        "adaptive": {},
                        "arms": {"control": {"use": "a", "weight": 1}, "d": {"use": "b", "weight": 1}},
                        "metric": "m",
                    }
                }
            },
            "adaptive needs a margin",
        ),
        (
            {
                "experiments": {
                    "x y": {
                        "alias": "a",
                        "arms": {"control": {"use": "a", "weight": 1}, "d": {"use": "b", "weight": 1}},
                        "metric": "m",
                    }
                }
            },
            "experiments.x y: 'x y': names are",
        ),
    ],
)
def test_config_refuses_bad_experiments(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({**BASE, **change}, "hedge.yaml")
    assert message in str(err.value)


def test_config_accepts_a_deployment_as_shadow_target() -> None:
    models = {
        **BASE["models"],
        "a": {"deployments": [{"provider": "p", "model": "m"}], "shadow": [{"to": "p/n"}]},
    }
    config = parse_config({**BASE, "models": models}, "hedge.yaml")
    assert config.models["a"].shadow[0].sample == 0.05 and config.models["a"].shadow[0].grader == "exact"


def test_a_shadow_grader_the_gateway_lacks_stops_start_up(tmp_path: Any) -> None:
    from hedge.experiments.service import Experiments
    from hedge.experiments.shadow import config_problems
    from hedge.gateway.runtime import Runtime

    models = {
        **BASE["models"],
        "a": {"deployments": [{"provider": "p", "model": "m"}], "shadow": [{"to": "b", "grader": "judge:b"}]},
    }
    config = parse_config({**BASE, "models": models, "state": {"dir": str(tmp_path)}}, "hedge.yaml")
    [problem] = config_problems(config)
    assert problem.startswith("models.a.shadow[0].grader: grader 'judge:b' is not available")
    with pytest.raises(ConfigError, match="judge:b"):
        Experiments(Runtime(config))
