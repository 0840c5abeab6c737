"""Correlation metrics: against scipy, hand-worked cases, committed reference values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import optimize, stats

from preresq.evaluation import metrics
from preresq.evaluation.metrics import (
    DegenerateInputWarning,
    bootstrap_ci,
    fit_logistic,
    krcc,
    logistic_4,
    plcc,
    plcc_logistic,
    srcc,
    summarize,
)

# A fixed small benchmark and its metrics (computed once with scipy 1.17, committed).
PRED = [3.1, 2.4, 4.8, 1.9, 3.3, 4.1, 2.2, 3.9]
GT = [3.0, 2.0, 4.5, 2.5, 3.5, 4.0, 1.5, 4.2]
REFERENCE = {"srcc": 0.9047619047619048, "plcc": 0.9233468306109813,
             "krcc": 0.7857142857142856, "plcc_logistic": 0.9609209740530366}


def test_reference_values():
    assert srcc(PRED, GT) == pytest.approx(REFERENCE["srcc"], abs=1e-12)
    assert plcc(PRED, GT) == pytest.approx(REFERENCE["plcc"], abs=1e-12)
    assert krcc(PRED, GT) == pytest.approx(REFERENCE["krcc"], abs=1e-12)
    assert plcc_logistic(PRED, GT) == pytest.approx(REFERENCE["plcc_logistic"], abs=1e-4)


def test_hand_worked_cases():
    # d = ranks differ by one on two items: 1 - 6 * 2 / (4 * 15) = 0.8
    assert srcc([1, 2, 3, 4], [10, 20, 30, 25]) == pytest.approx(0.8)
    # sum dx*dy = 5, sum dx^2 = 2, sum dy^2 = 114/9
    assert plcc([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(2 * 114 / 9))
    # 5 concordant, 1 discordant pair of 6
    assert krcc([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert srcc([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


@pytest.mark.parametrize("n,seed", [(5, 0), (50, 1), (400, 2)])
def test_agree_with_scipy_including_ties(n, seed):
    rng = np.random.default_rng(seed)
    gt = np.round(rng.uniform(1, 5, n), 1)  # rounding makes ties
    pred = np.round(gt + rng.normal(0, 0.7, n), 1)
    assert srcc(pred, gt) == pytest.approx(stats.spearmanr(pred, gt).statistic, abs=1e-12)
    assert plcc(pred, gt) == pytest.approx(stats.pearsonr(pred, gt).statistic, abs=1e-12)
    assert krcc(pred, gt) == pytest.approx(stats.kendalltau(pred, gt).statistic, abs=1e-12)


def test_rank_metrics_ignore_monotone_transforms_plcc_does_not():
    x = np.linspace(0.1, 3, 30)
    y = x + np.sin(5 * x) * 0.2
    assert srcc(np.exp(x), y) == pytest.approx(srcc(x, y))
    assert krcc(x ** 3, y) == pytest.approx(krcc(x, y))
    assert plcc(np.exp(x), y) < plcc(x, y)


def test_logistic_fit_straightens_a_sigmoid():
    x = np.linspace(-3, 3, 60)
    y = logistic_4(x, 4.8, 1.2, 0.3, 0.4)
    assert plcc(x, y) < 0.95
    assert plcc_logistic(x, y) == pytest.approx(1.0, abs=1e-6)
    params = fit_logistic(x, y)
    assert np.allclose(logistic_4(x, *params), y, atol=1e-4)


def test_logistic_fit_starts_at_the_documented_point(monkeypatch):
    seen = {}
    real = optimize.curve_fit

    def spy(f, x, y, p0=None, **kw):
        seen["p0"] = list(p0)
        return real(f, x, y, p0=p0, **kw)

    monkeypatch.setattr(metrics.optimize, "curve_fit", spy)
    fit_logistic(PRED, GT)
    x = np.array(PRED)
    assert seen["p0"] == pytest.approx([max(GT), min(GT), x.mean(), x.std() / 4])


@pytest.mark.parametrize("fn", [srcc, plcc, krcc, plcc_logistic])
def test_constant_predictions_give_nan_with_a_warning(fn):
    with pytest.warns(DegenerateInputWarning, match="constant predictions"):
        assert math.isnan(fn([3.0] * 6, [1, 2, 3, 4, 5, 5]))
    with pytest.warns(DegenerateInputWarning, match="constant ground truth"):
        assert math.isnan(fn([1, 2, 3, 4, 5, 6], [2.0] * 6))
    with pytest.warns(DegenerateInputWarning):
        assert math.isnan(fn([1.0], [2.0]))


def test_too_few_items_for_the_logistic_fit():
    with pytest.warns(DegenerateInputWarning, match=">= 4 items"):
        assert math.isnan(plcc_logistic([1, 2, 3], [1, 3, 2]))


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="differ in length"):
        srcc([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        plcc([1, float("nan"), 3], [1, 2, 3])


def test_resampled_ranks_equal_scipy_rankdata():
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(size=40), 1)  # many ties
    idx = rng.integers(0, 40, size=(7, 40))
    assert np.allclose(metrics._resampled_ranks(values, idx), stats.rankdata(values[idx], axis=1))


def test_vectorised_bootstrap_equals_the_plain_one():
    rng = np.random.default_rng(3)
    gt = np.round(rng.uniform(1, 5, 60), 1)
    pred = gt + rng.normal(0, 1, 60)
    fast = bootstrap_ci(srcc, pred, gt, n_samples=40, seed=5)
    slow = bootstrap_ci(lambda p, g: srcc(p, g), pred, gt, n_samples=40, seed=5)
    assert fast == pytest.approx(slow, abs=1e-12)
    fast = bootstrap_ci(plcc, pred, gt, n_samples=40, seed=5)
    slow = bootstrap_ci(lambda p, g: plcc(p, g), pred, gt, n_samples=40, seed=5)
    assert fast == pytest.approx(slow, abs=1e-12)


def test_bootstrap_interval_is_reproducible_and_covers_the_estimate():
    rng = np.random.default_rng(1)
    gt = rng.uniform(1, 5, 300)
    pred = gt + rng.normal(0, 1, 300)
    low, high = bootstrap_ci(srcc, pred, gt, n_samples=300, seed=0)
    assert low < srcc(pred, gt) < high
    assert bootstrap_ci(srcc, pred, gt, n_samples=300, seed=0) == (low, high)
    low_k, high_k = bootstrap_ci(krcc, pred, gt, n_samples=50, seed=0)  # any metric works
    assert low_k < krcc(pred, gt) < high_k
    assert all(math.isnan(v) for v in bootstrap_ci(srcc, pred, gt, n_samples=0))
    assert all(math.isnan(v) for v in bootstrap_ci(srcc, [2.0] * 5, [1, 2, 3, 4, 5]))


def test_summarize_reports_everything_and_tolerates_constants():
    result = summarize(PRED, GT, bootstrap_samples=50)
    assert set(result) == {"srcc", "plcc", "plcc_logistic", "krcc", "rmse", "srcc_ci", "plcc_ci",
                           "logistic_params"}
    assert result["srcc"] == pytest.approx(REFERENCE["srcc"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        flat = summarize([3.0] * 5, [1, 2, 3, 4, 5], bootstrap_samples=50)
    assert all(math.isnan(flat[m]) for m in ("srcc", "plcc", "plcc_logistic", "krcc", "rmse"))
    assert flat["logistic_params"] is None


def test_rmse_is_after_the_logistic_fit_in_mos_units():
    from scipy import optimize

    from preresq.evaluation.metrics import logistic_4, rmse_logistic

    x = np.linspace(0, 10, 40)
    on_curve = logistic_4(x, 4.8, 1.2, 5.0, 1.5)
    assert rmse_logistic(x, on_curve) == pytest.approx(0.0, abs=1e-6)  # a perfect monotone fit
    rng = np.random.default_rng(3)
    y = on_curve + rng.normal(0, 0.3, x.size)
    got = rmse_logistic(x, y)
    # Independently: scipy's fit from the same start, then the RMSE by hand.
    params, _ = optimize.curve_fit(logistic_4, x, y, p0=[y.max(), y.min(), x.mean(), x.std() / 4],
                                   maxfev=20000)
    assert got == pytest.approx(np.sqrt(np.mean((logistic_4(x, *params) - y) ** 2)), rel=1e-4)
    assert 0.2 < got < 0.4  # about the noise level, in MOS units
    assert rmse_logistic(100 * x + 7, y) == pytest.approx(got, rel=1e-4)  # the prediction scale does not matter
