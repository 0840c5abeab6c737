"""Correlation metrics between predicted scores and MOS, as reported for IQA/VQA.

Small pure functions over two equal-length sequences (``pred``, ``gt``):

* ``srcc``: Spearman rank correlation (monotonicity; ties get average ranks).
* ``plcc``: Pearson linear correlation on the raw predictions (what the released
  PreResQ-R1 script reports).
* ``plcc_logistic``: Pearson after mapping predictions through the 4-parameter logistic
  f(x) = (b1 - b2) / (1 + exp(-(x - b3) / b4)) + b2 fitted to the MOS (VQEG practice,
  used by DeQA-Score and most of the field), initialised at [max y, min y, mean x, std x / 4].
* ``krcc``: Kendall rank correlation (tau-b).
* ``rmse_logistic``: root mean squared error between the MOS and the logistic-mapped
  predictions (ITU-T P.1401 reports it beside PLCC), in MOS units (the [1, 5] scale).
* ``bootstrap_ci``: percentile bootstrap interval of any of these.

A correlation is undefined when either side is constant or has fewer than 2 items: the
functions then return NaN and emit a ``DegenerateInputWarning`` that says why, never crash.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import optimize, special, stats

__all__ = [
    "DegenerateInputWarning", "srcc", "plcc", "plcc_logistic", "krcc", "logistic_4",
    "fit_logistic", "rmse_logistic", "bootstrap_ci", "summarize",
]


class DegenerateInputWarning(RuntimeWarning):
    """A correlation was asked of inputs for which it is undefined (NaN returned)."""


def _pair(pred: Sequence[float], gt: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(gt, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"pred and gt differ in length: {x.size} vs {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("pred and gt must be finite (drop items without a score first)")
    return x, y


def _degenerate(x: np.ndarray, y: np.ndarray, name: str) -> bool:
    """True (after warning) when the correlation ``name`` is undefined for x, y."""
    if x.size < 2:
        reason = f"{x.size} item(s)"
    elif np.ptp(x) == 0:
        reason = f"constant predictions ({x[0]:g})"
    elif np.ptp(y) == 0:
        reason = f"constant ground truth ({y[0]:g})"
    else:
        return False
    warnings.warn(f"{name} is undefined for {reason}: returning NaN", DegenerateInputWarning,
                  stacklevel=3)
    return True


def srcc(pred: Sequence[float], gt: Sequence[float]) -> float:
    """Spearman rank correlation coefficient (NaN for constant or < 2 items).

    >>> round(srcc([1, 2, 3, 4], [10, 20, 30, 25]), 6)
    0.8
    """
    x, y = _pair(pred, gt)
    if _degenerate(x, y, "SRCC"):
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def plcc(pred: Sequence[float], gt: Sequence[float]) -> float:
    """Pearson linear correlation coefficient on raw predictions (NaN when undefined).

    >>> round(plcc([1, 2, 3], [2, 4, 7]), 4)
    0.9934
    """
    x, y = _pair(pred, gt)
    if _degenerate(x, y, "PLCC"):
        return math.nan
    return float(stats.pearsonr(x, y).statistic)


def krcc(pred: Sequence[float], gt: Sequence[float]) -> float:
    """Kendall rank correlation coefficient, tau-b (NaN when undefined).

    >>> round(krcc([1, 2, 3, 4], [1, 3, 2, 4]), 4)
    0.6667
    """
    x, y = _pair(pred, gt)
    if _degenerate(x, y, "KRCC"):
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


def logistic_4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The VQEG 4-parameter logistic: from b2 (x -> -inf) to b1 (x -> +inf), centre b3.

    Written with ``expit`` (the same function, without overflow for far-out x).
    """
    return (b1 - b2) * special.expit((np.asarray(x) - b3) / b4) + b2


def _logistic_jacobian(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    # Analytic derivatives: curve_fit's finite differences scale their step with the
    # parameter, so a centre starting at mean x = 0 would never move.
    s = special.expit((x - b3) / b4)
    slope = (b1 - b2) * s * (1.0 - s)
    return np.stack([s, 1.0 - s, -slope / b4, -slope * (x - b3) / b4**2], axis=1)


def fit_logistic(pred: Sequence[float], gt: Sequence[float]) -> np.ndarray | None:
    """Fit ``logistic_4`` mapping predictions to MOS; None (with a warning) if it cannot.

    Initialised at [max y, min y, mean x, std x / 4] as in DeQA-Score and VQEG scripts.
    Needs at least 4 items (4 parameters) and non-constant inputs.
    """
    x, y = _pair(pred, gt)
    if _degenerate(x, y, "the logistic fit"):
        return None
    if x.size < 4:
        warnings.warn(f"the logistic fit needs >= 4 items, got {x.size}: returning NaN",
                      DegenerateInputWarning, stacklevel=2)
        return None
    p0 = [y.max(), y.min(), x.mean(), x.std() / 4.0]
    try:
        with warnings.catch_warnings():
            # Only the fitted curve is used, never the parameters' covariance.
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(logistic_4, x, y, p0=p0, jac=_logistic_jacobian,
                                           maxfev=20000)
    except RuntimeError as e:
        warnings.warn(f"4-parameter logistic fit did not converge ({e}): returning NaN",
                      DegenerateInputWarning, stacklevel=2)
        return None
    return params


def _plcc_fitted(x: np.ndarray, y: np.ndarray, params: np.ndarray | None) -> float:
    if params is None:
        return math.nan
    fitted = logistic_4(x, *params)
    if np.ptp(fitted) == 0:  # the fit can saturate into a constant
        warnings.warn("logistic fit is constant over the predictions: PLCC is NaN",
                      DegenerateInputWarning, stacklevel=3)
        return math.nan
    return float(stats.pearsonr(fitted, y).statistic)


def plcc_logistic(pred: Sequence[float], gt: Sequence[float]) -> float:
    """PLCC after the 4-parameter logistic mapping of predictions (NaN when undefined).

    >>> round(plcc_logistic([1, 2, 3, 4, 5], [1.0, 1.2, 3.0, 4.8, 5.0]), 3)
    1.0
    """
    x, y = _pair(pred, gt)
    return _plcc_fitted(x, y, fit_logistic(x, y))


def _rmse_fitted(x: np.ndarray, y: np.ndarray, params: np.ndarray | None) -> float:
    if params is None:
        return math.nan
    return float(np.sqrt(np.mean((logistic_4(x, *params) - y) ** 2)))


def rmse_logistic(pred: Sequence[float], gt: Sequence[float]) -> float:
    """RMSE of the MOS against the 4-parameter logistic fit of the predictions (NaN when
    the fit is undefined).

    >>> round(rmse_logistic([1, 2, 3, 4, 5], [1.0, 1.2, 3.0, 4.8, 5.0]), 3)
    0.0
    """
    x, y = _pair(pred, gt)
    return _rmse_fitted(x, y, fit_logistic(x, y))


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / den
    return np.where(den > 0, r, np.nan)


def _resampled_ranks(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Average ranks (as ``scipy.stats.rankdata``) of ``values[idx]`` for each row of idx.

    Counting instead of sorting: a resample only repeats the original values, so the rank
    of a value is the number of drawn items below it plus half its own ties. O(n) per row.
    """
    uniq, inv = np.unique(values, return_inverse=True)
    rows, n = idx.shape
    codes = inv[idx] + np.arange(rows)[:, None] * uniq.size
    counts = np.bincount(codes.ravel(), minlength=rows * uniq.size).reshape(rows, uniq.size)
    below = np.cumsum(counts, axis=1) - counts
    avg_rank = below + (counts + 1) / 2.0
    return np.take_along_axis(avg_rank, inv[idx], axis=1)


def resampled_spearman(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """SRCC of ``x[i], y[i]`` for each row ``i`` of the resample indices ``idx`` (vectorised)."""
    return _rowwise_pearson(_resampled_ranks(x, idx), _resampled_ranks(y, idx))


def resampled_pearson(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """PLCC of ``x[i], y[i]`` for each row ``i`` of ``idx`` (NaN where undefined)."""
    return _rowwise_pearson(x[idx], y[idx])


_VECTORISED: dict[Callable, Callable] = {}


def bootstrap_ci(metric: Callable[[Sequence[float], Sequence[float]], float],
                 pred: Sequence[float], gt: Sequence[float], n_samples: int = 1000,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric`` over items resampled with replacement.

    Args:
        metric: ``srcc`` or ``plcc`` (computed vectorised) or any f(pred, gt) -> float.
        n_samples: number of resamples; 0 returns (NaN, NaN).
        seed: the resampling seed, so the interval is the same run to run.
        level: coverage, 0.95 for a 95% interval.

    Returns:
        (low, high); (NaN, NaN) when the metric is undefined on the data. Resamples on
        which it is undefined (all one value) are left out of the percentiles.
    """
    x, y = _pair(pred, gt)
    if n_samples <= 0 or x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    rowwise = _VECTORISED.get(metric)
    chunk = max(1, 250_000 // x.size)  # resamples at once: a few MB whatever the benchmark size
    values = []
    for start in range(0, n_samples, chunk):
        idx = rng.integers(0, x.size, size=(min(chunk, n_samples - start), x.size))
        if rowwise is not None:
            values.append(rowwise(x, y, idx))
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DegenerateInputWarning)
                values.append(np.array([metric(x[i], y[i]) for i in idx]))
    values = np.concatenate(values)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return (float(low), float(high))


_VECTORISED.update({srcc: resampled_spearman, plcc: resampled_pearson})


def summarize(pred: Sequence[float], gt: Sequence[float], bootstrap_samples: int = 1000,
              seed: int = 0) -> dict:
    """All reported metrics for one benchmark's valid predictions, as a flat dict."""
    x, y = _pair(pred, gt)
    params = fit_logistic(x, y)
    return {
        "srcc": srcc(x, y),
        "plcc": plcc(x, y),
        "plcc_logistic": _plcc_fitted(x, y, params),
        "krcc": krcc(x, y),
        "rmse": _rmse_fitted(x, y, params),
        "srcc_ci": list(bootstrap_ci(srcc, x, y, bootstrap_samples, seed)),
        "plcc_ci": list(bootstrap_ci(plcc, x, y, bootstrap_samples, seed)),
        "logistic_params": None if params is None else [float(p) for p in params],
    }
