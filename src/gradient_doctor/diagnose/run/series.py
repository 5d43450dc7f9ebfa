"""NaN-aware robust statistics over a run's series, shared by the run rules.

    >>> median(np.array([1.0, np.nan, 3.0]))
    2.0
    >>> slope, intercept = robust_line(steps, loss)     # Theil–Sen: the median of pairwise slopes
    >>> noise(loss - (intercept + slope * steps))         # 1.4826 × MAD: the loss's own step-to-step spread
    >>> episodes(ratio > 20, ratio > 4.5)                 # [(first, last)] index ranges, with hysteresis

Robust (median-based) statistics because a run's series have outliers by nature: one odd batch, one spike.
"""

from __future__ import annotations

import numpy as np

from ...record.history import finite_median

#: 1.4826 × MAD estimates the standard deviation of normal data and ignores up to half the points as outliers.
MAD_TO_SIGMA = 1.4826
#: Theil–Sen on at most this many evenly spaced points (n² / 2 pairs): 32,640 pairs, milliseconds for any run.
SLOPE_POINTS = 256


def median(values: np.ndarray) -> float:
    """The median of the finite values, NaN when there are none."""
    finite = values[np.isfinite(values)]
    return finite_median(finite) if finite.size else float("nan")


def noise(values: np.ndarray) -> float:
    """1.4826 × the median absolute deviation of the finite values: a standard deviation robust to outliers."""
    finite = values[np.isfinite(values)]
    return MAD_TO_SIGMA * finite_median(np.abs(finite - finite_median(finite))) if finite.size else float("nan")


def robust_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the Theil–Sen line through the finite points: the median of the pairwise slopes, then
    the median of y − slope·x. NaN for fewer than two points."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep].astype(np.float64), y[keep]
    if x.size < 2:
        return float("nan"), float("nan")
    if x.size > SLOPE_POINTS:
        pick = np.unique(np.linspace(0, x.size - 1, SLOPE_POINTS).round().astype(np.int64))
        x_fit, y_fit = x[pick], y[pick]
    else:
        x_fit, y_fit = x, y
    i, j = np.triu_indices(x_fit.size, k=1)
    dx = x_fit[j] - x_fit[i]
    slope = finite_median((y_fit[j] - y_fit[i])[dx != 0] / dx[dx != 0])  # finite points: no NaN among the slopes
    return slope, float(np.median(y - slope * x))


def head(values: np.ndarray, points: int) -> np.ndarray:
    """The first quarter of the finite values, at least `points` of them (all of them when there are fewer)."""
    finite = values[np.isfinite(values)]
    return finite[: max(points, finite.size // 4)]


def tail(values: np.ndarray, points: int) -> np.ndarray:
    """The last quarter of the finite values, at least `points` of them."""
    finite = values[np.isfinite(values)]
    return finite[-max(points, finite.size // 4):] if finite.size else finite


def episodes(enter: np.ndarray, stay: np.ndarray) -> list[tuple[int, int]]:
    """Index ranges (first, last), inclusive, where a condition holds, with hysteresis: an episode begins where
    `enter` is true and lasts while `stay` is (`enter` implies `stay`), so a series hovering at the threshold
    makes one episode, not many.

    >>> episodes(np.array([0, 1, 0, 0, 1, 1]) > 0, np.array([0, 1, 1, 0, 1, 1]) > 0)
    [(1, 2), (4, 5)]
    """
    out: list[tuple[int, int]] = []
    start = None
    for i, (begin, hold) in enumerate(zip(enter, stay)):
        if start is None and begin:
            start = i
        elif start is not None and not hold:
            out.append((start, i - 1))
            start = None
    if start is not None:
        out.append((start, len(enter) - 1))
    return out


def share(values: np.ndarray, hit: np.ndarray) -> float:
    """The share of the finite `values` at which `hit` holds; NaN when none is finite.

    >>> share(x, x > 0.5)
    """
    finite = np.isfinite(values)
    return float(np.mean(hit[finite])) if finite.any() else float("nan")


def rounded(value: float, digits: int = 4) -> float:
    """`value` to `digits` significant digits, for evidence that reads well (inf and NaN pass through)."""
    return float(f"{value:.{digits}g}") if np.isfinite(value) else float(value)
