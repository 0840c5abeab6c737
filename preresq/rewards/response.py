"""Response branch of the PreResQ reward: terms computed inside one image's group of K responses.

All functions are pure and vectorised over the batch. Inputs are already prepared by
``preresq.rewards.presets`` (float64, invalid rows zero-filled, ``valid`` a bool mask):

* ``s``: sub-scores [B, K, D]; ``p``: predictions [B, K] (``response_means``);
* ``g``: MOS [B]; ``valid``: [B, K].

Invalid responses take no part in any comparison (triples that hold one are skipped,
the rank list holds only valid predictions) and get 0 in every term here; the combined
reward gives them its floor (see ``presets``).

Tolerances follow PAPER_NOTES: strict, with a margin, ``|a - b| < tol - margin``, so a
difference of exactly the tolerance counts as outside in float32 and float64 alike.
"""

from __future__ import annotations

import torch

TOL_MARGIN = 1e-6


def response_means(s: torch.Tensor) -> torch.Tensor:
    """Each response's prediction p[b,k]: the mean of its D sub-scores.

    Summed left to right over d (not ``Tensor.mean``) so that rounding is the same as a
    plain Python ``sum(values) / D``; tied predictions must tie in both implementations.
    """
    total = s[..., 0]
    for d in range(1, s.shape[-1]):  # D <= 5: a loop over dimensions, not pairs
        total = total + s[..., d]
    return total / s.shape[-1]


def spread_penalty(
    s: torch.Tensor, valid: torch.Tensor, lambda_std: float = 0.5, sigma_min: float = 0.5
) -> torch.Tensor:
    """P[b,k] = lambda_std * max(0, sigma_min - std_d(s[b,k,:])), population std; 0 if invalid."""
    mean = response_means(s)
    sq = (s[..., 0] - mean) ** 2
    for d in range(1, s.shape[-1]):
        sq = sq + (s[..., d] - mean) ** 2
    std = torch.sqrt(sq / s.shape[-1])
    penalty = lambda_std * torch.clamp(sigma_min - std, min=0.0)
    return torch.where(valid, penalty, torch.zeros_like(penalty))


def triplet_balance(
    s: torch.Tensor,
    valid: torch.Tensor,
    lambda_triple: float = 0.5,
    tol: float = 0.05,
    dims: int = 4,
    margin: float = TOL_MARGIN,
) -> torch.Tensor:
    """T[b,k]: how often response k sits at, or within ``tol`` of, the median of its triples.

    For every 3-subset of an image's valid responses and each of the first ``dims``
    sub-score dimensions, the response holding the median (stable order: equal values
    are ordered by response index) gains 1, and each extreme response gains 1 when
    ``|value - median| < tol - margin``. T = gain / (dims * triples holding k) * lambda_triple,
    0 when fewer than 3 responses are valid.

    Counted without enumerating triples. In the stable order of the n valid values let
    r_j be j's rank (0..n-1). Response k is the median of {k, x, y} when one of x, y
    comes before it: (r_k) * (n - 1 - r_k) triples. It is the minimum when both come
    after it, and then the median is the earlier of the two, x, paired with any y after
    x: n - 1 - r_x triples per x. Symmetrically, as the maximum: r_y triples per y.
    """
    b, k, d = s.shape
    if dims > d:
        raise ValueError(
            f"triplet_balance: balance_dims={dims} exceeds the {d} sub-scores per response"
        )
    out = torch.zeros((b, k), dtype=s.dtype, device=s.device)
    if k < 3 or b == 0 or dims <= 0:
        return out
    v = s[:, :, :dims].transpose(1, 2)  # [B, dims, K]
    vk, vj = v.unsqueeze(3), v.unsqueeze(2)  # k along dim 2, j along dim 3
    idx = torch.arange(k, device=s.device)
    earlier_index = idx[None, :] < idx[:, None]  # [k, j]: j < k
    other = valid[:, None, None, :] & ~torch.eye(k, dtype=torch.bool, device=s.device)
    before = ((vj < vk) | ((vj == vk) & earlier_index)) & other  # j precedes k, [B, dims, K, K]
    after = other & ~before
    rank = before.sum(dim=3)  # [B, dims, K]: stable rank among valid responses
    n = valid.sum(dim=1)[:, None, None]  # [B, 1, 1]
    as_median = rank * (n - 1 - rank)
    near = (vj - vk).abs() < (tol - margin)
    rank_j = rank.unsqueeze(2)  # rank of j, broadcast along k
    as_min = ((near & after) * (n.unsqueeze(3) - 1 - rank_j)).sum(dim=3)
    as_max = ((near & before) * rank_j).sum(dim=3)
    gain = (as_median + as_min + as_max).sum(dim=1).to(s.dtype)  # [B, K], over dimensions
    holding = (n[:, :, 0] - 1) * (n[:, :, 0] - 2) // 2  # triples of valid responses holding k
    ok = valid & (holding > 0)
    return torch.where(ok, gain / (dims * holding).clamp(min=1).to(s.dtype) * lambda_triple, out)


def gt_rank(
    p: torch.Tensor,
    g: torch.Tensor,
    valid: torch.Tensor,
    tol: float = 0.02,
    margin: float = TOL_MARGIN,
) -> torch.Tensor:
    """G[b,k]: 1 if |p - g| < tol - margin, else exp(-|rank(p) - rank(g)| / (n + 1)).

    The n valid predictions of the image and g form one list of n + 1 values; a value's
    rank is the number of list entries strictly smaller than it, so tied values share
    the lowest position (as ``sorted_list.index(value)`` does in the released code).
    0 for invalid responses.
    """
    pk = p.unsqueeze(2)  # [B, K, 1]
    pj = p.unsqueeze(1)  # [B, 1, K]
    gb = g[:, None]
    rank_p = ((pj < pk) & valid.unsqueeze(1)).sum(dim=2) + (gb < p).long()
    rank_g = ((p < gb) & valid).sum(dim=1, keepdim=True)
    n = valid.sum(dim=1, keepdim=True).to(p.dtype)
    far = torch.exp(-(rank_p - rank_g).abs().to(p.dtype) / (n + 1))
    close = (p - gb).abs() < (tol - margin)
    reward = torch.where(close, torch.ones_like(far), far)
    return torch.where(valid, reward, torch.zeros_like(reward))


__all__ = ["TOL_MARGIN", "response_means", "spread_penalty", "triplet_balance", "gt_rank"]
