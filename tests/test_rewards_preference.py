"""Hand-computed cases for the preference branch: pairwise score-and-rank, triplet ranking."""

from __future__ import annotations

import math

import pytest
import torch

from preresq.rewards import preresq_reward, visualquality_r1_reward


def _batch(preds, mos, valid=None):
    """preds[b][k]: each response's prediction (all five sub-scores equal to it)."""
    s = torch.tensor([[[v] * 5 for v in row] for row in preds], dtype=torch.float32)
    v = None if valid is None else torch.tensor(valid)
    return preresq_reward(s, torch.tensor(mos, dtype=torch.float32), v)


def test_pairwise_agreeing_pair():
    out = _batch([[3.5], [2.5]], [4.0, 2.0])
    # c = 1, s = 2 / (2 + 0.5 + 0.5)
    assert out["pairwise"][:, 0].tolist() == pytest.approx([math.sqrt(2 / 3)] * 2, rel=1e-6)


def test_pairwise_disagreeing_pair_uses_one_minus_s():
    out = _batch([[2.5], [3.5]], [4.0, 2.0])
    # c = 0, s = 2 / (2 + 1.5 + 1.5): a wrong order still earns sqrt(1 - s)
    assert out["pairwise"][:, 0].tolist() == pytest.approx([math.sqrt(0.6)] * 2, rel=1e-6)


def test_pairwise_sorted_rank_matching():
    out = _batch([[4.0, 3.0], [1.5, 2.5]], [4.0, 2.0])
    low = math.sqrt(2 / 3.5)  # 3.0 vs 1.5, the smallest of each image
    high = math.sqrt(2 / 2.5)  # 4.0 vs 2.5, the largest of each image
    torch.testing.assert_close(out["pairwise"], torch.tensor([[high, low], [low, high]]))


def test_pairwise_sorted_ties_keep_response_order():
    # image 0 has two equal predictions: the first (k=0) takes sorted position 0
    out = _batch([[3.0, 3.0], [1.0, 2.0]], [4.0, 2.0])
    pos0 = math.sqrt(2 / (2 + 1 + 1))  # 3.0 vs 1.0
    pos1 = math.sqrt(2 / (2 + 1 + 0))  # 3.0 vs 2.0
    assert out["pairwise"][0].tolist() == pytest.approx([pos0, pos1], rel=1e-6)


def test_pairwise_equal_mos_quirks():
    # equal MOS: s = 0, so a strict order (c = 0) scores 1 and an equal pair (c = 1) scores 0
    assert _batch([[3.5], [3.2]], [3.0, 3.0])["pairwise"][:, 0].tolist() == [1.0, 1.0]
    assert _batch([[3.5], [3.5]], [3.0, 3.0])["pairwise"][:, 0].tolist() == [0.0, 0.0]
    # both exact: 0 / 0 is read as s = 1, the pair scores 1
    assert _batch([[3.0], [3.0]], [3.0, 3.0])["pairwise"][:, 0].tolist() == [1.0, 1.0]


def test_pairwise_mean_over_partners():
    out = _batch([[3.5], [2.5], [1.0]], [4.0, 2.0, 1.0])
    to_1 = math.sqrt(2 / 3)  # image 0 vs 1: agree, s = 2 / 3
    to_2 = math.sqrt(3 / (3 + 0.5 + 0))  # image 0 vs 2: agree
    assert out["pairwise"][0, 0].item() == pytest.approx((to_1 + to_2) / 2, rel=1e-6)


def test_triplet_rank_hand_values():
    mos = [3.0, 2.0, 1.0]
    assert _batch([[3.0], [2.0], [1.0]], mos)["triplet_rank"][:, 0].tolist() == pytest.approx(
        [1.0] * 3
    )
    assert _batch([[1.0], [2.0], [3.0]], mos)["triplet_rank"][:, 0].tolist() == pytest.approx(
        [0.0] * 3
    )
    assert _batch([[3.0], [1.0], [2.0]], mos)["triplet_rank"][:, 0].tolist() == pytest.approx(
        [2 / 3] * 3
    )


def test_triplet_rank_same_response_index_only():
    # response 1 of every image is perfectly ordered, response 0 reversed
    out = _batch([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]], [3.0, 2.0, 1.0])
    assert out["triplet_rank"][:, 0].tolist() == pytest.approx([0.0] * 3)
    assert out["triplet_rank"][:, 1].tolist() == pytest.approx([1.0] * 3)


def test_triplet_rank_strict_comparisons_on_equal_mos():
    # images 1 and 2 share a MOS: "p1 > p2" must be False to agree with "g1 > g2"
    assert _batch([[1.0], [2.0], [4.0]], [2.0, 3.0, 3.0])["triplet_rank"][
        0, 0
    ].item() == pytest.approx(1.0)
    assert _batch([[1.0], [4.0], [2.0]], [2.0, 3.0, 3.0])["triplet_rank"][
        0, 0
    ].item() == pytest.approx(2 / 3)


def test_triplet_rank_mean_over_pairs():
    # 4 images: anchor 0 meets pairs (1,2), (1,3), (2,3)
    out = _batch([[4.0], [1.0], [2.0], [3.0]], [4.0, 3.0, 2.0, 1.0])
    # anchor 0 is right against everyone; among 1,2,3 every comparison is reversed
    assert out["triplet_rank"][0, 0].item() == pytest.approx(2 / 3)


def test_preference_terms_need_partners():
    one = _batch([[3.0, 4.0]], [3.5])
    assert one["pairwise"].abs().max() == 0 and one["triplet_rank"].abs().max() == 0
    two = _batch([[3.0], [4.0]], [3.5, 4.5])
    assert two["triplet_rank"].abs().max() == 0  # no pair of other images


def test_visualquality_r1_equal_images_give_half_probability():
    s = torch.tensor([[[3.0], [3.0]], [[3.0], [3.0]]])
    out = visualquality_r1_reward(s, torch.tensor([4.0, 2.0]))
    # q = Phi(0) = 0.5, y = 1 for image 0: sqrt(0.5 + eps) + sqrt(eps)
    eps = 1e-6
    assert out["total"][0].tolist() == pytest.approx(
        [math.sqrt(0.5 + eps) + math.sqrt(eps)] * 2, rel=1e-6
    )


def test_visualquality_r1_rewards_the_right_order():
    s = torch.tensor([[[4.0], [4.2]], [[2.0], [2.1]]])
    good = visualquality_r1_reward(s, torch.tensor([4.0, 2.0]))["total"]
    bad = visualquality_r1_reward(s, torch.tensor([2.0, 4.0]))["total"]
    assert (good > 0.99).all() and (bad < 0.01).all()
