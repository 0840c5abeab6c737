"""Reward configs and the registry: every configs/reward/*.yaml builds, names and weights are right."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from preresq.paths import CONFIG_DIR
from preresq.rewards import build_reward_funcs, format_reward, preresq_reward, q_insight_reward
from preresq.rewards.registry import PRESETS, preset_params

REWARD_CONFIGS = sorted((CONFIG_DIR / "reward").glob("*.yaml"))
NUM_SCORES = {"preresq": 5, "preresq_vqa": 2, "visualquality_r1": 5, "q_insight": 5}


def test_every_preset_has_a_config():
    presets = {OmegaConf.load(p).preset for p in REWARD_CONFIGS}
    assert presets == set(PRESETS)
    # A config named after a preset sets that preset; variants (preresq_pref) name theirs.
    for path in REWARD_CONFIGS:
        if path.stem in PRESETS:
            assert OmegaConf.load(path).preset == path.stem


def test_preference_only_variant_is_the_released_preset_with_two_weights_off():
    """reward=preresq_pref: the preresq preset, released weights except balance and gt_rank."""
    released = OmegaConf.load(CONFIG_DIR / "reward" / "preresq.yaml")
    pref = OmegaConf.load(CONFIG_DIR / "reward" / "preresq_pref.yaml")
    assert pref.preset == released.preset == "preresq"
    changed = {k for k in released.params if pref.params[k] != released.params[k]}
    assert changed == {"w_balance", "w_gt_rank", "balance_dims"}
    assert (pref.params.w_balance, pref.params.w_gt_rank) == (0.0, 0.0)
    assert set(pref.params) == set(released.params)
    # It builds for the demo's one-digit answers (released balance_dims=4 would not).
    funcs, _ = build_reward_funcs(pref, 1, "bare")
    out = funcs[0](completions=["1", "2", "5", "x"], mos=[1.0, 1.0, 5.0, 5.0],
                   item_id=["a", "a", "b", "b"])
    assert out[3] == pytest.approx(-0.25 / 3)  # the invalid answer gets the floor
    assert out[2] > out[3]  # a valid answer in the right order earns more than the floor


@pytest.mark.parametrize("path", REWARD_CONFIGS, ids=lambda p: p.stem)
def test_config_builds_two_named_rewards(path):
    cfg = OmegaConf.load(path)
    funcs, weights = build_reward_funcs(cfg, NUM_SCORES[cfg.preset], "tagged")
    assert [f.__name__ for f in funcs] == [cfg.preset, "format"]
    assert weights == [1.0, cfg.format_weight]
    assert set(cfg.params) <= preset_params(cfg.preset)


def test_released_defaults_match_function_defaults():
    """The yaml files carry the released values, the same as the Python defaults."""
    cfg = OmegaConf.load(CONFIG_DIR / "reward" / "preresq.yaml")
    gen = torch.Generator().manual_seed(0)
    s = torch.rand(4, 6, 5, generator=gen) * 4 + 1
    mos = torch.rand(4, generator=gen) * 4 + 1
    torch.testing.assert_close(
        preresq_reward(s, mos, **cfg.params)["total"], preresq_reward(s, mos)["total"]
    )


def test_lambda_std_override_switches_the_spread_penalty_off():
    cfg = OmegaConf.merge(
        OmegaConf.load(CONFIG_DIR / "reward" / "preresq.yaml"),
        OmegaConf.from_dotlist(["params.lambda_std=0"]),
    )
    funcs, _ = build_reward_funcs(cfg, 5, "tagged")
    flat = "<think>x</think><answer>\n4.00\n4.00\n4.00\n4.00\n4.00\n</answer>"
    funcs[0](prompts=["p"] * 3, completions=[flat] * 3, item_id=["a"] * 3, mos=[4.0] * 3)
    assert funcs[0].last_metrics["rewards/preresq/spread_penalty"] == 0.0


def test_unknown_preset_or_param_is_an_error():
    with pytest.raises(ValueError, match="nope"):
        build_reward_funcs({"preset": "nope"}, 5, "tagged")
    with pytest.raises(ValueError, match="lambda_sdt"):
        build_reward_funcs({"preset": "preresq", "params": {"lambda_sdt": 0}}, 5, "tagged")
    with pytest.raises(ValueError, match="weight"):
        build_reward_funcs({"preset": "preresq", "weight": 2}, 5, "tagged")


def test_balance_dims_must_fit_the_answer():
    with pytest.raises(ValueError, match="balance_dims=4 exceeds num_scores=2"):
        build_reward_funcs({"preset": "preresq"}, 2, "tagged")
    build_reward_funcs({"preset": "preresq_vqa"}, 2, "tagged")


def test_format_rules():
    strict = "<think>ok</think>\n<answer>\n4.10\n3.90\n</answer>"
    loose = "<think>ok</think><answer>I would say 4.10 and 3.90</answer>"
    assert format_reward(strict, 2) == 1.0 and format_reward(loose, 2) == 0.0
    assert format_reward(loose, 2, rule="tags") == 1.0
    assert format_reward("<answer>4</answer>", 1, rule="tags") == 0.0
    with pytest.raises(ValueError, match="fuzzy"):
        format_reward(strict, 2, rule="fuzzy")


def test_q_insight_threshold_is_strict():
    s = torch.tensor([[[3.34], [3.35], [3.36], [2.66]]])
    out = q_insight_reward(s, torch.tensor([3.0]), torch.tensor([[True, True, True, False]]))
    assert out["total"][0].tolist() == [1.0, 0.0, 0.0, 0.0]
