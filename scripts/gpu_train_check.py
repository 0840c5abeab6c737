"""GPU check: a few GRPO steps of a random Qwen2.5-VL-3B-architecture policy with LoRA.

No download: the model is built from a config with the real 3B sizes (random weights,
bf16) and the tiny model's tokenizer/processor (same special tokens and chat template).
Runs at the released batch shape: 8 images x 6 responses per step, 256 completion tokens
(a random model rarely stops early). Prints step time, generation tokens/s and peak GPU
memory as JSON.

    python scripts/gpu_train_check.py --steps 3 --out gpu_train.json
    python scripts/gpu_train_check.py --tiny --steps 1      # CPU smoke of this script
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

QWEN2_5_VL_3B = dict(
    text_hidden_size=2048, text_layers=36, text_heads=16, text_kv_heads=2,
    text_intermediate_size=11008, vision_hidden_size=1280, vision_depth=32, vision_heads=16,
    vision_intermediate_size=3420, initializer_range=0.02,
)


def build_policy(tiny: bool, device: str, dtype):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from preresq.models.tiny import DEFAULTS, _model_config, build_tiny_model, default_tiny_dir

    folder = build_tiny_model(default_tiny_dir())
    processor = AutoProcessor.from_pretrained(folder)
    if tiny:
        return AutoModelForImageTextToText.from_pretrained(folder).to(device), processor
    config = _model_config("qwen2_5_vl", processor.tokenizer, {**DEFAULTS, **QWEN2_5_VL_3B})
    config.vision_config.fullatt_block_indexes = [7, 15, 23, 31]
    config.text_config.vocab_size = 151936
    config.tie_word_embeddings = True
    # M-RoPE sections of the real model (head_dim 128).
    config.text_config.rope_parameters["mrope_section"] = [16, 24, 24]
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
    return model, processor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU (tests this script)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--responses", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--pixels", type=int, default=448 * 448)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=Path("outputs/gpu_train_check"))
    args = parser.parse_args()

    from peft import LoraConfig, get_peft_model
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from preresq.data.demo import load_demo_split
    from preresq.data.rows import build_train_dataset
    from preresq.rewards import build_reward_funcs

    cuda = torch.cuda.is_available() and not args.tiny
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    model, processor = build_policy(args.tiny, device, dtype)
    model = get_peft_model(model, LoraConfig(
        r=64, lora_alpha=128, task_type="CAUSAL_LM",
        target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"))
    n_params = sum(p.numel() for p in model.parameters())

    records, media_root = load_demo_split("train")
    prompt = {"templates": ["iqa"], "num_scores": 5, "answer_format": "tagged"}
    dataset = build_train_dataset(records, media_root, prompt, args.pixels, args.pixels)
    reward_funcs, weights = build_reward_funcs(
        {"preset": "preresq", "params": {}, "format_weight": 1.0}, 5, "tagged")

    # Generation throughput alone: one batch of images x responses, 256 new tokens each.
    rows = [dataset[i] for i in range(args.images)]
    texts = [processor.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False)
             for r in rows]
    inputs = processor(text=texts, images=[im for r in rows for im in r["images"]], padding=True,
                       padding_side="left", return_tensors="pt").to(device)
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                             do_sample=True, num_return_sequences=args.responses)
    if cuda:
        torch.cuda.synchronize()
    gen_s = time.perf_counter() - t0
    new_tokens = (out.shape[1] - inputs["input_ids"].shape[1]) * out.shape[0]

    step_times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            step_times.append(time.perf_counter() - self.t)

    config = GRPOConfig(
        output_dir=str(args.work), num_generations=args.responses,
        per_device_train_batch_size=args.images * args.responses, max_completion_length=args.tokens,
        max_steps=args.steps, learning_rate=1e-5, beta=0.04, temperature=1.0, bf16=cuda,
        use_cpu=not cuda, gradient_checkpointing=cuda, report_to=[], logging_steps=1,
        save_strategy="no", reward_weights=weights, dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer = GRPOTrainer(model=model, processing_class=processor, reward_funcs=reward_funcs,
                          args=config, train_dataset=dataset, callbacks=[StepTimer()])
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    result = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "parameters": n_params,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "batch": f"{args.images} images x {args.responses} responses, {args.tokens} tokens",
        "generate_s": round(gen_s, 2),
        "generate_tokens_per_s": round(new_tokens / gen_s, 1),
        "step_s": [round(t, 2) for t in step_times],
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "last_log": logs[-1] if logs else None,
    }
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
