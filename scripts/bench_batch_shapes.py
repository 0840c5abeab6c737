"""What the shape buckets of compiled decoding cost: batches, shapes and padding per rule.

For each benchmark: its item count from its real label list (the authors' lists, read from
``--labels-root``, never copied into the project), its prompt length from the nominal size
of its release's images (``SIZES``, resized by the model's ``min_pixels``/``max_pixels``,
plus ``--text-tokens``), then the batch plan of ``configs/eval.yaml``'s ``batch_size`` and
``batch_tokens`` under two rules for compiled decoding:

* ``powers_of_two`` (before issue 25): every batch rounded down to 1, 2, 4, ... items;
* ``ladder`` (now, ``preresq.evaluation.shapes``): full batches the largest ladder size
  that fits, the last batch padded up to a ladder size.

Printed per rule: generate calls, items per call against what fits, padded rows (copies
run and dropped) as a fraction of rows run, and the distinct shapes a CUDA graph is
recorded for (batch rows x cache length: prompt bucket + ``max_new_tokens``) over the suite.
All items of a release share one size here, so this measures the batch-size rule, not
length spread (the planner sorts items by length, which keeps a batch's lengths close).

    python scripts/bench_batch_shapes.py                          # ../shared/benchmarks
    python scripts/bench_batch_shapes.py --labels-root DIR --batch-tokens 32768
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout without installing

# benchmark: (label list under --labels-root, nominal width x height of its release's images)
SIZES = {
    "kadid10k_test": ("kadid10k/KADID-10K_test_set.txt", (512, 384)),
    "tid2013": ("labels/GT_TID2013.txt", (512, 384)),
    "pipal": ("labels/GT_PIPAL.txt", (288, 288)),
    "agiqa3k": ("labels/GT_AGIQA.txt", (512, 512)),
    "clive": ("labels/GT_CLIVE.txt", (500, 500)),
    "koniq10k": ("labels/GT_KonIQ.txt", (1024, 768)),
    "spaq": ("labels/GT_SPAQ.txt", (4000, 3000)),
}


def powers_of_two_plan(count: int, room: int) -> list[int]:
    """Batch sizes of the old rule: every batch, the last included, rounded down to 2^k."""
    sizes = []
    while count:
        fit = min(room, count)
        fit = 1 << (fit.bit_length() - 1)
        sizes.append(fit)
        count -= fit
    return sizes


def ladder_plan(count: int, room: int) -> list[tuple[int, int]]:
    """(items, rows run) per batch of the ladder rule (``plan_batches`` with buckets)."""
    from preresq.evaluation.batching import BatchLimits, plan_batches
    from preresq.evaluation.shapes import bucket_up

    batches = plan_batches([1] * count, BatchLimits(room, None, buckets=True))
    return [(len(b), bucket_up(len(b))) for b in batches]


def measure(args) -> dict:
    from preresq.config import compose
    from preresq.evaluation.batching import image_tokens
    from preresq.evaluation.hf_predictor import length_bucket

    cfg = compose("eval", [f"model={args.model}", *args.override])
    lo, hi = int(cfg.model.min_pixels), int(cfg.model.max_pixels)
    size, budget, new = int(cfg.batch_size), cfg.get("batch_tokens"), int(cfg.max_new_tokens)
    rules = {"powers_of_two": {"calls": 0, "items": 0, "rows": 0, "room": 0, "shapes": set()},
             "ladder": {"calls": 0, "items": 0, "rows": 0, "room": 0, "shapes": set()}}
    per_benchmark = {}
    for name, (rel, (width, height)) in SIZES.items():
        path = Path(args.labels_root) / rel
        if not path.is_file():
            print(f"skipping {name}: {path} not found", file=sys.stderr)
            continue
        count = sum(1 for line in path.read_text().splitlines() if line.strip())
        tokens = image_tokens(height, width, lo, hi) + args.text_tokens
        room = size if budget is None else max(1, min(size, int(budget) // tokens))
        cache = length_bucket(tokens) + new
        old = powers_of_two_plan(count, room)
        new_plan = ladder_plan(count, room)
        per_benchmark[name] = {"items": count, "prompt_tokens": tokens, "fits": room,
                               "powers_of_two_batch": old[0], "ladder_batch": new_plan[0][0],
                               "calls": {"powers_of_two": len(old), "ladder": len(new_plan)}}
        for rule, plan in (("powers_of_two", [(n, n) for n in old]), ("ladder", new_plan)):
            r = rules[rule]
            r["calls"] += len(plan)
            r["items"] += sum(n for n, _ in plan)
            r["rows"] += sum(rows for _, rows in plan)
            r["room"] += room * len(plan)
            r["shapes"] |= {(rows, cache) for _, rows in plan}
    summary = {}
    for rule, r in rules.items():
        summary[rule] = {
            "calls": r["calls"], "distinct_shapes": len(r["shapes"]),
            "items_per_call_vs_fits": round(r["items"] / max(r["room"], 1), 3),
            "padded_rows_fraction": round((r["rows"] - r["items"]) / max(r["rows"], 1), 4),
        }
    return {"model": args.model, "min_pixels": lo, "max_pixels": hi, "batch_size": size,
            "batch_tokens": budget, "max_new_tokens": new, "text_tokens": args.text_tokens,
            "benchmarks": per_benchmark, "suite": summary}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels-root", default=str(REPO.parent / "shared" / "benchmarks"),
                        help="folder with labels/GT_*.txt and kadid10k/ (the authors' lists)")
    parser.add_argument("--model", default="qwen2_5_vl_3b", help="configs/model preset (pixel caps)")
    parser.add_argument("--text-tokens", type=int, default=60, help="prompt text tokens per item")
    parser.add_argument("--override", nargs="*", default=[], help="eval config overrides")
    args = parser.parse_args(argv)
    result = measure(args)
    print(f"{'benchmark':<14} {'items':>6} {'tokens':>6} {'fits':>5} {'2^k':>5} {'ladder':>6} "
          f"{'calls 2^k':>9} {'calls ladder':>12}")
    for name, b in result["benchmarks"].items():
        print(f"{name:<14} {b['items']:>6} {b['prompt_tokens']:>6} {b['fits']:>5} "
              f"{b['powers_of_two_batch']:>5} {b['ladder_batch']:>6} {b['calls']['powers_of_two']:>9} "
              f"{b['calls']['ladder']:>12}")
    print(json.dumps(result["suite"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
