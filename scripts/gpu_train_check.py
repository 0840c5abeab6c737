"""GPU check of ``train(cfg)``: two stages per variant, memory and step times against the plan.

No download: random Qwen2.5-VL policies are built on the device (building the 3B one on the
host CPU took ~70 s) with the tiny model's tokenizer/processor (same special tokens and
chat template), saved once, then trained by ``preresq.training.train`` itself with the
``smoke_two_stage`` stages on the demo images: 8 images per step, K=12 then K=6.

Variants (``--variants``, in this order by default):

- ``small_full``: Qwen2.5-VL-3B widths with 4 text and 4 vision layers (0.74B parameters),
  full fine-tune, ZeRO-3, 64 completion tokens;
- ``small_lora``: the same model with ``iqa_6k_lora``'s LoRA, frozen vision and ZeRO-2;
- ``3b_full``: the real 3B sizes (3.75B), full fine-tune, ZeRO-3, one step per stage.

Per stage it prints (from the run's own record, ``preresq.training.memory_report``): step
times, memory allocated at the stage's start, peak memory, the plan's estimate and their
ratio, allocator retries and trainable parameters. With ``--deadline-s`` a variant starts
only when its expected time still fits (the others are listed as skipped, never silently). One process: the DeepSpeed
process group is a one-process one unless torchrun made it.

    python scripts/gpu_train_check.py --out gpu_train.json          # on one GPU
    python scripts/gpu_train_check.py --device cpu --tiny           # CPU check of this script
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

QWEN2_5_VL_3B = dict(
    text_hidden_size=2048, text_layers=36, text_heads=16, text_kv_heads=2,
    text_intermediate_size=11008, vision_hidden_size=1280, vision_depth=32, vision_heads=16,
    vision_intermediate_size=3420, initializer_range=0.02,
)
SMALL_LAYERS = dict(text_layers=4, vision_depth=4)
# name -> (model, LoRA, steps per stage, completion tokens, seconds it is expected to take on
# one H200: the first GPU run's step times (0.74B: 17.6 s + 8.0 s at 64 tokens; 3B: 50.4 s at
# 256 tokens, 137 s for the stage) plus set-up and saves; guesses until measured)
VARIANTS = {"small_full": ("small", False, 1, 64, 90), "small_lora": ("small", True, 1, 64, 80),
            "3b_full": ("3b", False, 1, 128, 220)}


def save_policy(folder: Path, size: str, device: str) -> Path:
    """A random bf16 policy of the given size, built on ``device`` and saved to ``folder``."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from preresq.models.tiny import DEFAULTS, _model_config, build_tiny_model, default_tiny_dir

    source = build_tiny_model(default_tiny_dir())
    if size == "tiny":
        return source
    if (folder / "config.json").is_file():
        return folder
    processor = AutoProcessor.from_pretrained(source)
    dims = {**DEFAULTS, **QWEN2_5_VL_3B, **(SMALL_LAYERS if size == "small" else {})}
    config = _model_config("qwen2_5_vl", processor.tokenizer, dims)
    depth = dims["vision_depth"]
    config.vision_config.fullatt_block_indexes = [i for i in (7, 15, 23, 31) if i < depth] or [depth - 1]
    config.text_config.vocab_size = 151936
    config.tie_word_embeddings = True
    config.text_config.rope_parameters["mrope_section"] = [16, 24, 24]  # head_dim 128
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    del model
    return folder


def overrides(policy: Path, out: Path, cpu: bool, tokens: int, steps: int, lora: bool,
              tiny: bool = False) -> list[str]:
    # The tiny CPU check runs the same path at smoke sizes: 2 images x 4 then 2 responses.
    items, k1, k2 = (2, 4, 2) if tiny else (8, 12, 6)
    device = (["trainer.args.use_cpu=true", "trainer.args.bf16=false", "model.dtype=float32"] if cpu else
              ["trainer.args.use_cpu=false", "trainer.args.bf16=true", "model.dtype=bfloat16",
               f"trainer.deepspeed={'zero2' if lora else 'zero3'}", "model.gradient_checkpointing=true"])
    return ["+experiment=smoke_two_stage", f"model.name_or_path={policy}", f"output_dir={out}",
            *device, f"trainer.items_per_step={items}", "trainer.max_completions_per_device=48",
            f"stages.exploration.trainer.max_steps={steps}", f"stages.stability.trainer.max_steps={steps}",
            f"stages.exploration.trainer.args.num_generations={k1}",
            f"stages.stability.trainer.args.num_generations={k2}",
            f"trainer.args.max_completion_length={tokens}", "trainer.args.report_to=[]",
            "trainer.args.logging_steps=1", "trainer.args.save_steps=100000",
            "model.max_pixels=200704", "validation.enabled=false"]


def stage_records(out: Path, stages: list[str]) -> dict:
    """Each stage's ``memory`` record (written by the run) with the estimate's ratio."""
    records = {}
    for stage in stages:
        info = json.loads((out / stage / "run_info.json").read_text())
        record = info["memory"]
        peak, estimate = record["peak_gib"], record["estimate_gib"]
        record["estimate_over_peak"] = round(estimate / peak, 3) if peak and estimate else None
        records[stage] = record
    return records


def run_variant(name: str, cfg, out: Path) -> dict:
    import importlib

    training = importlib.import_module("preresq.training.train")
    started = time.perf_counter()
    training.train(cfg)
    stages = [s for s, _ in training.stage_configs(cfg)]
    return {"variant": name, "seconds": round(time.perf_counter() - started, 1),
            "stages": stage_records(out, stages)}


def line(name: str, stage: str, r: dict) -> str:
    def gib(v):
        return "n/a" if v is None else f"{v:.2f} GiB"

    steps = ", ".join(f"{s:.1f}" for s in r["step_s"])
    return (f"{name}/{stage}: steps [{steps}] s; allocated at start {gib(r['allocated_at_start_gib'])}, "
            f"peak {gib(r['peak_gib'])}, plan {gib(r['estimate_gib'])} (estimate/peak "
            f"{r['estimate_over_peak']}); alloc retries {r['alloc_retries']}; trainable "
            f"{r['trainable_parameters']:,} of {r['parameters']:,}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="the tiny model instead (a CPU check of this script)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per stage (default: per variant)")
    parser.add_argument("--deadline-s", type=float, default=None,
                        help="seconds from start by which the check must end: skip variants that would not")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=Path("outputs/gpu_train_check"))
    args = parser.parse_args(argv)

    from preresq.config import compose

    cpu = args.device == "cpu"
    if not cpu and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but CUDA is not available (use --device cpu --tiny)")
    if not cpu:
        # DeepSpeed wants a process group even for one process: a one-process one, unless
        # torchrun made it.
        for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511", "RANK": "0",
                           "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
            os.environ.setdefault(key, value)
    lora = compose("train", ["+experiment=iqa_6k_lora"]).model.lora
    results: dict = {"device": "cpu" if cpu else torch.cuda.get_device_name(), "variants": {},
                     "skipped": []}
    started = time.perf_counter()
    runs = args.work / time.strftime("run-%Y%m%d-%H%M%S")   # a fresh folder: stages never resume
    for name in args.variants:
        size, with_lora, steps, tokens, expected_s = VARIANTS[name]
        if args.tiny and size == "3b":
            results["skipped"].append(f"{name}: --tiny")
            continue
        elapsed = time.perf_counter() - started
        if args.deadline_s is not None and elapsed + expected_s > args.deadline_s:
            results["skipped"].append(f"{name}: expected {expected_s} s, {args.deadline_s - elapsed:.0f} s "
                                      f"left of --deadline-s {args.deadline_s:g}")
            continue
        policy = save_policy(args.work / f"policy_{size}", "tiny" if args.tiny else size, args.device)
        out = runs / name
        cfg = compose("train", overrides(policy, out, cpu, 8 if args.tiny else tokens,
                                         args.steps or steps, with_lora, args.tiny))
        if with_lora:
            cfg.model.lora = lora
            cfg.model.freeze_vision = True
        result = run_variant(name, cfg, out)
        results["variants"][name] = result
        for stage, record in result["stages"].items():
            print(line(name, stage, record), flush=True)
    for skipped in results["skipped"]:
        print(f"skipped {skipped}")
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
