"""Confidence intervals for an evaluation's quality: Wilson for pass/fail, Student's t for scores.

Wilson's score interval, not the normal ("Wald") one: near 0 or 1, which is where a good model's
pass rate lives, the Wald interval is too narrow and can leave [0, 1]; Wilson's stays inside and
keeps close to its nominal coverage even for small n. Scores (similarity, a judge's grade) get the
t interval of their mean, clipped to [0, 1]. No SciPy: the t quantile comes from the regularised
incomplete beta function (a continued fraction, as in Numerical Recipes) and bisection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054
"""The standard normal's 97.5th percentile: a two-sided 95% interval."""


@dataclass(frozen=True, slots=True)
class Interval:
    mean: float
    low: float
    high: float


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    """Wilson's score interval for ``successes`` out of ``n`` (n = 0: the whole of [0, 1])."""
    if n <= 0:
        return Interval(0.0, 0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n, got {successes} of {n}")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def t_interval(scores: Sequence[float], confidence: float = 0.95) -> Interval:
    """The t interval of the mean of ``scores``, clipped to [0, 1] (one score: no spread is known,
    so the interval is [0, 1]; none: mean 0 and [0, 1])."""
    n = len(scores)
    if n == 0:
        return Interval(0.0, 0.0, 1.0)
    mean = math.fsum(scores) / n
    if n == 1:
        return Interval(mean, 0.0, 1.0)
    variance = math.fsum((s - mean) ** 2 for s in scores) / (n - 1)
    half = t_quantile(1 - (1 - confidence) / 2, n - 1) * math.sqrt(variance / n)
    return Interval(mean, max(0.0, mean - half), min(1.0, mean + half))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (0 < p < 1)."""
    if not 0 < p < 1 or df <= 0:
        raise ValueError("need 0 < p < 1 and df > 0")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2
        if high > 1e12:
            return high
    for _ in range(200):
        mid = (low + high) / 2
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    x = df / (df + t * t)
    tail = 0.5 * incomplete_beta(df / 2, 0.5, x)
    return 1 - tail if t >= 0 else tail


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1 - front * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Lentz's evaluation of the incomplete beta function's continued fraction."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1) < 3e-16:
            break
    return h


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` (0..100) percentile by linear interpolation between order statistics; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    below = math.floor(rank)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (rank - below)
