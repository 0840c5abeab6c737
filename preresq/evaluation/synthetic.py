"""A synthetic benchmark and a random model at real sizes, for speed checks without data.

``write_benchmark`` writes images of noise with authors'-style label lists where the
``kadid10k_test`` and ``spaq`` cards look for them; ``random_model`` builds Qwen2.5-VL with
the real 3B sizes (``QWEN25_VL_3B``) and random weights straight on the device, with a
given tokenizer's special-token ids (the tiny one: no download). Used by
``scripts/gpu_eval_check.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
}

def write_benchmark(root: Path, kadid: int, spaq: int, spaq_size: tuple[int, int], seed: int) -> dict:
    """Images and authors'-style label lists where the kadid10k_test and spaq cards look."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    labels, data = root / "labels", root / "data"
    folders = {"kadid10k_test": data / "kadid10k" / "images", "spaq": data / "spaq" / "TestImage"}
    files = {"kadid10k_test": labels / "KADID-10K_test_set.txt", "spaq": labels / "GT_SPAQ.txt"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    plan = {"kadid10k_test": (kadid, (512, 384), "png"), "spaq": (spaq, spaq_size, "jpg")}
    for name, (count, (width, height), ext) in plan.items():
        lines = []
        for i in range(count):
            # Coarse noise upscaled: every image differs, and encoding stays fast.
            small = rng.integers(0, 255, (max(height // 16, 1), max(width // 16, 1), 3), dtype=np.uint8)
            image = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
            image.save(folders[name] / f"{name}_{i:04d}.{ext}", quality=90)
            lines.append(f"{name}_{i:04d}.{ext} {1 + 4 * rng.random():.3f}")
        files[name].write_text("\n".join(lines) + "\n")
    return {"paths.data_root": str(data), "paths.labels_root": str(labels)}



def random_model(sizes: dict, tokenizer, device, seed: int = 0):
    """Qwen2.5-VL of ``sizes`` with random bf16 weights initialised on ``device`` (no host
    copy), SDPA attention, ``tokenizer``'s special-token ids."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    config = model_config(sizes, tokenizer)
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config.update(**{k: getattr(config.text_config, k)
                                      for k in ("bos_token_id", "eos_token_id", "pad_token_id")})
    return model.eval()


def model_config(sizes: dict, tokenizer):
    """A ``Qwen2_5_VLConfig`` of ``sizes`` with ``tokenizer``'s special-token ids."""
    from transformers import Qwen2_5_VLConfig

    ids = {key: tokenizer.convert_tokens_to_ids(token) for key, token in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    text = dict(sizes["text"])
    section = text.pop("mrope_section")
    text["rope_scaling"] = {"rope_type": "default", "type": "mrope", "mrope_section": section,
                            "rope_theta": text["rope_theta"]}
    text.update(bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
                eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                pad_token_id=tokenizer.pad_token_id)
    return Qwen2_5_VLConfig(text_config=text, vision_config=dict(sizes["vision"]), **ids,
                            tie_word_embeddings=text["tie_word_embeddings"])


def text_weight_bytes(model) -> int:
    """Bytes of the weights one decode step reads: all but the vision tower."""
    visual = {id(p) for name, p in model.named_parameters() if ".visual." in f".{name}"}
    return sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in visual)
