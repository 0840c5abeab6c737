"""Hand-computed cases for the response branch: spread penalty, triplet balance, ground-truth rank."""

from __future__ import annotations

import math

import pytest
import torch

from preresq.rewards import preresq_reward


def _one_image(rows, mos=3.0, **kw):
    """preresq_reward on a single image whose K responses are ``rows`` (float32, like training)."""
    return preresq_reward(torch.tensor([rows], dtype=torch.float32), torch.tensor([mos]), **kw)


def test_spread_penalty_hand_values():
    out = _one_image([[4.0] * 5, [3, 3, 3, 5, 5], [4.0, 4.2, 4.0, 4.2, 4.1]])
    expected = [0.5 * 0.5, 0.0, 0.5 * (0.5 - math.sqrt(0.008))]
    assert out["spread_penalty"][0].tolist() == pytest.approx(expected, abs=1e-6)


def test_spread_penalty_weight_zero_switches_it_off():
    out = _one_image([[4.0] * 5] * 3, lambda_std=0.0)
    assert out["spread_penalty"].abs().max() == 0


def _balance_rows(columns):
    """Responses from per-dimension columns: columns[d][k] is response k's score on dimension d."""
    k = len(columns[0])
    return [[columns[d][i] for d in range(len(columns))] + [3.0] for i in range(k)]


def test_triplet_balance_one_triple():
    rows = _balance_rows(
        [
            [1.0, 2.0, 3.0],  # median response 1 only
            [2.0, 2.04, 3.0],  # response 0 within 0.05 of the median
            [2.0, 2.05, 3.0],  # exactly 0.05 away: outside
            [3.0, 3.0, 3.0],  # all tied: everyone gains
        ]
    )
    out = _one_image(rows)
    # gains 2, 4, 1 over 4 dimensions and one triple, times lambda_triple 0.5
    assert out["triplet_balance"][0].tolist() == pytest.approx([0.25, 0.5, 0.125], abs=1e-7)


@pytest.mark.parametrize("close, expected", [(4.30, [0.5, 0.0, 0.0]), (4.40, [0.0, 0.5, 0.0])])
def test_balance_tolerance_edge_in_float32(close, expected):
    """|4.35 - 4.30| lands on either side of 0.05 in binary; it must count as outside."""
    rows = _balance_rows([[close, 4.35, 1.0]] * 4)
    out = _one_image(rows)
    # the median response gains on all 4 dimensions; its neighbour, exactly 0.05 away, never
    assert out["triplet_balance"][0].tolist() == pytest.approx(expected, abs=1e-7)


def test_balance_stable_median_on_ties():
    # with no tolerance only the median gains: ties are ordered by response index
    rows = _balance_rows([[3.0, 3.0, 3.0], [2.0, 1.0, 2.0], [2.0, 2.0, 1.0], [5.0, 1.0, 5.0]])
    out = _one_image(rows, balance_tol=0.0)
    # stable sorts: dim0 r0,r1,r2 -> r1; dim1 r1,r0,r2 -> r0; dim2 r2,r0,r1 -> r0; dim3 r1,r0,r2 -> r0
    assert out["triplet_balance"][0].tolist() == pytest.approx([0.375, 0.125, 0.0], abs=1e-7)


def test_balance_counts_triples_per_response():
    # K = 4: every response sits in 3 triples; identical responses gain in each
    out = _one_image([[3.0] * 5] * 4)
    assert out["triplet_balance"][0].tolist() == pytest.approx([0.5] * 4)


def test_balance_dims_two_for_vqa():
    rows = [[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]]
    out = _one_image(rows, balance_dims=2)
    # dim0: r1 only; dim1: all tied -> all gain; divided by 2 dimensions, times 0.5
    assert out["triplet_balance"][0].tolist() == pytest.approx([0.25, 0.5, 0.25])


def test_balance_dims_above_d_is_an_error():
    with pytest.raises(ValueError, match="balance_dims=4"):
        _one_image([[1.0, 2.0]] * 3)


def test_balance_needs_three_responses():
    out = _one_image([[3.0] * 5] * 2)
    assert out["triplet_balance"].abs().max() == 0


def _preds(values):
    return [[v] * 5 for v in values]


def test_gt_rank_hand_values():
    out = _one_image(_preds([2.0, 3.0, 4.0]), mos=3.5)
    # sorted list [2, 3, 3.5, 4]: rank(g) = 2
    expected = [math.exp(-2 / 4), math.exp(-1 / 4), math.exp(-1 / 4)]
    assert out["gt_rank"][0].tolist() == pytest.approx(expected, rel=1e-6)


def test_gt_rank_tolerance_is_strict():
    out = _one_image(_preds([3.49, 3.52, 3.51]), mos=3.5)
    # |3.52 - 3.5| is exactly the tolerance: outside; list [3.49, 3.5, 3.51, 3.52]
    assert out["gt_rank"][0].tolist() == pytest.approx([1.0, math.exp(-2 / 4), 1.0], rel=1e-6)


def test_gt_rank_ties_share_the_lowest_position():
    out = _one_image(_preds([3.0, 3.0, 4.0]), mos=3.5)
    expected = [math.exp(-2 / 4), math.exp(-2 / 4), math.exp(-1 / 4)]
    assert out["gt_rank"][0].tolist() == pytest.approx(expected, rel=1e-6)


def test_gt_rank_single_response():
    out = _one_image(_preds([2.0]), mos=4.0)
    assert out["gt_rank"][0].tolist() == pytest.approx([math.exp(-1 / 2)], rel=1e-6)
