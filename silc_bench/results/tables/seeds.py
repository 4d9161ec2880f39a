"""Seeds of one training recipe, summarised: mean ± std per metric and a verdict per pair.

A tiny model trained once says little about its recipe: two seeds of the same config can
differ by several points on a 360-image test set. `reports/shapes.md` therefore trains each
recipe with several seeds and calls one recipe ahead of another on a metric only when the
difference of the means exceeds twice the pooled standard deviation; anything smaller is
"no difference at this scale". The rule is fixed here, not per report, so that no verdict
is chosen after seeing the numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

NO_DIFFERENCE = "no difference at this scale"
NO_VERDICT = "no verdict (fewer than 2 seeds on a side)"


@dataclass(frozen=True)
class Summary:
    """The values of one metric over a recipe's seeds (in seed order)."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        """The sample standard deviation (n − 1): with 3 seeds the population one would
        understate the spread. 0 for a single value, which never supports a verdict."""
        return statistics.stdev(self.values) if self.n > 1 else 0.0

    def cell(self) -> str:
        text = f"{self.mean:.1f} ± {self.std:.1f}"
        return text if self.n > 1 else f"{self.mean:.1f} (1 seed)"


def summarise(values: Sequence[float | None]) -> Summary | None:
    """The seeds that were measured; None when none was."""
    got = tuple(float(v) for v in values if v is not None)
    return Summary(got) if got else None


def pooled_std(a: Summary, b: Summary) -> float:
    """The pooled sample standard deviation of two recipes' seeds."""
    dof = (a.n - 1) + (b.n - 1)
    if dof <= 0:
        return math.nan
    return math.sqrt(((a.n - 1) * a.std**2 + (b.n - 1) * b.std**2) / dof)


def verdict(a: Summary | None, b: Summary | None, a_ahead: str, b_ahead: str) -> str:
    """`a_ahead` or `b_ahead` where |mean(a) − mean(b)| > 2 × pooled std, else no difference.

    Each side needs 2 seeds or more: a single seed says nothing about its own recipe's
    spread, and the other side's spread alone is not a bar for it."""
    if a is None or b is None:
        return "–"
    if min(a.n, b.n) < 2:
        return NO_VERDICT
    s = pooled_std(a, b)
    diff = a.mean - b.mean
    if abs(diff) > 2 * s:
        return a_ahead if diff > 0 else b_ahead
    return NO_DIFFERENCE


def difference_cell(a: Summary | None, b: Summary | None, a_ahead: str, b_ahead: str) -> str:
    """'+3.1 (2σ = 1.4): SILC ahead': the difference, the bar it had to clear, the verdict."""
    if a is None or b is None:
        return "–"
    s = pooled_std(a, b)
    bar = "n/a" if math.isnan(s) else f"{2 * s:.1f}"
    return f"{a.mean - b.mean:+.1f} (2σ {bar}): {verdict(a, b, a_ahead, b_ahead)}"
