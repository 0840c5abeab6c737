"""The combined PreResQ reward: exact agreement with the loop reference, invalid rule, edge cases, properties."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from preresq.rewards import PRERESQ_COMPONENTS, preresq_reward, preresq_vqa_reward
from preresq.rewards.response import response_means

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the loop reference beside this file
from reference_reward import reference_reward  # noqa: E402

KEYS = (*PRERESQ_COMPONENTS, "total")
FLOOR = -0.5 * 0.5 / 3  # lowest total a valid response can reach with the released weights


def _random_batch(gen, b, k, d=5, grid=True, p_invalid=0.0):
    if grid:  # two-decimal ratings from a coarse grid: many ties and 0.05 / 0.02 edges
        s = torch.randint(0, 21, (b, k, d), generator=gen).float() * 0.05 + 3.0
        s = s + torch.randint(0, 2, (b, k, d), generator=gen).float() * 0.02
        s = (s * 100).round() / 100
    else:
        s = torch.rand((b, k, d), generator=gen) * 4 + 1
    mos = torch.randint(100, 501, (b,), generator=gen).float() / 100
    valid = torch.rand((b, k), generator=gen) >= p_invalid
    return s.float(), mos.float(), valid


def _assert_matches_reference(s, mos, valid, **kw):
    out = preresq_reward(s, mos, valid, **kw)
    ref = reference_reward(
        s.double().tolist(), mos.double().tolist(), None if valid is None else valid.tolist(), **kw
    )
    for key in KEYS:
        assert out[key].shape == s.shape[:2]
        torch.testing.assert_close(
            out[key], torch.tensor(ref[key], dtype=torch.float32), atol=2e-7, rtol=1e-6, msg=key
        )


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("b, k", [(5, 6), (4, 3), (3, 5)])
def test_matches_loop_reference_on_ties(seed, b, k):
    gen = torch.Generator().manual_seed(seed)
    s, mos, _ = _random_batch(gen, b, k)
    _assert_matches_reference(s, mos, None)


@pytest.mark.parametrize("seed", range(4))
def test_matches_loop_reference_continuous(seed):
    gen = torch.Generator().manual_seed(100 + seed)
    s, mos, _ = _random_batch(gen, 6, 5, grid=False)
    _assert_matches_reference(s, mos, None)


@pytest.mark.parametrize("seed", range(6))
def test_matches_loop_reference_with_invalid(seed):
    gen = torch.Generator().manual_seed(200 + seed)
    s, mos, valid = _random_batch(gen, 5, 5, p_invalid=0.3)
    _assert_matches_reference(s, mos, valid)


def test_matches_loop_reference_vqa_settings():
    gen = torch.Generator().manual_seed(7)
    s, mos, valid = _random_batch(gen, 5, 5, d=2, p_invalid=0.2)
    kw = {"balance_dims": 2, "w_gt_rank": 0.0, "divisor": 1.0}
    _assert_matches_reference(s, mos, valid, **kw)
    torch.testing.assert_close(
        preresq_vqa_reward(s, mos, valid)["total"], preresq_reward(s, mos, valid, **kw)["total"]
    )


def test_total_is_the_released_combination():
    gen = torch.Generator().manual_seed(3)
    s, mos, _ = _random_batch(gen, 4, 4)
    out = preresq_reward(s, mos)
    combo = (
        0.375 * out["pairwise"]
        - out["spread_penalty"]
        + 0.5 * out["triplet_balance"]
        + 0.125 * out["triplet_rank"]
        + out["gt_rank"]
    ) / 3
    torch.testing.assert_close(out["total"], combo)


def test_vqa_total_has_no_gt_rank_and_no_division():
    gen = torch.Generator().manual_seed(4)
    s, mos, _ = _random_batch(gen, 4, 4, d=2)
    out = preresq_vqa_reward(s, mos)
    combo = (
        0.375 * out["pairwise"]
        - out["spread_penalty"]
        + 0.5 * out["triplet_balance"]
        + 0.125 * out["triplet_rank"]
    )
    torch.testing.assert_close(out["total"], combo)


def test_invalid_responses_get_the_floor_and_zero_components():
    gen = torch.Generator().manual_seed(5)
    s, mos, _ = _random_batch(gen, 3, 4)
    valid = torch.ones(3, 4, dtype=torch.bool)
    valid[1, 2] = False
    out = preresq_reward(s, mos, valid)
    assert out["total"][1, 2].item() == pytest.approx(FLOOR)
    for key in PRERESQ_COMPONENTS:
        assert out[key][1, 2].item() == 0.0
    assert (out["total"][valid] >= FLOOR - 1e-7).all()


def test_invalid_responses_take_no_part_in_comparisons():
    gen = torch.Generator().manual_seed(6)
    s, mos, _ = _random_batch(gen, 4, 5)
    valid = torch.ones(4, 5, dtype=torch.bool)
    valid[0, 1] = valid[2, 4] = False
    base = preresq_reward(s, mos, valid)
    garbage = s.clone()
    garbage[0, 1] = torch.tensor([1.0, 5.0, float("nan"), 2.0, 2.0])
    garbage[2, 4] = 4.37
    other = preresq_reward(garbage, mos, valid)
    for key in KEYS:
        torch.testing.assert_close(base[key], other[key])


def test_non_finite_scores_count_as_invalid():
    s = torch.full((2, 3, 5), 3.0)
    s[0, 0, 2] = float("inf")
    out = preresq_reward(s, torch.tensor([3.0, 4.0]))
    assert out["total"][0, 0].item() == pytest.approx(FLOOR)
    assert torch.isfinite(out["total"]).all()


def test_all_invalid():
    s = torch.rand(3, 4, 5) * 4 + 1
    out = preresq_reward(s, torch.tensor([1.0, 2.0, 3.0]), torch.zeros(3, 4, dtype=torch.bool))
    assert torch.allclose(out["total"], torch.full((3, 4), FLOOR))
    for key in PRERESQ_COMPONENTS:
        assert out[key].abs().max() == 0


def test_all_equal_mos():
    gen = torch.Generator().manual_seed(8)
    s, _, _ = _random_batch(gen, 4, 4)
    mos = torch.full((4,), 3.3)
    out = preresq_reward(s, mos)
    assert all(torch.isfinite(out[key]).all() for key in KEYS)
    _assert_matches_reference(s, mos, None)


def test_one_image():
    s = torch.tensor([[[3.0, 3.5, 4.0, 3.5, 3.0], [4.0] * 5, [2.0, 3.0, 4.0, 5.0, 1.0]]])
    out = preresq_reward(s, torch.tensor([3.5]))
    assert out["pairwise"].abs().max() == 0 and out["triplet_rank"].abs().max() == 0
    _assert_matches_reference(s, torch.tensor([3.5]), None)


@pytest.mark.parametrize("k", [1, 2])
def test_fewer_than_three_responses(k):
    gen = torch.Generator().manual_seed(k)
    s, mos, _ = _random_batch(gen, 3, k)
    out = preresq_reward(s, mos)
    assert out["total"].shape == (3, k)
    assert out["triplet_balance"].abs().max() == 0
    _assert_matches_reference(s, mos, None)


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="mos"):
        preresq_reward(torch.ones(2, 3, 5), torch.ones(3))
    with pytest.raises(ValueError, match="valid"):
        preresq_reward(torch.ones(2, 3, 5), torch.ones(2), torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="subscores"):
        preresq_reward(torch.ones(2, 3), torch.ones(2))


def test_float64_input_keeps_dtype():
    out = preresq_reward(torch.full((2, 3, 5), 3.0, dtype=torch.float64), torch.tensor([3.0, 4.0]))
    assert out["total"].dtype == torch.float64


# ----------------------------------------------------------------------------- properties

_two_decimals = st.integers(100, 500).map(lambda x: x / 100)


@st.composite
def batches(draw, min_b=1, max_b=5, max_k=5, distinct_mos=False, ties=True):
    """(subscores [B, K, 5] float32, mos [B], valid [B, K]); ``ties`` mixes in a repeated rating."""
    b = draw(st.integers(min_b, max_b))
    k = draw(st.integers(1, max_k))
    rating = _two_decimals | st.floats(1.0, 5.0, width=32)
    if ties:
        rating = rating | st.just(draw(_two_decimals))
    s = draw(
        st.lists(
            st.lists(st.lists(rating, min_size=5, max_size=5), min_size=k, max_size=k),
            min_size=b,
            max_size=b,
        )
    )
    mos = draw(st.lists(_two_decimals, min_size=b, max_size=b, unique=distinct_mos))
    valid = draw(st.lists(st.lists(st.booleans(), min_size=k, max_size=k), min_size=b, max_size=b))
    return (
        torch.tensor(s, dtype=torch.float32),
        torch.tensor(mos, dtype=torch.float32),
        torch.tensor(valid),
    )


def _predictions_tie(s, valid):
    """Whether two images' valid responses at one index predict exactly the same score."""
    p = response_means(s.double())  # the predictions exactly as preresq_reward computes them
    for k in range(s.shape[1]):
        values = p[valid[:, k], k].tolist()
        if len(set(values)) < len(values):
            return True
    return False


@settings(max_examples=40, deadline=None)
@given(batches())
def test_property_shape_no_nan_and_floor(batch):
    s, mos, valid = batch
    out = preresq_reward(s, mos, valid)
    for key in KEYS:
        assert out[key].shape == s.shape[:2]
        assert torch.isfinite(out[key]).all()
    assert (out["total"] >= FLOOR - 1e-7).all()
    assert (out["total"][~valid] == torch.tensor(FLOOR, dtype=torch.float32)).all()


@settings(max_examples=40, deadline=None)
@given(batches(distinct_mos=True, ties=False), st.randoms(use_true_random=False))
def test_property_permuting_images_permutes_rewards(batch, rnd):
    """Holds whenever no two images tie (on MOS, or on predictions at one response index):
    with a tie, triplet_rank's strict "p_a > p_c" depends on which of a, c comes first,
    as in the released definition (see test_triplet_rank_strict_comparisons_on_equal_mos)."""
    s, mos, valid = batch
    assume(not _predictions_tie(s, valid))
    perm = list(range(len(mos)))
    rnd.shuffle(perm)
    perm = torch.tensor(perm)
    base = preresq_reward(s, mos, valid)
    moved = preresq_reward(s[perm], mos[perm], valid[perm])
    for key in KEYS:
        torch.testing.assert_close(moved[key], base[key][perm], atol=1e-6, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(batches(min_b=2, distinct_mos=True), st.randoms(use_true_random=False))
def test_property_perfect_predictions_beat_shuffled(batch, rnd):
    _, mos, _ = batch
    b, k = len(mos), 3
    perm = list(range(b))
    rnd.shuffle(perm)
    perfect = mos[:, None, None].expand(b, k, 5).clone()
    shuffled = mos[perm][:, None, None].expand(b, k, 5).clone()
    best = preresq_reward(perfect, mos)
    other = preresq_reward(shuffled, mos)
    for key in ("pairwise", "triplet_rank"):
        assert (best[key] >= other[key] - 1e-6).all()
    if perm != sorted(perm):
        assert best["pairwise"].mean() > other["pairwise"].mean()
        if b >= 3:
            assert best["triplet_rank"].mean() > other["triplet_rank"].mean()


@settings(max_examples=25, deadline=None)
@given(batches(max_b=4, max_k=4))
def test_property_matches_reference(batch):
    s, mos, valid = batch
    _assert_matches_reference(s, mos, valid)


def test_floor_matches_definition_for_custom_weights():
    s = torch.full((2, 3, 5), 3.0)
    out = preresq_reward(
        s,
        torch.tensor([3.0, 4.0]),
        torch.zeros(2, 3, dtype=torch.bool),
        lambda_std=0.0,
        w_pairwise=-1.0,
    )
    assert out["total"][0, 0].item() == pytest.approx(-1.0 / 3)
    assert math.isfinite(out["total"].sum().item())
