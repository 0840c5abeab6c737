"""A plain-Python loop implementation of the PreResQ reward, the reference for tests and the bench.

Written straight from the definitions in PAPER_NOTES, one pair or triple at a time,
sharing no code with ``preresq.rewards``. Invalid responses are handled by the rule in
``preresq.rewards.presets``: they are dropped from every list before any comparison.
Floats are Python floats (float64); a response's prediction is ``sum(values) / D``.
"""

from __future__ import annotations

import math
from itertools import combinations

MARGIN = 1e-6


def _mean(values):
    return sum(values) / len(values)


def _spread(scores, lambda_std, sigma_min):
    m = _mean(scores)
    std = math.sqrt(sum((x - m) ** 2 for x in scores) / len(scores))
    return lambda_std * max(0.0, sigma_min - std)


def _balance(group, ks, lambda_triple, tol, dims):
    """group: k -> sub-scores; ks: the valid response indices of one image."""
    gain = {k: 0 for k in ks}
    count = {k: 0 for k in ks}
    for triple in combinations(ks, 3):
        for k in triple:
            count[k] += 1
        for d in range(dims):
            ordered = sorted(triple, key=lambda k: group[k][d])  # stable: ties keep index order
            median = group[ordered[1]][d]
            gain[ordered[1]] += 1
            for k in (ordered[0], ordered[2]):
                if abs(group[k][d] - median) < tol - MARGIN:
                    gain[k] += 1
    return {k: (gain[k] / (dims * count[k]) * lambda_triple if count[k] else 0.0) for k in ks}


def _gt_rank(preds, gt, tol):
    """preds: k -> prediction (valid ones only)."""
    ranked = sorted(list(preds.values()) + [gt])
    out = {}
    for k, p in preds.items():
        if abs(p - gt) < tol - MARGIN:
            out[k] = 1.0
        else:
            diff = abs(ranked.index(p) - ranked.index(gt))
            out[k] = math.exp(-diff / len(ranked))
    return out


def _sign(x):
    return (x > 0) - (x < 0)


def _pair_score(pb, gb, pz, gz):
    c = 1 if _sign(pb - pz) == _sign(gb - gz) else 0
    denom = abs(gb - gz) + abs(pb - gb) + abs(pz - gz)
    s = abs(gb - gz) / denom if denom > 0 else 1.0
    return math.sqrt(c * s) + math.sqrt((1 - c) * (1 - s))


def _pairwise(preds, mos):
    """preds[b]: k -> prediction (valid only). Sorted-rank matching, mean over partners."""
    ranked = {b: sorted(preds[b], key=lambda k: preds[b][k]) for b in preds}  # stable
    out = {}
    for b in preds:
        for j, k in enumerate(ranked[b]):
            scores = []
            for z in preds:
                if z == b or j >= len(ranked[z]):
                    continue
                scores.append(_pair_score(preds[b][k], mos[b], preds[z][ranked[z][j]], mos[z]))
            out[b, k] = sum(scores) / len(scores) if scores else 0.0
    return out


def _triplet_rank(preds, mos, num_responses):
    out = {}
    for k in range(num_responses):
        images = [b for b in preds if k in preds[b]]
        for b in images:
            others = [x for x in images if x != b]
            fractions = []
            for a, c in combinations(others, 2):
                trio = (b, a, c)
                hits = 0
                for x, y in ((0, 1), (0, 2), (1, 2)):
                    px, py = preds[trio[x]][k], preds[trio[y]][k]
                    gx, gy = mos[trio[x]], mos[trio[y]]
                    hits += (px > py) == (gx > gy)
                fractions.append(hits / 3)
            out[b, k] = sum(fractions) / len(fractions) if fractions else 0.0
    return out


def reference_reward(
    subscores,
    mos,
    valid=None,
    *,
    w_pairwise=0.375,
    w_spread=1.0,
    w_balance=0.5,
    w_triplet_rank=0.125,
    w_gt_rank=1.0,
    divisor=3.0,
    lambda_std=0.5,
    sigma_min=0.5,
    lambda_triple=0.5,
    balance_tol=0.05,
    balance_dims=4,
    rank_tol=0.02,
):
    """Loop version of ``preresq_reward`` on nested lists; returns dict of B x K lists.

    ``subscores`` [B][K][D] numbers (float32 inputs should be passed already widened, as
    ``tensor.double().tolist()``), ``mos`` [B], ``valid`` [B][K] bools or None.
    """
    nb = len(subscores)
    nk = len(subscores[0]) if nb else 0
    if valid is None:
        valid = [[True] * nk for _ in range(nb)]
    subs = {b: {k: list(subscores[b][k]) for k in range(nk) if valid[b][k]} for b in range(nb)}
    preds = {b: {k: _mean(v) for k, v in subs[b].items()} for b in range(nb)}
    names = ("spread_penalty", "triplet_balance", "gt_rank", "pairwise", "triplet_rank", "total")
    out = {n: [[0.0] * nk for _ in range(nb)] for n in names}
    pair = _pairwise(preds, mos)
    trip = _triplet_rank(preds, mos, nk)
    spread_top = lambda_std * max(0.0, sigma_min)
    floor = (
        min(0.0, w_pairwise)
        + min(-w_spread * min(0.0, spread_top), -w_spread * max(0.0, spread_top))
        + min(w_balance * min(0.0, lambda_triple), w_balance * max(0.0, lambda_triple))
        + min(0.0, w_triplet_rank)
        + min(0.0, w_gt_rank)
    ) / divisor
    for b in range(nb):
        ks = sorted(subs[b])
        bal = _balance(subs[b], ks, lambda_triple, balance_tol, balance_dims)
        gtr = _gt_rank(preds[b], mos[b], rank_tol)
        for k in range(nk):
            if k not in subs[b]:
                out["total"][b][k] = floor
                continue
            parts = {
                "spread_penalty": _spread(subs[b][k], lambda_std, sigma_min),
                "triplet_balance": bal[k],
                "gt_rank": gtr[k],
                "pairwise": pair[b, k],
                "triplet_rank": trip[b, k],
            }
            for n, v in parts.items():
                out[n][b][k] = v
            out["total"][b][k] = (
                w_pairwise * parts["pairwise"]
                - w_spread * parts["spread_penalty"]
                + w_balance * parts["triplet_balance"]
                + w_triplet_rank * parts["triplet_rank"]
                + w_gt_rank * parts["gt_rank"]
            ) / divisor
    return out
