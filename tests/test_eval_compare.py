"""compare.py: paired SRCC/PLCC differences, bootstrap intervals, Williams' test."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from eval_fakes import FakePredictor, eval_cfg
from scipy import stats

from preresq.cli import compare_main
from preresq.evaluation import evaluate
from preresq.evaluation.compare import compare_rows, williams_test
from preresq.evaluation.metrics import DegenerateInputWarning

KEYS = {"n_common", "delta_srcc", "delta_srcc_ci", "p_srcc", "delta_plcc", "delta_plcc_ci", "p_plcc"}


def _rows(pred, gt, missing=()):
    return [{"id": f"i{k}", "gt": float(g), "pred": None if k in missing else float(p)}
            for k, (p, g) in enumerate(zip(pred, gt, strict=True))]


def test_williams_test_by_hand():
    # r_ay=.5, r_by=.3, r_ab=.4, n=100: |R| = 1-.25-.09-.16+2(.5)(.3)(.4) = .62;
    # den = 2(99/97)(.62) + (.8^2/4)(.6^3) = 1.300127; t = .2 sqrt(99(1.4)/den) = 2.06499.
    t, p = williams_test(0.5, 0.3, 0.4, 100)
    assert t == pytest.approx(2.06499, abs=1e-5)
    assert p == pytest.approx(2 * stats.t.sf(2.0649936, 97), rel=1e-6)
    assert p == pytest.approx(0.04159, abs=1e-5)
    assert williams_test(0.6, 0.6, 0.9, 50) == (0.0, 1.0)
    assert math.isnan(williams_test(0.5, 0.3, 0.4, 3)[1])


def test_deltas_are_on_common_valid_items_and_match_scipy():
    rng = np.random.default_rng(0)
    gt = rng.uniform(1, 5, 60)
    a = gt + rng.normal(0, 0.5, 60)
    b = gt + rng.normal(0, 1.0, 60)
    rows_a, rows_b = _rows(a, gt, missing={3}), _rows(b, gt, missing={7, 8})
    rows_b[10]["error"] = "OSError: unreadable"
    row, _ = compare_rows(rows_a, rows_b, "t", n_samples=500)
    keep = [k for k in range(60) if k not in {3, 7, 8, 10}]
    assert row["n_common"] == len(keep) == 56 and row["n_a"] == 59 and row["n_b"] == 57
    sa, sb = (stats.spearmanr(x[keep], gt[keep]).statistic for x in (a, b))
    pa, pb = (stats.pearsonr(x[keep], gt[keep]).statistic for x in (a, b))
    assert row["delta_srcc"] == pytest.approx(sa - sb, abs=1e-12)
    assert row["delta_plcc"] == pytest.approx(pa - pb, abs=1e-12)
    r_ab = stats.pearsonr(a[keep], b[keep]).statistic
    assert row["p_plcc"] == pytest.approx(williams_test(pa, pb, r_ab, 56)[1], rel=1e-9)
    assert row["delta_srcc_ci"][0] < row["delta_srcc"] < row["delta_srcc_ci"][1]
    assert row["delta_srcc_ci"][0] > 0 and row["p_srcc"] < 0.05 and row["p_plcc"] < 0.05


def test_identical_runs_differ_by_nothing():
    gt = np.linspace(1, 5, 30)
    pred = gt[::-1] * 0.2 + np.sin(gt)
    row, _ = compare_rows(_rows(pred, gt), _rows(pred, gt), n_samples=200)
    assert row["delta_srcc"] == 0 and row["delta_plcc"] == 0
    assert row["delta_srcc_ci"] == [0.0, 0.0] and row["p_srcc"] == 1.0 and row["p_plcc"] == 1.0


def test_different_labels_are_refused():
    gt = np.linspace(1, 5, 10)
    rows_b = _rows(gt, gt)
    rows_b[4]["gt"] = 9.0
    with pytest.raises(ValueError, match="'i4'.*label"):
        compare_rows(_rows(gt, gt), rows_b, "bench")


def test_command_line_on_two_evaluation_folders(tmp_path, capsys):
    class Other(FakePredictor):
        def generate(self, requests):
            return [["3" if k % 3 else "4" for _ in range(self.num_samples)]
                    for k, _ in enumerate(super().generate(requests))]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        evaluate(eval_cfg(tmp_path / "a"), predictor=FakePredictor())
        evaluate(eval_cfg(tmp_path / "b"), predictor=Other())
    out = tmp_path / "cmp.json"
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "b"), "--json", str(out),
                         "--bootstrap-samples", "200"]) == 0
    table = capsys.readouterr().out
    assert "| iqa_demo |" in table and "**mean** (1)" in table
    result = json.loads(out.read_text())
    assert KEYS <= set(result["benchmarks"]["iqa_demo"]) and KEYS <= set(result["mean"])
    assert result["mean"]["delta_srcc"] == pytest.approx(result["benchmarks"]["iqa_demo"]["delta_srcc"])
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "nothing")]) == 2
    assert "not an evaluation folder" in capsys.readouterr().err
