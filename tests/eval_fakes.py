"""A deterministic stand-in for a model, shared by the evaluation tests.

Its answer depends only on the item's pixels, so any batching, ordering, resuming or
sharding of the same items gives the same predictions; it counts what it was asked.
"""

from __future__ import annotations

import hashlib

from preresq.config import compose


def fake_answer(images, sample: int = 0) -> str:
    """A digit 1-5 from the pixels, or (for about one item in 7) an answer with no score."""
    h = int(hashlib.md5(images[0].tobytes() + bytes([sample])).hexdigest(), 16)
    return "no idea" if h % 7 == 0 else str(1 + h % 5)


class FakePredictor:
    """``generate`` like a Predictor; ``stop_after`` raises KeyboardInterrupt (a Ctrl-C)
    once that many items have been answered."""

    def __init__(self, num_samples: int = 1, stop_after: int | None = None) -> None:
        self.num_samples = num_samples
        self.stop_after = stop_after
        self.calls = 0
        self.items = 0

    def generate(self, requests):
        if self.stop_after is not None and self.items >= self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        self.items += len(requests)
        return [[fake_answer(r.images, s) for s in range(self.num_samples)] for r in requests]


def eval_cfg(output_dir, *overrides):
    """The demo evaluation config, shrunk for tests."""
    return compose("eval", ["suite=iqa_demo", "model=tiny", "prompt=demo_digit",
                            f"output_dir={output_dir}", "limit=20", "batch_size=4",
                            "bootstrap_samples=50", "progress=false", *overrides])
