"""GPU check of ``train(cfg)`` at real shapes: two stages, ZeRO-3, full fine-tune and LoRA.

No download: a policy with the real Qwen2.5-VL-3B sizes (random weights, bf16) and the
tiny model's tokenizer/processor (same special tokens and chat template) is saved once,
then trained by ``preresq.training.train`` itself with the ``smoke_two_stage`` stages at
real sizes: 8 images per step, K=12 then K=6, 256 completion tokens (a random model rarely
stops early), 2 steps per stage, DeepSpeed ZeRO-3 on one GPU, wandb offline. Run once as a
full fine-tune and once with the LoRA settings of ``iqa_6k_lora``. Prints per stage and
variant: step times, peak GPU memory (per stage) and bytes wandb wrote per step, as JSON.

    torchrun --nproc_per_node=1 scripts/gpu_train_check.py --out gpu_train.json
    python scripts/gpu_train_check.py --tiny          # CPU smoke of this script (no DeepSpeed)
"""

from __future__ import annotations

import argparse
import importlib
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


def save_policy(folder: Path, tiny: bool) -> Path:
    """The policy folder: the tiny model itself, or random 3B-size weights in bf16."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from preresq.models.tiny import DEFAULTS, _model_config, build_tiny_model, default_tiny_dir

    source = build_tiny_model(default_tiny_dir())
    if tiny:
        return source
    if (folder / "config.json").is_file():
        return folder
    processor = AutoProcessor.from_pretrained(source)
    config = _model_config("qwen2_5_vl", processor.tokenizer, {**DEFAULTS, **QWEN2_5_VL_3B})
    config.vision_config.fullatt_block_indexes = [7, 15, 23, 31]
    config.text_config.vocab_size = 151936
    config.tie_word_embeddings = True
    config.text_config.rope_parameters["mrope_section"] = [16, 24, 24]  # head_dim 128
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def overrides(policy: Path, out: Path, tiny: bool, tokens: int, steps: int) -> list[str]:
    device = (["trainer.args.use_cpu=true", "trainer.args.bf16=false", "model.dtype=float32"] if tiny else
              ["trainer.args.use_cpu=false", "trainer.args.bf16=true", "model.dtype=bfloat16",
               "trainer.deepspeed=zero3", "model.gradient_checkpointing=true"])
    return ["+experiment=smoke_two_stage", f"model.name_or_path={policy}", f"output_dir={out}",
            *device, "trainer.items_per_step=8", "trainer.max_completions_per_device=48",
            f"stages.exploration.trainer.max_steps={steps}", f"stages.stability.trainer.max_steps={steps}",
            "stages.exploration.trainer.args.num_generations=12",
            "stages.stability.trainer.args.num_generations=6",
            f"trainer.args.max_completion_length={tokens}", "trainer.args.report_to=[wandb]",
            "trainer.args.log_completions=true", "trainer.args.logging_steps=1",
            "trainer.args.save_steps=100000", "model.max_pixels=200704", "validation.enabled=false"]


def run_variant(name: str, cfg, wandb_dir: Path) -> dict:
    """train(cfg), timing each step and reading the peak memory of each stage."""
    import wandb
    from transformers import TrainerCallback

    training = importlib.import_module("preresq.training.train")
    cuda = torch.cuda.is_available()
    stages: dict[str, dict] = {}

    class Timer(TrainerCallback):
        def __init__(self, stage):
            self.stage = stage

        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            stages[self.stage]["step_s"].append(round(time.perf_counter() - self.t, 2))

        def on_train_end(self, args, state, control, **kw):
            if cuda:  # reset when the stage's trainer was built
                stages[self.stage]["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)

    real_build = training.build_trainer

    def build(cfg, init_path, output_dir, stage, plan=None, initial_path=None):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        trainer = real_build(cfg, init_path, output_dir, stage, plan, initial_path)
        stages[stage] = {"num_generations": trainer.num_generations, "step_s": [],
                         "trainable_parameters": sum(p.numel() for p in trainer.model.parameters()
                                                     if p.requires_grad)}
        trainer.add_callback(Timer(stage))
        return trainer

    before = set(wandb_dir.rglob("offline-run-*"))
    training.build_trainer = build
    try:
        training.train(cfg)
    finally:
        training.build_trainer = real_build
        wandb.finish()
    runs = sorted(set(wandb_dir.rglob("offline-run-*")) - before)
    logged = sum(p.stat().st_size for r in runs for p in r.rglob("*") if p.is_file())
    steps = sum(len(s["step_s"]) for s in stages.values())
    return {"variant": name, "stages": stages, "wandb_bytes_per_step": round(logged / max(steps, 1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU (tests this script)")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per stage")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=Path("outputs/gpu_train_check"))
    args = parser.parse_args()

    from preresq.config import compose

    # DeepSpeed wants a process group even for one process: a one-process one, unless torchrun made it.
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511", "RANK": "0",
                       "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
        if not args.tiny:
            os.environ.setdefault(key, value)
    wandb_dir = args.work / "wandb"
    wandb_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ["WANDB_DIR"] = str(wandb_dir)
    policy = save_policy(args.work / "policy_3b", args.tiny)
    lora = compose("train", ["+experiment=iqa_6k_lora"]).model.lora
    results = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    for name in ("full", "lora"):
        cfg = compose("train", overrides(policy, args.work / name, args.tiny,
                                         8 if args.tiny else args.tokens, args.steps))
        if name == "lora":
            cfg.model.lora = lora
            cfg.model.freeze_vision = True
        results[name] = run_variant(name, cfg, wandb_dir)
        print(json.dumps(results[name]), flush=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
