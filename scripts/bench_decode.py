"""Decodes and loader time per optimizer step, without and with the row loader's decode cache.

Reads the training rows the way ``GRPOTrainer`` does on one process: TRL's ``RepeatSampler``
(each item K times in a row, the generation batch again for every accumulation step) and a
data loader whose batch is the generation batch, one batch per micro-step. Media are made
in a temporary folder: KADID-size PNGs (512x384) and 720p clips (PyAV). For each set the
script prints decodes (``item_images`` calls) per optimizer step and loader seconds per
step with ``cache_items=0`` (before) and the default cache (after).

    python scripts/bench_decode.py [--steps 3] [--images 64] [--clips 8]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
from PIL import Image


def make_pngs(folder: Path, n: int, rng) -> list[str]:
    names = []
    for i in range(n):
        pixels = rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)  # noise: PNG at its slowest
        Image.fromarray(pixels).save(folder / f"img{i:03d}.png")
        names.append(f"img{i:03d}.png")
    return names


def make_clips(folder: Path, n: int, rng, seconds: float = 2.0, fps: int = 25) -> list[str]:
    from preresq.data.demo_video import encoder, write_clip

    codec = encoder()
    names = []
    base = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    for i in range(n):
        frames = [Image.fromarray(np.roll(base, 8 * (t + i), axis=1)) for t in range(int(seconds * fps))]
        write_clip(folder / f"clip{i:02d}.mp4", frames, fps, codec, {})
        names.append(f"clip{i:02d}.mp4")
    return names


def time_loader(records, root: Path, modality: str, video_cfg: dict | None, k: int, items: int,
                micro: int, steps: int, cache_items: int) -> dict:
    """Decodes and seconds per optimizer step; ``micro`` accumulation steps per optimizer step."""
    from torch.utils.data import DataLoader
    from trl.trainer.utils import RepeatSampler

    import preresq.data.rows as rows

    prompt = {"templates": ["iqa" if modality == "image" else "vqa"], "num_scores": 5,
              "answer_format": "tagged"}
    dataset = rows.build_train_dataset(records, root, prompt, 3136, 12845056, video_cfg,
                                       cache_items=cache_items)
    sampler = RepeatSampler(dataset, mini_repeat_count=k, batch_size=items, repeat_count=micro,
                            shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=items * k, sampler=sampler, collate_fn=lambda b: b)
    calls = {"n": 0}
    real = rows.item_images

    def counted(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    def epochs():  # a short media set is read again, as the trainer does for more epochs
        while True:
            yield from loader

    batches = epochs()
    with mock.patch.object(rows, "item_images", counted):
        t0 = time.perf_counter()
        for _ in range(steps * micro):
            next(batches)
        seconds = time.perf_counter() - t0
    return {"decodes_per_step": calls["n"] / steps, "loader_s_per_step": round(seconds / steps, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--clips", type=int, default=8)
    opts = parser.parse_args()

    from preresq.config import compose
    from preresq.data.records import Record

    video_cfg = dict(compose("train", ["+experiment=vqa_28k"]).video)
    rng = np.random.default_rng(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sets = {
            # iqa_6k stage 1 on 4 GPUs, per process: 8 images x 12 responses, 2 micro-steps.
            "KADID-size PNG 512x384, K=12, 8 items, 2 accumulation": (
                "image", None, 12, 8, 2, make_pngs(root, opts.images, rng)),
            # vqa_28k on 4 GPUs, per process: 5 videos x 5 responses, one micro-step.
            "720p clip (mosaic + 3 frames), K=5, 5 items": (
                "video", video_cfg, 5, 5, 1, make_clips(root, opts.clips, rng)),
        }
        for name, (modality, vcfg, k, items, micro, files) in sets.items():
            records = [Record(id=f, paths=[f], mos=3.0, score=3.0, benchmark="bench", modality=modality)
                       for f in files]
            before = time_loader(records, root, modality, vcfg, k, items, micro, opts.steps, 0)
            after = time_loader(records, root, modality, vcfg, k, items, micro, opts.steps, items)
            results[name] = {"before": before, "after": after}
            print(f"{name}: decodes/step {before['decodes_per_step']:.0f} -> "
                  f"{after['decodes_per_step']:.0f}, loader s/step {before['loader_s_per_step']:.3f} "
                  f"-> {after['loader_s_per_step']:.3f}", flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
