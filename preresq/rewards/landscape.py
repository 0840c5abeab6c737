"""Reward landscape: the expected GRPO advantage of each answer given each true score.

Which answers does a reward push a policy towards before the policy has learned anything
about the image? For a score preset and a discrete answer space (the demo: one digit
1..5), many random batches of the training shape (B images x K answers each) are drawn:
true scores uniform over the training split's score levels (the demo's train split is
class balanced), answers sampled from an *image-independent* policy. The project's own
reward function scores each batch; the rewards become GRPO advantages as TRL computes
them (``GRPOTrainer``, ``multi_objective_aggregation="sum_then_normalize"``): minus the
group mean, divided by the group's unbiased std + 1e-4 (``scale_rewards="group"``), the
batch's std (``"batch"``) or nothing (``"none"``). The advantage of every answer is
averaged per (true score, answer) pair.

Two figures read the landscape (``shared/notes/prpo_on_the_demo.md``):

* ``pull_to_middle``: the mean advantage of the middle answer whatever the image, under a
  uniform policy. Positive: answering the middle digit pays before anything is learned;
  the fastest win is an answer that ignores the image.
* ``wrong_mode_reinforced``: under a policy collapsed on one answer (the middle one, 60%
  of the answers by default), the mean advantage of that answer on the images where it is
  wrong (another answer is closer to the true score). Positive: the reward keeps the
  collapse, and GRPO will not climb out of it.

The format reward is left out: every answer here is valid, so it adds the same constant
to every response and cancels in the advantage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

DIGITS = (1.0, 2.0, 3.0, 4.0, 5.0)
SCALES = ("group", "batch", "none")
STD_EPS = 1e-4  # TRL adds it to the std before dividing


def grpo_advantages(rewards: torch.Tensor, scale: str = "group") -> torch.Tensor:
    """TRL's advantages of [B, K] rewards (K responses per image): centred per group, scaled."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if scale == "group":
        return centred / (rewards.std(dim=1, keepdim=True) + STD_EPS)
    if scale == "batch":
        return centred / (rewards.std() + STD_EPS)
    return centred


def uniform_policy(n: int) -> np.ndarray:
    """Every answer equally likely."""
    return np.full(n, 1.0 / n)


def collapsed_policy(n: int, mode: int, share: float = 0.6) -> np.ndarray:
    """Answer ``mode`` (an index) with probability ``share``, the others evenly."""
    if not 0 <= mode < n:
        raise ValueError(f"mode index {mode} outside 0..{n - 1}")
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be in (0, 1), got {share}")
    policy = np.full(n, (1.0 - share) / (n - 1))
    policy[mode] = share
    return policy


@dataclass(frozen=True)
class Landscape:
    """Mean advantage per (true score, answer); NaN where a pair was never drawn."""

    scores: tuple[float, ...]  # rows
    answers: tuple[float, ...]  # columns
    total: np.ndarray  # [S, A] summed advantages
    count: np.ndarray  # [S, A] how many responses were drawn

    @property
    def advantage(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.total / np.maximum(self.count, 1), np.nan)

    def answer_mean(self, answer: int, rows: np.ndarray | None = None) -> float:
        """Mean advantage of answer index ``answer`` over the responses in ``rows`` (all by default)."""
        rows = np.ones(len(self.scores), dtype=bool) if rows is None else rows
        n = self.count[rows, answer].sum()
        return float(self.total[rows, answer].sum() / n) if n else float("nan")


def nearest_answer(score: float, answers: Sequence[float]) -> int:
    """Index of the answer closest to ``score`` (the lower one on a tie)."""
    return int(np.argmin([abs(a - score) for a in answers]))


def expected_advantages(
    score_fn: Callable[..., Mapping[str, torch.Tensor]],
    params: Mapping,
    policy: np.ndarray,
    *,
    scores: Sequence[float],
    answers: Sequence[float] = DIGITS,
    images: int = 8,
    answers_per_image: int = 8,
    batches: int = 2000,
    scale: str = "group",
    seed: int = 0,
) -> Landscape:
    """Average GRPO advantage of each answer given each true score, over random batches.

    Args:
        score_fn: a preset's ``fn(subscores[B, K, D], mos[B], valid, **params)`` returning
            ``total`` (``preresq.rewards.registry.PRESETS[name].score_fn``).
        params: its keyword arguments (the reward config's ``params``).
        policy: probabilities over ``answers``, the same for every image.
        scores: the true score levels, drawn uniformly per image.
        answers: the answer space; each answer is written as one sub-score (D = 1).
        images, answers_per_image: B and K of one reward call (the training batch).
        batches: how many random batches to average over.
        scale: TRL's ``scale_rewards``.
        seed: for the draws; the same seed gives the same landscape.
    """
    policy = np.asarray(policy, dtype=float)
    if policy.shape != (len(answers),) or not np.isclose(policy.sum(), 1.0) or (policy < 0).any():
        raise ValueError(f"policy must be {len(answers)} probabilities summing to 1, got {policy}")
    if images < 2 or answers_per_image < 2:
        raise ValueError(f"need at least 2 images and 2 answers per image, got {images} x {answers_per_image}")
    rng = np.random.default_rng(seed)
    values = torch.tensor(answers, dtype=torch.float64)
    levels = torch.tensor(scores, dtype=torch.float64)
    total = np.zeros((len(scores), len(answers)))
    count = np.zeros((len(scores), len(answers)), dtype=np.int64)
    for _ in range(batches):
        g_idx = rng.integers(len(scores), size=images)
        a_idx = rng.choice(len(answers), size=(images, answers_per_image), p=policy)
        subscores = values[torch.from_numpy(a_idx)][:, :, None]
        rewards = score_fn(subscores, levels[torch.from_numpy(g_idx)], None, **params)["total"]
        adv = grpo_advantages(rewards.to(torch.float64), scale).numpy()
        rows = np.repeat(g_idx[:, None], answers_per_image, axis=1)
        np.add.at(total, (rows, a_idx), adv)
        np.add.at(count, (rows, a_idx), 1)
    return Landscape(tuple(float(s) for s in scores), tuple(float(a) for a in answers), total, count)


def landscape_report(
    score_fn: Callable[..., Mapping[str, torch.Tensor]],
    params: Mapping,
    *,
    scores: Sequence[float],
    answers: Sequence[float] = DIGITS,
    share: float = 0.6,
    **kwargs,
) -> dict:
    """Both landscapes and the two summary figures (see the module docstring).

    Returns ``{"pull_to_middle", "wrong_mode_reinforced", "mode", "share", "uniform",
    "collapsed"}``; the last two are ``Landscape`` objects. ``kwargs`` go to
    ``expected_advantages`` (shape, batches, scale, seed).
    """
    middle = len(answers) // 2
    uniform = expected_advantages(score_fn, params, uniform_policy(len(answers)),
                                  scores=scores, answers=answers, **kwargs)
    collapsed = expected_advantages(score_fn, params, collapsed_policy(len(answers), middle, share),
                                    scores=scores, answers=answers, **kwargs)
    wrong = np.array([nearest_answer(s, answers) != middle for s in scores])
    return {
        "pull_to_middle": uniform.answer_mean(middle),
        "wrong_mode_reinforced": collapsed.answer_mean(middle, wrong) if wrong.any() else float("nan"),
        "mode": float(answers[middle]),
        "share": share,
        "uniform": uniform,
        "collapsed": collapsed,
    }


def markdown(landscape: Landscape) -> str:
    """The landscape as a markdown table: a row per true score, a column per answer."""
    head = "| true score | " + " | ".join(f"answer {a:g}" for a in landscape.answers) + " |"
    lines = [head, "| --- |" + " --- |" * len(landscape.answers)]
    for score, row in zip(landscape.scores, landscape.advantage, strict=True):
        cells = " | ".join("  n/a" if np.isnan(v) else f"{v:+.3f}" for v in row)
        lines.append(f"| {score:g} | {cells} |")
    means = " | ".join(f"{landscape.answer_mean(j):+.3f}" for j in range(len(landscape.answers)))
    lines.append(f"| any | {means} |")
    return "\n".join(lines)


__all__ = [
    "DIGITS",
    "Landscape",
    "collapsed_policy",
    "expected_advantages",
    "grpo_advantages",
    "landscape_report",
    "markdown",
    "nearest_answer",
    "uniform_policy",
]
