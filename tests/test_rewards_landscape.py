"""The reward landscape: expected GRPO advantages per (true score, answer), its two figures, the script.

Expected magnitudes (shared/notes/prpo_on_the_demo.md, 8 images x 8 answers, digits 1..5):
q_insight 0.00 / -0.22; released PRPO +0.45 / +0.16; preference branch only +0.09 / -0.26.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from preresq.paths import CONFIG_DIR, REPO_ROOT
from preresq.rewards.landscape import (
    collapsed_policy,
    expected_advantages,
    grpo_advantages,
    landscape_report,
    uniform_policy,
)
from preresq.rewards.registry import PRESETS

SCORES = [1.0, 2.0, 3.0, 4.0, 5.0]  # the demo's levels (max_level 4)


def _report(name: str, batches: int, **overrides) -> dict:
    cfg = OmegaConf.load(CONFIG_DIR / "reward" / f"{name}.yaml")
    params = {**OmegaConf.to_container(cfg.params), **overrides}
    return landscape_report(PRESETS[cfg.preset].score_fn, params, scores=SCORES, batches=batches)


def test_advantages_are_trls_group_scaled_rewards():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]], dtype=torch.float64)
    adv = grpo_advantages(rewards)
    # TRL: (r - group mean) / (unbiased group std + 1e-4); a constant group gets 0.
    expected = (rewards[0] - 0.25) / (rewards[0].std() + 1e-4)
    torch.testing.assert_close(adv[0], expected)
    assert adv[1].tolist() == [0.0] * 4
    torch.testing.assert_close(grpo_advantages(rewards, "none"), rewards - rewards.mean(1, keepdim=True))


def test_policies():
    assert uniform_policy(5).tolist() == [0.2] * 5
    assert collapsed_policy(5, 2, 0.6) == pytest.approx([0.1, 0.1, 0.6, 0.1, 0.1])
    with pytest.raises(ValueError, match="share"):
        collapsed_policy(5, 2, 1.0)


def test_exact_reward_gives_right_answers_positive_advantage():
    """q_insight on integer scores: the right digit is reinforced on every image, wrong ones not."""
    fn = PRESETS["q_insight"].score_fn
    land = expected_advantages(fn, {"threshold": 0.35}, uniform_policy(5), scores=SCORES, batches=200)
    adv = land.advantage
    assert (np.diag(adv) > 0.5).all()
    assert (adv[~np.eye(5, dtype=bool)] < 0).all()
    assert land.count.sum() == 200 * 64


def test_same_seed_same_landscape():
    fn = PRESETS["q_insight"].score_fn
    a = expected_advantages(fn, {}, uniform_policy(5), scores=SCORES, batches=20, seed=3)
    b = expected_advantages(fn, {}, uniform_policy(5), scores=SCORES, batches=20, seed=3)
    np.testing.assert_array_equal(a.total, b.total)


def test_q_insight_has_no_pull_and_breaks_a_collapse():
    report = _report("q_insight", batches=1500)
    assert abs(report["pull_to_middle"]) < 0.06
    assert report["wrong_mode_reinforced"] < -0.15


def test_released_prpo_weights_with_one_digit_answers_pull_to_the_middle_and_keep_a_collapse():
    report = _report("preresq", batches=400, balance_dims=1)
    assert report["pull_to_middle"] > 0.3
    assert report["wrong_mode_reinforced"] > 0.08


def test_the_demos_preference_only_reward_breaks_a_collapse():
    report = _report("preresq_pref", batches=400)
    assert 0.0 < report["pull_to_middle"] < 0.2
    assert report["wrong_mode_reinforced"] < -0.15


def test_script_prints_one_json_line_and_warns(capsys):
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import reward_landscape
    finally:
        sys.path.pop(0)
    result = reward_landscape.run(["reward=preresq", "reward.params.balance_dims=1", "--json",
                                   "--batches", "150"])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0]) == result
    assert result["shape"] == [8, 8] and result["reward"]["preset"] == "preresq"
    assert result["reward"]["params"]["w_balance"] == 0.5  # the released weights
    assert result["pull_to_middle"] > 0 and result["wrong_mode_reinforced"] > 0
    assert "warning: wrong_mode_reinforced" in err

    # The table form, for a reward that does not keep a collapse: no warning.
    reward_landscape.run(["reward=q_insight", "--batches", "50"])
    out, err = capsys.readouterr()
    assert "| true score | answer 1 |" in out and "pull_to_middle:" in out
    assert "wrong_mode_reinforced:" in out and "warning" not in err

    with pytest.raises(SystemExit, match="balance_dims=1"):
        reward_landscape.run(["reward=preresq", "--json"])
