"""Rewards for GRPO: pure tensor maths (response and preference branches), presets, TRL adapter.

``preresq_reward(subscores[B, K, D], mos[B], valid[B, K] | None, **weights)`` is the
PreResQ-R1 reward; ``build_reward_funcs(reward_cfg, num_scores, answer_format)`` turns a
``configs/reward/*.yaml`` node into TRL reward callables. See ``presets`` for the rule
applied to invalid responses.
"""

from __future__ import annotations

from preresq.rewards.presets import (
    PRERESQ_COMPONENTS,
    format_reward,
    preresq_reward,
    preresq_vqa_reward,
    q_insight_reward,
    visualquality_r1_reward,
)
from preresq.rewards.registry import PRESETS, build_reward_funcs
from preresq.rewards.trl import FormatReward, GroupedReward, group_batch

__all__ = [
    "PRERESQ_COMPONENTS",
    "PRESETS",
    "FormatReward",
    "GroupedReward",
    "build_reward_funcs",
    "format_reward",
    "group_batch",
    "preresq_reward",
    "preresq_vqa_reward",
    "q_insight_reward",
    "visualquality_r1_reward",
]
