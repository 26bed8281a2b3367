"""The statistics experiments need: the interval of a mean, the difference of two means with its
interval, and a non-inferiority test, from sufficient statistics (count, sum, sum of squares), so
results are computed from one aggregate query however many requests an arm had.

Pass/fail metrics (every value 0 or 1) get Wilson's score interval, which stays inside [0, 1]
and behaves at 0 % and 100 %; scores get Student's t. Differences use Welch's t (unequal
variances, Welch-Satterthwaite degrees of freedom). Only the standard library: the normal
quantile is :class:`statistics.NormalDist`'s; the t quantile starts from a Cornish-Fisher
expansion and is polished by Newton steps on the exact t distribution (through the regularized
incomplete beta function), for any real number of degrees of freedom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class Sample:
    """Sufficient statistics of a sample: ``n`` values with sum ``total`` and sum of squares ``squares``."""

    n: int
    total: float
    squares: float
    binary: bool = False
    """Every value is 0 or 1 (pass/fail)."""

    @classmethod
    def of(cls, values: list[float]) -> Sample:
        return cls(len(values), sum(values), sum(v * v for v in values), all(v in (0.0, 1.0) for v in values))

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """The unbiased sample variance (``None`` below two values)."""
        if self.n < 2:
            return None
        mean = self.total / self.n
        return max(0.0, (self.squares - self.n * mean * mean) / (self.n - 1))


@dataclass(frozen=True, slots=True)
class Interval:
    estimate: float
    low: float
    high: float


def z_quantile(p: float) -> float:
    return _NORMAL.inv_cdf(p)


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom."""
    if not 0 < p < 1:
        raise ValueError("p must be between 0 and 1")
    if df <= 0:
        raise ValueError("df must be positive")
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = _NORMAL.inv_cdf(p)
    z2 = z * z
    g1 = (z2 + 1) * z / 4
    g2 = ((5 * z2 + 16) * z2 + 3) * z / 96
    g3 = (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384
    g4 = ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160
    t = z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4
    for _ in range(4):  # Newton on the exact distribution: the expansion is close, so this converges
        step = (t_cdf(t, df) - p) / _t_pdf(t, df)
        t -= step
        if abs(step) < 1e-12:
            break
    return t


def t_cdf(t: float, df: float) -> float:
    """Student's t distribution function."""
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t > 0 else tail


def _t_pdf(t: float, df: float) -> float:
    log = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log - (df + 1) / 2 * math.log1p(t * t / df))


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction (Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast on this side only
        return 1 - _incomplete_beta(b, a, 1 - x)
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return front * h / a


def wilson(successes: float, n: int, confidence: float = 0.95) -> Interval:
    """Wilson's score interval of a proportion (two-sided at ``confidence``)."""
    if n <= 0:
        raise ValueError("n must be positive")
    p = successes / n
    z = z_quantile(1 - (1 - confidence) / 2)
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(sample: Sample, confidence: float = 0.95) -> Interval | None:
    """The interval of the sample's mean: Wilson for pass/fail values, Student's t otherwise
    (``None`` for no values; a single score's interval is the value itself)."""
    mean = sample.mean
    if mean is None:
        return None
    if sample.binary:
        return wilson(sample.total, sample.n, confidence)
    variance = sample.variance
    if variance is None:
        return Interval(mean, mean, mean)
    half = t_quantile(1 - (1 - confidence) / 2, sample.n - 1) * math.sqrt(variance / sample.n)
    return Interval(mean, mean - half, mean + half)


def _welch(a: Sample, b: Sample) -> tuple[float, float, float] | None:
    """(difference a - b, its standard error, Welch's degrees of freedom); ``None`` below two values."""
    va, vb = a.variance, b.variance
    if va is None or vb is None or a.mean is None or b.mean is None:
        return None
    sa, sb = va / a.n, vb / b.n
    se = math.sqrt(sa + sb)
    if se == 0:
        df = float(a.n + b.n - 2)
    else:
        df = (sa + sb) ** 2 / (sa * sa / (a.n - 1) + sb * sb / (b.n - 1))
    return a.mean - b.mean, se, df


def difference(a: Sample, b: Sample, confidence: float = 0.95) -> Interval | None:
    """The difference of means ``a - b`` with its two-sided Welch interval."""
    welch = _welch(a, b)
    if welch is None:
        return None
    diff, se, df = welch
    half = t_quantile(1 - (1 - confidence) / 2, df) * se
    return Interval(diff, diff - half, diff + half)


def non_inferior(candidate: Sample, control: Sample, margin: float, confidence: float = 0.95) -> bool:
    """Whether ``candidate`` is not worse than ``control`` by more than ``margin`` (higher is better):
    the one-sided lower bound at ``confidence`` of ``candidate - control`` is above ``-margin``."""
    welch = _welch(candidate, control)
    if welch is None:
        return False
    diff, se, df = welch
    return diff - t_quantile(confidence, df) * se > -margin


def lower_bound(sample: Sample, confidence: float = 0.95) -> float | None:
    """The one-sided lower bound of the mean at ``confidence`` (for a bar: is the mean surely above it?)."""
    interval = mean_interval(sample, 1 - 2 * (1 - confidence))
    return None if interval is None else interval.low
