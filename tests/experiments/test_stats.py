"""The experiments' statistics against published values.

Wilson intervals: 8/10 and 0/10 from Newcombe (1998), "Two-sided confidence intervals for the
single proportion", Statistics in Medicine 17, table I (method 3). Student t quantiles from the
standard t table. The Welch and t intervals were computed with ``scipy.stats.ttest_ind(a, b,
equal_var=False).confidence_interval(0.95)`` and ``scipy.stats.t.interval``.
"""

from __future__ import annotations

import pytest

from hedge.experiments.stats import (
    Sample,
    difference,
    lower_bound,
    mean_interval,
    non_inferior,
    t_quantile,
    wilson,
)

A = [0.8, 0.9, 0.7, 1.0, 0.6, 0.85]
B = [0.5, 0.6, 0.55, 0.7, 0.4]


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [(8, 10, 0.4902, 0.9433), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_interval_matches_published_bounds(successes: int, n: int, low: float, high: float) -> None:
    interval = wilson(successes, n)
    assert interval.estimate == pytest.approx(successes / n)
    assert interval.low == pytest.approx(low, abs=1e-4)
    assert interval.high == pytest.approx(high, abs=1e-4)


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 1, 12.7062),
        (0.975, 2, 4.3027),
        (0.975, 3, 3.1824),
        (0.9, 4, 1.5332),
        (0.975, 5, 2.5706),
        (0.975, 10, 2.2281),
        (0.95, 30, 1.6973),
        (0.995, 7.5, 3.4214),  # Welch gives fractional degrees of freedom (scipy.stats.t.ppf)
    ],
)
def test_t_quantile_matches_the_table(p: float, df: float, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-4)
    assert t_quantile(1 - p, df) == pytest.approx(-t_quantile(p, df))


def test_mean_interval_of_scores_is_students_t() -> None:
    interval = mean_interval(Sample.of(A))
    assert interval is not None
    assert interval.estimate == pytest.approx(0.80833, abs=1e-5)
    assert interval.low == pytest.approx(0.65838, abs=1e-4)
    assert interval.high == pytest.approx(0.95828, abs=1e-4)


def test_mean_interval_of_pass_fail_is_wilson() -> None:
    values = [1.0] * 8 + [0.0] * 2
    interval = mean_interval(Sample.of(values))
    assert interval is not None and interval.low == pytest.approx(0.4902, abs=1e-4)
    assert mean_interval(Sample(0, 0.0, 0.0)) is None
    single = mean_interval(Sample.of([0.4]))
    assert single is not None and single.low == single.high == 0.4


def test_difference_of_means_is_welchs_interval() -> None:
    diff = difference(Sample.of(A), Sample.of(B))
    assert diff is not None
    assert diff.estimate == pytest.approx(0.25833, abs=1e-5)
    assert diff.low == pytest.approx(0.08449, abs=1e-4) and diff.high == pytest.approx(0.43218, abs=1e-4)
    assert difference(Sample.of([1.0]), Sample.of(B)) is None


def test_non_inferiority_uses_the_one_sided_lower_bound() -> None:
    control = Sample.of([1.0] * 90 + [0.0] * 10)  # 0.90
    close = Sample.of([1.0] * 88 + [0.0] * 12)  # 0.88: within a margin of 0.1 for sure
    worse = Sample.of([1.0] * 70 + [0.0] * 30)  # 0.70: surely worse by more than 0.1
    assert non_inferior(close, control, margin=0.1)
    assert not non_inferior(worse, control, margin=0.1)
    assert not non_inferior(close, control, margin=0.0)  # a lower mean is not "not worse" at margin 0
    assert not non_inferior(Sample.of([1.0]), control, margin=0.5)  # too few values to say


def test_lower_bound_is_one_sided() -> None:
    sample = Sample.of([1.0] * 8 + [0.0] * 2)
    one_sided = lower_bound(sample, 0.95)
    two_sided = mean_interval(sample, 0.95)
    assert one_sided is not None and two_sided is not None
    assert two_sided.low < one_sided < sample.mean  # 95 % one-sided is the 90 % two-sided bound
    assert one_sided == pytest.approx(wilson(8, 10, 0.90).low)
