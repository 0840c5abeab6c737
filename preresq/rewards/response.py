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


def _triples(k: int, device: torch.device) -> torch.Tensor:
    """All 3-subsets of range(k) as [T, 3], each row in increasing index order."""
    return torch.combinations(torch.arange(k, device=device), r=3)


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
    """
    b, k, d = s.shape
    if dims > d:
        raise ValueError(f"triplet_balance: balance_dims={dims} exceeds the {d} sub-scores per response")
    out = torch.zeros((b, k), dtype=s.dtype, device=s.device)
    if k < 3 or b == 0 or dims <= 0:
        return out
    tri = _triples(k, s.device)  # [T, 3]
    v = s[:, :, :dims][:, tri]  # [B, T, 3, dims]
    x0, x1, x2 = v[:, :, 0], v[:, :, 1], v[:, :, 2]
    # Stable rank of each member: smaller values, plus equal values at a lower index.
    rank0 = (x1 < x0).long() + (x2 < x0).long()
    rank1 = (x0 <= x1).long() + (x2 < x1).long()
    rank2 = (x0 <= x2).long() + (x1 <= x2).long()
    is_median = torch.stack((rank0 == 1, rank1 == 1, rank2 == 1), dim=2)
    median = torch.maximum(torch.minimum(x0, x1), torch.minimum(torch.maximum(x0, x1), x2))
    near = (v - median.unsqueeze(2)).abs() < (tol - margin)
    gain = (is_median | near).sum(dim=3)  # [B, T, 3], summed over dimensions
    gain = gain * valid[:, tri].all(dim=2, keepdim=True)
    # Scatter each triple member's gain to its response index.
    incidence = torch.nn.functional.one_hot(tri.reshape(-1), k).to(s.dtype)  # [T*3, K]
    per_response = gain.reshape(b, -1).to(s.dtype) @ incidence
    n = valid.sum(dim=1, keepdim=True)
    holding = (n - 1) * (n - 2) // 2  # triples of valid responses that hold a given one
    denom = (dims * holding).to(s.dtype)
    ok = valid & (holding > 0)
    return torch.where(ok, per_response / denom.clamp(min=1) * lambda_triple, out)


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
