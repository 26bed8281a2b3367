"""The evaluation's statistics against published values.

Wilson bounds: the four examples of Newcombe (1998), "Two-sided confidence intervals for the single
proportion: comparison of seven methods", Statistics in Medicine 17:857-872, table II, method 3
(81/263, 15/148, 0/20, 1/29), plus 0/10, 5/10 and 10/10 worked by hand from the formula.
t quantiles: any Student's t table (t_0.975 for df 1, 2, 5, 9, 10, 30, 1000).
"""

from __future__ import annotations

import pytest

from hedge.evals.stats import percentile, t_interval, t_quantile, wilson


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (1, 1, 0.2065, 1.0),
    ],
)
def test_wilson_bounds(successes: int, n: int, low: float, high: float) -> None:
    found = wilson(successes, n)
    assert found.low == pytest.approx(low, abs=5e-5)
    assert found.high == pytest.approx(high, abs=5e-5)
    assert found.mean == successes / n


def test_wilson_edges() -> None:
    assert (wilson(0, 0).low, wilson(0, 0).high) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)


@pytest.mark.parametrize(
    ("df", "quantile"),
    [(1, 12.7062), (2, 4.3027), (5, 2.5706), (9, 2.2622), (10, 2.2281), (30, 2.0423), (1000, 1.9623)],
)
def test_t_quantiles(df: int, quantile: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(quantile, abs=5e-5)
    assert t_quantile(0.025, df) == pytest.approx(-quantile, abs=5e-5)


def test_t_interval_of_known_scores() -> None:
    # n = 10, mean 0.5, sample sd sqrt(0.1 / 9) = 0.10541: half width t_0.975(9) = 2.2622 times
    # 0.10541 / sqrt(10), so [0.4246, 0.5754]
    found = t_interval([0.4, 0.6] * 5)
    assert found.mean == pytest.approx(0.5)
    assert found.low == pytest.approx(0.4246, abs=5e-5)
    assert found.high == pytest.approx(0.5754, abs=5e-5)
    assert t_interval([0.9, 0.9, 0.9]) == t_interval([0.9, 0.9, 0.9])
    assert (t_interval([1.0, 1.0, 0.0]).high, t_interval([]).high) == (1.0, 1.0)  # clipped; unknown
    assert (t_interval([0.7]).low, t_interval([0.7]).high) == (0.0, 1.0)  # one score: no spread known


def test_percentiles() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
