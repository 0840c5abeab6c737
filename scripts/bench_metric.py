"""Benchmark ``preresq.create_metric`` on CPU beside the evaluation loop: items/s on the same images.

The demo's test images (``iqa_demo``, 112-px crops) are repeated to ``--items`` (256) and
scored with the tiny model and the demo's prompt, twice with one model:

1. ``metric(x)``: the items as one ``(N, 3, 112, 112)`` float tensor in [0, 1] (the
   metric converts, sorts by prompt length, batches by items and tokens, parses);
2. ``predict_records``: the loop ``evaluate()`` runs on a benchmark (files opened lazily,
   the same planner and batches, rows appended to the prediction cache).

Both use ``batch_size``/``batch_tokens`` as given and greedy decoding; a warm-up call
comes first. It prints one JSON line per path and a summary (items/s, the ratio), and the
seconds ``create_metric`` took (the model is loaded once, then reused by every call).

    python scripts/bench_metric.py                      # 256 items, batch 32, 1 new token
    python scripts/bench_metric.py --items 512 --batch-size 64 --new-tokens 8
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-tokens", type=int, default=None, help="default: no limit")
    parser.add_argument("--new-tokens", type=int, default=1, help="max_new_tokens (the demo's: 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each path (best kept)")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from PIL import Image

    import preresq
    from preresq.data.benchmarks import load_card, read_benchmark
    from preresq.evaluation.batching import BatchLimits, PromptLengths
    from preresq.evaluation.cache import PredictionCache
    from preresq.evaluation.evaluate import media_loader, media_tokens
    from preresq.evaluation.predict import predict_records, text_counter
    from preresq.evaluation.requests import ItemPrompt

    torch.set_num_threads(args.threads)
    options = {"prompt": "demo_digit", "max_new_tokens": args.new_tokens, "batch_size": args.batch_size,
               "batch_tokens": args.batch_tokens}
    start = time.perf_counter()
    metric = preresq.create_metric("tiny", device="cpu", **options)
    created = time.perf_counter() - start
    cfg = metric.scorer.cfg
    card = load_card("iqa_demo", paths=cfg.paths)
    records = read_benchmark(card)
    items = [replace(records[i % len(records)], id=f"{records[i % len(records)].id}#{i}")
             for i in range(args.items)]
    pixels = [np.asarray(Image.open(Path(card.media_root) / r.paths[0]).convert("RGB")) for r in items]
    x = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255  # (N, 3, H, W)

    predictor = metric.scorer.predictor  # the same model for both paths
    prompt = ItemPrompt.from_cfg(cfg.prompt.image)
    lengths = PromptLengths(media_tokens(cfg, card), text_counter(predictor, prompt))
    limits = BatchLimits(args.batch_size, args.batch_tokens)

    def run_metric():
        return metric(x)

    def run_evaluation():
        with tempfile.TemporaryDirectory() as tmp:
            predict_records(items, predictor, prompt, media_loader(cfg, card),
                            PredictionCache(tmp, "bench"), limits, lengths)

    metric(x[:4])  # warm-up
    rows = {}
    for name, fn in (("metric", run_metric), ("evaluation_loop", run_evaluation)):
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        rows[name] = {"path": name, "items": args.items, "seconds": round(best, 2),
                      "items_per_s": round(args.items / best, 1)}
        print(json.dumps(rows[name]), flush=True)
    summary = {"items": args.items, "batch_size": args.batch_size, "batch_tokens": args.batch_tokens,
               "new_tokens": args.new_tokens, "threads": args.threads,
               "create_metric_seconds": round(created, 2),
               "metric_items_per_s": rows["metric"]["items_per_s"],
               "evaluation_items_per_s": rows["evaluation_loop"]["items_per_s"],
               "metric_vs_evaluation": round(rows["metric"]["items_per_s"]
                                             / rows["evaluation_loop"]["items_per_s"], 2)}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
