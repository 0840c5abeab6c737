"""Complete reward definitions: PreResQ (IQA and VQA), VisualQuality-R1, Q-Insight, format.

Each score preset maps a batch to per-response rewards:
``fn(subscores[B, K, D], mos[B], valid[B, K] | None, **params) -> dict`` of [B, K]
tensors holding ``total`` and the named components. Rows are images (videos), columns
the K responses sampled for each; ``mos`` is already on the [1, 5] scale.

Invalid responses (no parseable answer, ``valid`` False, or any non-finite sub-score):
* take no part in any comparison: every pair or triple that holds one is left out of
  the means of the other responses, the rank list holds only valid predictions, and the
  sorted-rank matching sorts only valid predictions;
* get 0 in every component and a ``total`` equal to the floor of the valid range, the
  lowest total any valid response can get with the given weights. With the released
  weights the PreResQ floor is -lambda_std * sigma_min / 3 = -1/12 (IQA) and -0.25 (VQA).
A mean over nothing (fewer than 3 valid responses for the balance term, one image for
the preference terms, all responses invalid) is 0, so no input yields NaN.

With every response valid, ``preresq_reward`` equals the released definition
(PAPER_NOTES) to float32 rounding, quirks included; maths runs in float64 and results
come back in the input's floating dtype.
"""

from __future__ import annotations

import re

import torch

from preresq.parsing import format_ok
from preresq.rewards.preference import pairwise, thurstone_fidelity, triplet_rank
from preresq.rewards.response import (
    TOL_MARGIN,
    gt_rank,
    response_means,
    spread_penalty,
    triplet_balance,
)

PRERESQ_COMPONENTS = ("spread_penalty", "triplet_balance", "gt_rank", "pairwise", "triplet_rank")


def prepare(
    subscores: torch.Tensor, mos: torch.Tensor, valid: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.dtype]:
    """Check shapes and return (s, g, valid, out_dtype): float64 copies, invalid rows zeroed."""
    subscores, mos = torch.as_tensor(subscores), torch.as_tensor(mos)
    if subscores.dim() != 3:
        raise ValueError(f"subscores must be [B, K, D]; got shape {tuple(subscores.shape)}")
    b, k, d = subscores.shape
    if d < 1:
        raise ValueError(
            f"subscores must hold at least one score per response; got shape {tuple(subscores.shape)}"
        )
    if mos.shape != (b,):
        raise ValueError(f"mos must be [B]={b}; got shape {tuple(mos.shape)}")
    if not torch.isfinite(mos).all():
        raise ValueError(f"mos holds non-finite values: {mos.tolist()}")
    out_dtype = subscores.dtype if subscores.is_floating_point() else torch.float32
    s = subscores.to(torch.float64)
    # Non-finite ratings (or a mean that overflows) cannot be compared: treat as invalid.
    finite = torch.isfinite(s).all(dim=2) & torch.isfinite(response_means(s))
    if valid is None:
        valid = torch.ones((b, k), dtype=torch.bool, device=s.device)
    else:
        valid = torch.as_tensor(valid, device=s.device)
        if valid.shape != (b, k):
            raise ValueError(f"valid must be [B, K]={b, k}; got shape {tuple(valid.shape)}")
        valid = valid.to(torch.bool)
    valid = valid & finite
    s = torch.where(valid[:, :, None], s, torch.zeros_like(s))
    return s, mos.to(device=s.device, dtype=torch.float64), valid, out_dtype


def _floor(terms: list[tuple[float, tuple[float, float]]], divisor: float) -> float:
    """Lowest reachable total of sum(coef * term) / divisor, given each term's range."""
    return sum(min(c * lo, c * hi) for c, (lo, hi) in terms) / divisor


def preresq_reward(
    subscores: torch.Tensor,
    mos: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    w_pairwise: float = 0.375,
    w_spread: float = 1.0,
    w_balance: float = 0.5,
    w_triplet_rank: float = 0.125,
    w_gt_rank: float = 1.0,
    divisor: float = 3.0,
    lambda_std: float = 0.5,
    sigma_min: float = 0.5,
    lambda_triple: float = 0.5,
    balance_tol: float = 0.05,
    balance_dims: int = 4,
    rank_tol: float = 0.02,
    tol_margin: float = TOL_MARGIN,
) -> dict[str, torch.Tensor]:
    """The PreResQ-R1 reward (PRPO): response branch plus preference branch.

    total = (w_pairwise*pairwise - w_spread*spread_penalty + w_balance*triplet_balance
             + w_triplet_rank*triplet_rank + w_gt_rank*gt_rank) / divisor,
    the released IQA combination by default (``triplet_balance`` already carries
    ``lambda_triple``). The VQA variant is ``balance_dims=2, w_gt_rank=0, divisor=1``.

    Args:
        subscores: [B, K, D] ratings; rows of invalid responses may hold anything.
        mos: [B] ground truth on the [1, 5] scale.
        valid: [B, K] bool, True where the response parsed; None means all valid.

    Returns:
        [B, K] tensors: ``spread_penalty``, ``triplet_balance``, ``gt_rank``, ``pairwise``,
        ``triplet_rank`` (0 at invalid responses) and ``total`` (the floor there).

    Example:
        >>> s = torch.tensor([[[4.0, 4.5, 3.5, 4.0, 4.0]] * 3, [[2.0, 2.5, 1.5, 2.0, 2.0]] * 3])
        >>> out = preresq_reward(s, torch.tensor([4.0, 2.0]))
        >>> out["total"].shape
        torch.Size([2, 3])
    """
    if divisor <= 0:
        raise ValueError(f"divisor must be positive; got {divisor}")
    s, g, valid, out_dtype = prepare(subscores, mos, valid)
    p = response_means(s)
    parts = {
        "spread_penalty": spread_penalty(s, valid, lambda_std, sigma_min),
        "triplet_balance": triplet_balance(
            s, valid, lambda_triple, balance_tol, balance_dims, tol_margin
        ),
        "gt_rank": gt_rank(p, g, valid, rank_tol, tol_margin),
        "pairwise": pairwise(p, g, valid),
        "triplet_rank": triplet_rank(p, g, valid),
    }
    total = (
        w_pairwise * parts["pairwise"]
        - w_spread * parts["spread_penalty"]
        + w_balance * parts["triplet_balance"]
        + w_triplet_rank * parts["triplet_rank"]
        + w_gt_rank * parts["gt_rank"]
    ) / divisor
    spread_top = lambda_std * max(0.0, sigma_min)
    floor = _floor(
        [
            (w_pairwise, (0.0, 1.0)),
            (-w_spread, (min(0.0, spread_top), max(0.0, spread_top))),
            (w_balance, (min(0.0, lambda_triple), max(0.0, lambda_triple))),
            (w_triplet_rank, (0.0, 1.0)),
            (w_gt_rank, (0.0, 1.0)),
        ],
        divisor,
    )
    parts["total"] = torch.where(valid, total, torch.full_like(total, floor))
    return {name: t.to(out_dtype) for name, t in parts.items()}


def preresq_vqa_reward(
    subscores: torch.Tensor, mos: torch.Tensor, valid: torch.Tensor | None = None, **params: float
) -> dict[str, torch.Tensor]:
    """The released VQA variant: two balance dimensions, no gt_rank term, no division by 3."""
    merged = {"balance_dims": 2, "w_gt_rank": 0.0, "divisor": 1.0, **params}
    return preresq_reward(subscores, mos, valid, **merged)


def visualquality_r1_reward(
    subscores: torch.Tensor,
    mos: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    gamma: float = 1e-6,
    eps: float = 1e-6,
) -> dict[str, torch.Tensor]:
    """VisualQuality-R1 (rank only): Thurstone fidelity against every other image.

    ``total`` equals the ``fidelity`` component; invalid responses get 0, below the
    fidelity's minimum of 2*sqrt(eps).
    """
    s, g, valid, out_dtype = prepare(subscores, mos, valid)
    fid = thurstone_fidelity(response_means(s), g, valid, gamma, eps)
    return {"fidelity": fid.to(out_dtype), "total": fid.to(out_dtype)}


def q_insight_reward(
    subscores: torch.Tensor,
    mos: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    threshold: float = 0.35,
    tol_margin: float = TOL_MARGIN,
) -> dict[str, torch.Tensor]:
    """Q-Insight (score only): 1 if |p - g| < threshold - tol_margin, else 0; 0 if invalid."""
    s, g, valid, out_dtype = prepare(subscores, mos, valid)
    hit = ((response_means(s) - g[:, None]).abs() < threshold - tol_margin) & valid
    score = hit.to(out_dtype)
    return {"score_hit": score, "total": score.clone()}


_TAGS = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*", re.DOTALL)


def format_reward(
    text: str, num_scores: int, answer_format: str = "tagged", rule: str = "strict"
) -> float:
    """1.0 when a completion follows the answer layout, else 0.0.

    ``rule="strict"`` (PreResQ): ``preresq.parsing.format_ok``, the think block, then an
    answer block of exactly ``num_scores`` numbers in [1, 5], one per line.
    ``rule="tags"`` (VisualQuality-R1, Q-Insight): only a think block followed by an
    answer block; bare answers fall back to the strict check.
    """
    if rule == "strict" or answer_format == "bare":
        return float(format_ok(text, num_scores, answer_format))
    if rule == "tags":
        return float(_TAGS.fullmatch(text) is not None)
    raise ValueError(f"unknown format rule {rule!r}; expected 'strict' or 'tags'")


__all__ = [
    "PRERESQ_COMPONENTS",
    "prepare",
    "preresq_reward",
    "preresq_vqa_reward",
    "visualquality_r1_reward",
    "q_insight_reward",
    "format_reward",
]
