"""A bounded set of tensor shapes for compiled decoding: sizes on a fixed ladder.

A compiled decode step is recorded once per shape (CUDA graphs: one graph per batch size
and cache length), so ``HFPredictor`` with ``compile`` keeps the batch sizes and the prompt
lengths on one ladder: every integer up to 8, then 4, 5, 6, 7 x 2^k (8, 10, 12, 14, 16,
20, 24, 28, 32, 40, ...): four sizes per doubling, each at most 25% above the one below.

* batch sizes: a batch holds the largest ladder size that fits its budget
  (``bucket_down``, at most 20% below what fits, against up to 50% when batches were
  rounded down to powers of two: a KonIQ batch that fits 54 now runs 48, not 32); a
  benchmark's last, smaller batch is padded up to a ladder size (``bucket_up``) with
  copies of its last request, whose answers are dropped, instead of being cut in pieces;
* prompt lengths: left padded up to ``bucket_up(length, smallest=16)``.

``scripts/bench_batch_shapes.py`` prints what this costs on the real benchmarks' sizes:
distinct shapes, padded rows, items per call.
"""

from __future__ import annotations

from collections.abc import Sequence

STEPS = (4, 5, 6, 7)  # x 2^k: four sizes per doubling


def ladder(limit: int) -> list[int]:
    """The ladder sizes up to ``limit``: 1, 2, ..., 8, 10, 12, 14, 16, 20, ..."""
    sizes, scale = list(range(1, min(limit, 7) + 1)), 2
    while STEPS[0] * scale <= limit:
        sizes += [step * scale for step in STEPS if step * scale <= limit]
        scale *= 2
    return sizes


def bucket_up(n: int, smallest: int = 1) -> int:
    """The smallest ladder size >= ``n`` and >= ``smallest``."""
    n = max(int(n), int(smallest), 1)
    if n <= 7:
        return n
    scale = 2
    while True:
        for step in STEPS:
            if step * scale >= n:
                return step * scale
        scale *= 2


def bucket_down(n: int) -> int:
    """The largest ladder size <= ``n`` (n >= 1)."""
    if n < 1:
        raise ValueError(f"bucket_down needs n >= 1, got {n}")
    return ladder(int(n))[-1]


def pad_requests(requests: Sequence, size: int) -> list:
    """``requests`` plus copies of the last one up to ``size`` (their answers are dropped)."""
    requests = list(requests)
    return requests + [requests[-1]] * (size - len(requests))
