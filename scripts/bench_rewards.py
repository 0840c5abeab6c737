"""Time ``preresq_reward`` against a plain loop implementation of the same definition.

Prints the median wall time of each at B = 8, K = 6 (one device's batch) and at a global
batch of B = 64, K = 12 (D = 5 both), on one CPU thread, and the speed-up.
Target: the global batch under 20 ms and at least 100x faster than the loop.

    OMP_NUM_THREADS=1 python scripts/bench_rewards.py [--loop-repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(
    0, str(REPO_ROOT / "tests")
)  # the loop reference lives beside the tests that use it

from reference_reward import reference_reward  # noqa: E402

from preresq.rewards import preresq_reward  # noqa: E402


def _inputs(b: int, k: int, d: int, seed: int = 0):
    """Two-decimal ratings in [1, 5] (ties included, as the model writes them) and MOS."""
    gen = torch.Generator().manual_seed(seed)
    s = torch.randint(100, 501, (b, k, d), generator=gen).float() / 100
    mos = torch.randint(100, 501, (b,), generator=gen).float() / 100
    return s, mos


def _median_seconds(fn, args: tuple, repeats: int):
    """(median seconds over ``repeats`` calls of ``fn(*args)``, the last call's result)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="runs of the vectorised reward")
    parser.add_argument("--loop-repeats", type=int, default=3, help="runs of the loop reference")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'B x K x D':>12} {'vectorised':>12} {'loop':>12} {'speed-up':>10}")
    for b, k, d in ((8, 6, 5), (64, 12, 5)):
        s, mos = _inputs(b, k, d)
        s_list, mos_list = s.double().tolist(), mos.double().tolist()
        preresq_reward(s, mos)  # warm-up
        fast, out = _median_seconds(preresq_reward, (s, mos), args.repeats)
        slow, ref = _median_seconds(reference_reward, (s_list, mos_list), args.loop_repeats)
        # the two must agree, or the timing compares different things
        gap = (out["total"].double() - torch.tensor(ref["total"], dtype=torch.float64)).abs().max()
        print(
            f"{f'{b} x {k} x {d}':>12} {fast * 1e3:>9.2f} ms {slow * 1e3:>9.1f} ms {slow / fast:>9.0f}x"
            f"   max |difference| {gap:.1e}"
        )


if __name__ == "__main__":
    main()
