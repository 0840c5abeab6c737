"""Benchmark the evaluation path on CPU: batched generation speed and memory vs set size.

1. items/s of ``predict_records`` (the loop ``evaluate`` runs: items sorted by prompt
   length, lazy media loading, batched greedy generation with left padding, parsing, the
   appended cache; the configured ``predictor`` options) on the tiny model and
   the demo set, at batch sizes 1, 8 and 32 (target: batched >= 3x one-at-a-time);
2. peak resident memory (ru_maxrss) of a whole benchmark pass -- prediction, merge, metrics,
   plot -- at 2,000 items vs 200 items, each in a fresh subprocess (target: <= 1.2x).
   The demo's test items are repeated under new ids to reach the size; each is still
   opened and predicted on its own.

    python scripts/bench_eval.py                 # both parts, prints the figures
    python scripts/bench_eval.py --items 64 --new-tokens 32 --batch-sizes 1 8 32
    python scripts/bench_eval.py --skip-memory --batch-sizes 8 64 --batch-tokens 300
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import preresq.config  # noqa: F401  (registers the ${repo_root:} resolver)
from preresq.config import compose


def _setup(new_tokens: int, cache_dir: str | None):
    from omegaconf import OmegaConf

    from preresq.data.benchmarks import load_card, read_benchmark
    from preresq.decoding import Decoding
    from preresq.evaluation.batching import PromptLengths
    from preresq.evaluation.evaluate import media_loader, media_tokens
    from preresq.evaluation.hf_predictor import HFPredictor
    from preresq.evaluation.predict import text_counter
    from preresq.evaluation.requests import ItemPrompt
    from preresq.models import load_model, load_processor, resolve_model_path

    overrides = ["suite=iqa_demo", "model=tiny", "prompt=demo_digit", f"max_new_tokens={new_tokens}"]
    if cache_dir:
        overrides.append(f"paths.cache_dir={cache_dir}")
    cfg = compose("eval", overrides)
    card = load_card("iqa_demo", paths=cfg.paths)
    records = read_benchmark(card)
    path = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    model = load_model(cfg.model, path=path)
    options = OmegaConf.to_container(cfg.predictor, resolve=True)
    options.pop("name")
    predictor = HFPredictor(model, load_processor(cfg.model, path=path), Decoding.from_cfg(cfg), **options)
    prompt = ItemPrompt.from_cfg(cfg.prompt.image)
    lengths = PromptLengths(media_tokens(cfg, card), text_counter(predictor, prompt))
    return cfg, card, records, predictor, prompt, media_loader(cfg, card), lengths


def _repeat(records, n):
    return [replace(records[i % len(records)], id=f"{records[i % len(records)].id}#{i}")
            for i in range(n)]


def speed(args) -> list[dict]:
    """items/s of predict_records at each batch size (same items, same model)."""
    import torch

    from preresq.evaluation.batching import BatchLimits
    from preresq.evaluation.cache import PredictionCache
    from preresq.evaluation.predict import predict_records

    torch.set_num_threads(args.threads)
    _, _, records, predictor, prompt, load, lengths = _setup(args.new_tokens, args.cache_dir)
    items = _repeat(records, args.items)
    predict_records(items[:4], predictor, prompt, load,  # warm-up
                    PredictionCache(tempfile.mkdtemp(), "warmup"), BatchLimits(4), lengths)
    rows = []
    for bs in args.batch_sizes:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            predict_records(items, predictor, prompt, load, PredictionCache(tmp, "bench"),
                            BatchLimits(bs, args.batch_tokens), lengths)
            seconds = time.perf_counter() - start
        rows.append({"batch_size": bs, "batch_tokens": args.batch_tokens, "items": len(items), "seconds": round(seconds, 2),
                     "items_per_s": round(len(items) / seconds, 2)})
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["items_per_s"]
    for row in rows:
        row["speedup"] = round(row["items_per_s"] / base, 2)
    return rows


def memory_child(args) -> None:
    """One whole benchmark pass over ``args.memory_child`` items; prints peak RSS (MiB)."""
    import torch

    from preresq.evaluation.batching import BatchLimits
    from preresq.evaluation.cache import PredictionCache
    from preresq.evaluation.predict import predict_records
    from preresq.evaluation.report import benchmark_result, scatter_plot

    torch.set_num_threads(args.threads)
    cfg, card, records, predictor, prompt, load, lengths = _setup(args.new_tokens, args.cache_dir)
    items = _repeat(records, args.memory_child)
    with tempfile.TemporaryDirectory() as tmp:
        cache = PredictionCache(Path(tmp) / "predictions", card.name)
        predict_records(items, predictor, prompt, load, cache,
                        BatchLimits(args.memory_batch_size, args.batch_tokens), lengths)
        rows = cache.merge([r.id for r in items])
        result = benchmark_result(rows, bootstrap_samples=1000)
        scatter_plot(Path(tmp) / "plot.png", rows, result, card.name)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"items": len(items), "peak_rss_mib": round(peak_mib, 1)}))


def memory(args) -> list[dict]:
    rows = []
    for n in args.memory_sizes:
        cmd = [sys.executable, __file__, "--memory-child", str(n), "--new-tokens", str(args.new_tokens),
               "--threads", str(args.threads), "--memory-batch-size", str(args.memory_batch_size)]
        if args.batch_tokens:
            cmd += ["--batch-tokens", str(args.batch_tokens)]
        if args.cache_dir:
            cmd += ["--cache-dir", args.cache_dir]
        start = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64, help="items per speed run")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--batch-tokens", type=int, default=None,
                        help="most prompt tokens per generate call (default: no limit)")
    parser.add_argument("--new-tokens", type=int, default=32, help="max_new_tokens")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--memory-sizes", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--memory-batch-size", type=int, default=32)
    parser.add_argument("--cache-dir", default=None, help="paths.cache_dir (tiny model, demo set)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        memory_child(args)
        return 0
    summary = {}
    if not args.skip_speed:
        summary["speed"] = speed(args)
    if not args.skip_memory:
        mem = memory(args)
        summary["memory"] = mem
        summary["memory_ratio"] = round(mem[-1]["peak_rss_mib"] / mem[0]["peak_rss_mib"], 3)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
