"""Throughput of batched greedy generation for a Qwen2.5-VL-3B-sized model (GPU check).

Builds Qwen2.5-VL with the real 3B sizes from a config dict (no download, random weights,
bf16 on the GPU), feeds batches of one image (448 x 448 -> 256 visual tokens) plus a short,
varying prompt (left padded, as evaluation does), and times ``generate`` with exactly
``--new-tokens`` new tokens per item (``min_new_tokens`` = ``max_new_tokens``, so random
weights cannot stop early). Prints a JSON summary: items/s and tokens/s per batch size and
the peak GPU memory.

    python scripts/gpu_eval_check.py                       # 3B sizes, cuda, batch 1 16 64
    python scripts/gpu_eval_check.py --tiny --device cpu   # tiny sizes: checks the script

Self-contained: needs only torch and transformers (no tokenizer, no project imports).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch

# Token ids of the real Qwen2.5-VL vocabulary.
QWEN_IDS = {"bos_token_id": 151643, "eos_token_id": 151645, "pad_token_id": 151643,
            "im_start": 151644, "vision_start_token_id": 151652, "vision_end_token_id": 151653,
            "image_token_id": 151655, "video_token_id": 151656}

# Qwen/Qwen2.5-VL-3B-Instruct config.json, the fields that set sizes and behaviour.
QWEN25_VL_3B = {
    "text": {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008,
             "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2,
             "max_position_embeddings": 128000, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
             "mrope_section": [16, 24, 24], "tie_word_embeddings": True},
    "vision": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
               "out_hidden_size": 2048, "patch_size": 14, "spatial_merge_size": 2,
               "temporal_patch_size": 2, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
               "tokens_per_second": 2, "hidden_act": "silu", "in_channels": 3},
    "ids": QWEN_IDS,
}

# The same architecture at toy sizes, for a CPU run of this script.
TINY = {
    "text": {"vocab_size": 1024, "hidden_size": 64, "intermediate_size": 128,
             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
             "mrope_section": [2, 3, 3], "tie_word_embeddings": True},
    "vision": {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
               "out_hidden_size": 64, "patch_size": 14, "spatial_merge_size": 2,
               "temporal_patch_size": 2, "window_size": 112, "fullatt_block_indexes": [1],
               "tokens_per_second": 2, "hidden_act": "silu", "in_channels": 3},
    "ids": {"bos_token_id": 1000, "eos_token_id": 1001, "pad_token_id": 1000, "im_start": 1002,
            "vision_start_token_id": 1003, "vision_end_token_id": 1004, "image_token_id": 1005,
            "video_token_id": 1006},
}


def build_config(sizes: dict):
    """A ``Qwen2_5_VLConfig`` from the size tables above (transformers 4.5x and 5.x)."""
    from transformers import Qwen2_5_VLConfig

    text = dict(sizes["text"])
    section = text.pop("mrope_section")
    rope = {"rope_type": "default", "mrope_section": section, "rope_theta": text["rope_theta"]}
    ids = {k: v for k, v in sizes["ids"].items() if k != "im_start"}
    text.update(rope_scaling=dict(rope, type="mrope"), **{k: ids[k] for k in
                                                          ("bos_token_id", "eos_token_id", "pad_token_id")})
    config = Qwen2_5_VLConfig(text_config=text, vision_config=dict(sizes["vision"]), **ids,
                              tie_word_embeddings=text["tie_word_embeddings"])
    return config


def make_batch(sizes: dict, batch_size: int, image_side: int, seed: int, device) -> dict:
    """Model inputs for ``batch_size`` items: chat-like ids with one image, left padded."""
    ids, vision = sizes["ids"], sizes["vision"]
    patch, merge, tp = vision["patch_size"], vision["spatial_merge_size"], vision["temporal_patch_size"]
    grid = image_side // patch
    image_tokens = grid * grid // (merge * merge)
    gen = torch.Generator().manual_seed(seed)
    vocab = min(sizes["text"]["vocab_size"], 150000) - 1
    rows = []
    for i in range(batch_size):
        prompt_len = 40 + (i * 7) % 24  # different lengths: real left padding
        head = torch.randint(0, vocab, (6,), generator=gen)
        tail = torch.randint(0, vocab, (prompt_len,), generator=gen)
        rows.append(torch.cat([
            torch.tensor([ids["im_start"]]), head, torch.tensor([ids["vision_start_token_id"]]),
            torch.full((image_tokens,), ids["image_token_id"]), torch.tensor([ids["vision_end_token_id"]]),
            tail, torch.tensor([ids["eos_token_id"], ids["im_start"]]),
        ]))
    width = max(len(r) for r in rows)
    input_ids = torch.full((batch_size, width), ids["pad_token_id"], dtype=torch.long)
    attention_mask = torch.zeros((batch_size, width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, width - len(r):] = r
        attention_mask[i, width - len(r):] = 1
    patch_dim = vision["in_channels"] * tp * patch * patch
    pixel_values = torch.randn(batch_size * grid * grid, patch_dim, generator=gen)
    image_grid_thw = torch.tensor([[1, grid, grid]] * batch_size)
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device),
            "pixel_values": pixel_values.to(device), "image_grid_thw": image_grid_thw.to(device)}


def timed_generate(model, batch: dict, new_tokens: int, pad_id: int, device) -> tuple[float, int]:
    """Seconds for one greedy ``generate`` of exactly ``new_tokens`` tokens per item."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             do_sample=False, repetition_penalty=1.0, pad_token_id=pad_id,
                             use_cache=True)  # greedy, penalty 1.0: the evaluation's decoding
    sync()
    return time.perf_counter() - start, out.shape[1] - batch["input_ids"].shape[1]


def run(args: argparse.Namespace) -> dict:
    from transformers import Qwen2_5_VLForConditionalGeneration

    sizes = TINY if args.tiny else QWEN25_VL_3B
    device = torch.device(args.device)
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}[args.dtype]
    torch.manual_seed(args.seed)
    config = build_config(sizes)
    config._attn_implementation = args.attn
    start = time.perf_counter()
    with device:  # initialise the random weights directly on the device
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
    model.eval()
    build_s = time.perf_counter() - start
    n_params = sum(p.numel() for p in model.parameters())
    cuda = device.type == "cuda"
    weights_gib = torch.cuda.memory_allocated(device) / 2**30 if cuda else None
    pad_id = sizes["ids"]["pad_token_id"]

    results = []
    for bs in args.batch_sizes:
        batch = make_batch(sizes, bs, args.image_side, args.seed + bs, device)
        timed_generate(model, batch, min(4, args.new_tokens), pad_id, device)  # warm-up
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        seconds, generated = timed_generate(model, batch, args.new_tokens, pad_id, device)
        if generated != args.new_tokens:
            raise RuntimeError(f"batch {bs}: generated {generated} tokens, expected {args.new_tokens}")
        row = {"batch_size": bs, "seconds": round(seconds, 3),
               "items_per_s": round(bs / seconds, 3),
               "new_tokens_per_s": round(bs * generated / seconds, 1),
               "prompt_tokens": int(batch["input_ids"].shape[1])}
        if cuda:
            row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        results.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        del batch

    base = results[0]["items_per_s"]
    return {
        "model": "Qwen2.5-VL tiny (random)" if args.tiny else "Qwen2.5-VL-3B architecture (random weights)",
        "parameters": n_params,
        "dtype": args.dtype, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "attn_implementation": args.attn, "image_side": args.image_side,
        "new_tokens": args.new_tokens, "build_seconds": round(build_s, 2),
        "weights_memory_gib": None if weights_gib is None else round(weights_gib, 2),
        "results": results,
        "speedup_vs_first": {r["batch_size"]: round(r["items_per_s"] / base, 2) for r in results},
        "peak_memory_gib": max((r.get("peak_memory_gib") or 0) for r in results) if cuda else None,
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="toy sizes (CPU check of the script)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default=None, help="bfloat16 (default on cuda) or float32")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--new-tokens", type=int, default=None)
    parser.add_argument("--image-side", type=int, default=None, help="pixels; a multiple of 28")
    parser.add_argument("--attn", default="sdpa")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the JSON summary here")
    args = parser.parse_args(argv)
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    args.batch_sizes = args.batch_sizes or ([1, 2, 4] if args.tiny else [1, 16, 64])
    args.new_tokens = args.new_tokens or (8 if args.tiny else 256)
    args.image_side = args.image_side or (112 if args.tiny else 448)
    if args.image_side % 28:
        parser.error(f"--image-side {args.image_side} is not a multiple of 28")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    summary = run(args)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
