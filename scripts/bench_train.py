"""Per-step overhead of ``train(cfg)``'s trainer against a bare ``GRPOTrainer`` (CPU, tiny model).

Both trainers train the same tiny model on the same demo rows with the same GRPO settings
(``+experiment=smoke``, validation and checkpoints off). "bare" is a ``trl.GRPOTrainer``
built by hand: images opened and resized up front, one prompt, a trivial reward. "ours" is
``preresq.training.train.build_trainer`` (lazy rows, metric callbacks, the reward adapter),
timed twice: with the same trivial reward (the difference is then our wiring alone) and
with the configured PRPO reward. Step times come from a callback; the first steps are
dropped as warm-up and the median of the rest is printed.

    python scripts/bench_train.py [--steps 12] [--warmup 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step (generation, reward, loss, backward, update)."""

    def __init__(self):
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def trivial_reward(completions, **kwargs) -> list[float]:
    """Cheap and deterministic: how many characters the completion has."""
    from preresq.parsing import completion_text

    return [float(len(completion_text(c))) for c in completions]


def _cfg(out: Path, steps: int):
    from preresq.config import compose

    return compose("train", ["+experiment=smoke", f"output_dir={out}",
                             f"trainer.max_steps={steps}", "trainer.args.save_steps=100000",
                             "trainer.args.logging_steps=1", "validation.enabled=false"])


def time_ours(steps: int, out: Path, trivial: bool) -> list[float]:
    from preresq.models import resolve_model_path
    from preresq.training.train import build_trainer

    cfg = _cfg(out, steps)
    init = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    patch = mock.patch("preresq.rewards.build_reward_funcs", return_value=([trivial_reward], [1.0]))
    timer = StepTimer()
    with patch if trivial else contextlib.nullcontext():
        trainer = build_trainer(cfg, init, out, "main")
    trainer.add_callback(timer)
    trainer.train()
    return timer.times


def time_bare(steps: int, out: Path) -> list[float]:
    from datasets import Dataset
    from omegaconf import OmegaConf
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    from preresq.data.benchmarks import card_from_config, read_benchmark
    from preresq.data.rows import item_images
    from preresq.models import resolve_model_path
    from preresq.prompts import build_messages
    from preresq.training.train import plan_run

    cfg = _cfg(out, steps)
    init = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    card = card_from_config(cfg.data)
    records = read_benchmark(card)
    template = list(cfg.prompt.image.templates)[0]
    rows = [{"prompt": build_messages(template, 1),
             "images": item_images(r, card.media_root, int(cfg.model.min_pixels),
                                   int(cfg.model.max_pixels))}
            for r in records]
    args = OmegaConf.to_container(cfg.trainer.args, resolve=True)
    args.update(plan_run(cfg, 1)[0].grpo_args())  # the same batch shape as train(cfg)
    args.update(output_dir=str(out), reward_weights=[1.0])
    # The same checkpointing choice as train(cfg) (off for the tiny model); TRL's default is on.
    fields = GRPOConfig.__dataclass_fields__
    switch = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    args[switch] = bool(cfg.model.gradient_checkpointing)
    trainer = GRPOTrainer(model=AutoModelForImageTextToText.from_pretrained(init),
                          processing_class=AutoProcessor.from_pretrained(init),
                          reward_funcs=[trivial_reward], args=GRPOConfig(**args),
                          train_dataset=Dataset.from_list(rows))
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    return timer.times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the median")
    opts = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"bare GRPOTrainer, trivial reward": lambda out: time_bare(opts.steps, out),
                "train(cfg) trainer, trivial reward": lambda out: time_ours(opts.steps, out, True),
                "train(cfg) trainer, PRPO reward": lambda out: time_ours(opts.steps, out, False)}
        for i, (name, run) in enumerate(runs.items()):
            times = run(Path(tmp) / str(i))
            results[name] = statistics.median(times[opts.warmup:])
            print(f"{name:38s} median step {results[name]:.3f} s "
                  f"({len(times) - opts.warmup} steps timed)", flush=True)
    bare = results["bare GRPOTrainer, trivial reward"]
    ours = results["train(cfg) trainer, trivial reward"]
    print(json.dumps({"median_step_s": results,
                      "overhead_same_reward": round(ours / bare - 1, 4),
                      "target_overhead": 0.15}, indent=2))


if __name__ == "__main__":
    main()
