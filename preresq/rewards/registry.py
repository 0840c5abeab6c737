"""Reward presets by name, and the builder that turns a ``reward`` config into TRL reward callables.

A reward config (``configs/reward/<name>.yaml``) reads::

    preset: preresq            # a key of PRESETS
    params: {lambda_std: 0.5, ...}   # keyword arguments of the preset's score function
    format_weight: 1.0

``build_reward_funcs`` returns two callables, the preset's score reward (named after the
preset) and the format reward (named ``format``), with weights ``[1.0, format_weight]``;
TRL sums them with those weights and logs each under its ``__name__``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from preresq.parsing import ANSWER_FORMATS
from preresq.rewards.presets import (
    preresq_reward,
    preresq_vqa_reward,
    q_insight_reward,
    visualquality_r1_reward,
)
from preresq.rewards.trl import FormatReward, GroupedReward


@dataclass(frozen=True)
class Preset:
    """A score reward and the format rule that goes with it."""

    score_fn: Callable[..., dict]
    format_rule: str  # "strict" or "tags", see presets.format_reward
    signature_of: Callable[..., dict]  # the function whose keyword arguments ``params`` may set


PRESETS: dict[str, Preset] = {
    "preresq": Preset(preresq_reward, "strict", preresq_reward),
    "preresq_vqa": Preset(preresq_vqa_reward, "strict", preresq_reward),
    "visualquality_r1": Preset(visualquality_r1_reward, "tags", visualquality_r1_reward),
    "q_insight": Preset(q_insight_reward, "tags", q_insight_reward),
}

_CONFIG_KEYS = {"preset", "params", "format_weight"}


def _as_dict(cfg: Any) -> dict:
    """A plain dict from a mapping or an OmegaConf node (resolved)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    if isinstance(cfg, Mapping):
        return dict(cfg)
    raise TypeError(f"reward config must be a mapping; got {type(cfg).__name__}")


def preset_params(name: str) -> set[str]:
    """The parameter names a preset accepts in ``params``."""
    sig = inspect.signature(PRESETS[name].signature_of)
    return {p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_reward_funcs(
    reward_cfg: Any, num_scores: int, answer_format: str
) -> tuple[list[Callable[..., list[float]]], list[float]]:
    """Reward callables and weights for ``GRPOTrainer(reward_funcs=..., args.reward_weights=...)``.

    Args:
        reward_cfg: the ``reward`` config node (``preset``, ``params``, ``format_weight``).
        num_scores: D, sub-scores per answer (``cfg.prompt[modality].num_scores``).
        answer_format: ``"tagged"`` or ``"bare"`` (``cfg.prompt[modality].answer_format``).

    Returns:
        ``([score_reward, format_reward], [1.0, format_weight])``; the score reward is a
        ``GroupedReward`` named after the preset, whose ``last_metrics`` hold the batch
        means of its components and the invalid-answer rate.

    Example:
        >>> funcs, weights = build_reward_funcs({"preset": "q_insight"}, 1, "bare")
        >>> [f.__name__ for f in funcs], weights
        (['q_insight', 'format'], [1.0, 1.0])
    """
    cfg = _as_dict(reward_cfg)
    unknown = set(cfg) - _CONFIG_KEYS
    if unknown:
        raise ValueError(
            f"reward config: unknown keys {sorted(unknown)}; expected {sorted(_CONFIG_KEYS)}"
        )
    name = cfg.get("preset")
    if name not in PRESETS:
        raise ValueError(
            f"reward config: unknown preset {name!r}; expected one of {sorted(PRESETS)}"
        )
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(
            f"unknown answer_format {answer_format!r}; expected one of {ANSWER_FORMATS}"
        )
    params = dict(cfg.get("params") or {})
    allowed = preset_params(name)
    bad = set(params) - allowed
    if bad:
        raise ValueError(
            f"reward config: preset {name!r} takes no params {sorted(bad)}; it takes {sorted(allowed)}"
        )
    if name.startswith("preresq"):
        dims = params.get("balance_dims", 2 if name == "preresq_vqa" else 4)
        if dims > num_scores:
            raise ValueError(
                f"reward config: preset {name!r} balance_dims={dims} exceeds num_scores={num_scores}"
            )
    preset = PRESETS[name]
    score = GroupedReward(name, preset.score_fn, params, num_scores, answer_format)
    fmt = FormatReward(num_scores, answer_format, preset.format_rule)
    return [score, fmt], [1.0, float(cfg.get("format_weight", 1.0))]


__all__ = ["PRESETS", "Preset", "build_reward_funcs", "preset_params"]
