"""Preference branch of the reward: terms that compare images across the whole batch.

Pure, vectorised functions over prepared tensors (see ``preresq.rewards.presets``):
``p`` predictions [B, K] (float64), ``g`` MOS [B], ``valid`` [B, K] bool.

Invalid responses are left out: they are never anyone's partner, pairs and triples
that hold one are dropped from the means, and they get 0 here. A mean over nothing
(one image in the batch, every partner invalid) is 0.
"""

from __future__ import annotations

import math

import torch


def _masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` holds, 0 where nothing is selected."""
    total = torch.where(mask, values, torch.zeros_like(values)).sum(dim=dim)
    count = mask.sum(dim=dim)
    return torch.where(
        count > 0, total / count.clamp(min=1).to(values.dtype), torch.zeros_like(total)
    )


def pairwise(p: torch.Tensor, g: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """W[b,k]: score-and-rank agreement of b's predictions with every other image's.

    Each image's valid predictions are sorted (stable: ties keep response order); the
    j-th smallest of image b meets the j-th smallest of every other image z that has
    one. With c = 1 when sign(p_b - p_z) == sign(g_b - g_z) (exact ties are the "equal"
    relation) and s = |g_b - g_z| / (|g_b - g_z| + |p_b - g_b| + |p_z - g_z|), the pair
    scores sqrt(c*s) + sqrt((1-c)*(1-s)), i.e. sqrt(s) or sqrt(1-s). W is the mean over
    z, put back at the response index that held the j-th smallest prediction.

    Where the denominator is 0 (equal MOS, both predictions exact) s is taken as 1, so
    that pair scores 1: exact predictions can never score below inexact ones.
    """
    b, k = p.shape
    key = torch.where(valid, p, torch.full_like(p, math.inf))  # invalid sort last
    order = torch.sort(key, dim=1, stable=True).indices
    ps = torch.gather(p, 1, order)
    vs = torch.gather(valid, 1, order)
    pb, pz = ps[:, None, :], ps[None, :, :]  # [B, B, K]: anchor b, partner z
    gb, gz = g[:, None, None], g[None, :, None]
    agree = torch.sign(pb - pz) == torch.sign(gb - gz)
    gap = (gb - gz).abs()
    denom = gap + (pb - gb).abs() + (pz - gz).abs()
    positive = denom > 0
    s = torch.where(
        positive, gap / torch.where(positive, denom, torch.ones_like(denom)), torch.ones_like(denom)
    )
    score = torch.sqrt(torch.where(agree, s, 1 - s))  # c is 0 or 1: one of the two roots vanishes
    not_self = ~torch.eye(b, dtype=torch.bool, device=p.device)[:, :, None]
    mask = vs[:, None, :] & vs[None, :, :] & not_self
    w_sorted = _masked_mean(score, mask, dim=1)  # [B, K] by sorted position
    return torch.zeros_like(p).scatter(1, order, w_sorted)


def triplet_rank(p: torch.Tensor, g: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """R[b,k]: ordering agreement over every triple (b, a, c) of images at response index k.

    For each pair a < c of other images whose response k is valid, the three strict
    comparisons p_b > p_a, p_b > p_c, p_a > p_c are checked against g_b > g_a,
    g_b > g_c, g_a > g_c; the triple scores the fraction that agree. R is the mean over
    pairs. Because the comparisons are strict and directed, equal MOS make the (a, c)
    comparison depend on which of a, c comes first in the batch, as in the released code.

    Computed without enumerating triples: with n valid partners, every partner a meets
    b in n - 1 pairs, and the (a, c) terms are all agreements among the partners.
    """
    agree = (p[:, None, :] > p[None, :, :]) == (g[:, None, None] > g[None, :, None])  # [x, y, K]
    both = valid[:, None, :] & valid[None, :, :]
    b = p.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=p.device)
    a = agree & both & ~eye[:, :, None]
    upper = torch.triu(torch.ones((b, b), dtype=torch.bool, device=p.device), diagonal=1)
    a_up = (a & upper[:, :, None]).long()  # directed x < y comparisons
    total = a_up.sum(dim=(0, 1))  # [K]: agreements among all valid images
    with_b = a_up.sum(dim=0) + a_up.sum(dim=1)  # [B, K]: the x < y terms that involve b
    among_others = total[None, :] - with_b
    anchor = a.long().sum(dim=1)  # [B, K]: b's own comparisons against each partner
    n = valid.long().sum(dim=0, keepdim=True) - 1  # partners of b at index k
    pairs = n * (n - 1) // 2
    hits = (n - 1) * anchor + among_others
    r = hits.to(p.dtype) / (3 * pairs.clamp(min=1)).to(p.dtype)
    return torch.where(valid & (pairs > 0), r, torch.zeros_like(p))


def thurstone_fidelity(
    p: torch.Tensor,
    g: torch.Tensor,
    valid: torch.Tensor,
    gamma: float = 1e-6,
    eps: float = 1e-6,
) -> torch.Tensor:
    """VisualQuality-R1's rank reward: Thurstone probability scored by fidelity to the MOS order.

    For response k of image b against image z: q = Phi((p[b,k] - mean_k p[z]) /
    sqrt(var_k p[b] + var_k p[z] + gamma)) with population variance over valid
    responses; y = 1, 0 or 0.5 as g_b >, <, = g_z; the pair scores
    sqrt(q*y + eps) + sqrt((1-q)*(1-y) + eps). The reward is the mean over the other
    images z that have a valid response.
    """
    count = valid.sum(dim=1).to(p.dtype)
    has_any = count > 0
    zero = torch.zeros_like(p)
    mean = torch.where(valid, p, zero).sum(dim=1) / count.clamp(min=1)
    var = torch.where(valid, (p - mean[:, None]) ** 2, zero).sum(dim=1) / count.clamp(min=1)
    z = (p[:, None, :] - mean[None, :, None]) / torch.sqrt(
        var[:, None, None] + var[None, :, None] + gamma
    )
    q = 0.5 * (1 + torch.erf(z / math.sqrt(2)))  # [b, z, K]
    y = (torch.sign(g[:, None] - g[None, :]) + 1) / 2  # 1, 0.5, 0
    y = y[:, :, None]
    score = torch.sqrt(q * y + eps) + torch.sqrt((1 - q) * (1 - y) + eps)
    b = p.shape[0]
    not_self = ~torch.eye(b, dtype=torch.bool, device=p.device)
    partner = (not_self & has_any[None, :])[:, :, None].expand_as(score)
    r = _masked_mean(score, partner, dim=1)
    return torch.where(valid, r, zero)


__all__ = ["pairwise", "triplet_rank", "thurstone_fidelity"]
