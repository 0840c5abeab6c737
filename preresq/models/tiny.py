"""A tiny, randomly initialised Qwen2.5-VL (or Qwen2-VL) built offline.

Tests, the smoke run and the CPU demo need a real model class, a real processor and a real
chat template, but no download. ``build_tiny_model`` writes a folder that
``AutoProcessor`` / ``AutoModelForImageTextToText.from_pretrained`` load exactly like a hub
checkpoint, so every code path downstream is the one used with real weights.

The tokenizer is a byte-level BPE trained on a small English corpus *without digits*, so
each digit stays a single token (a random model then emits numbers now and then), plus
Qwen's special tokens. The chat template is Qwen2-VL's (shared by Qwen2.5-VL), as shipped
with TRL.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

# Qwen2-VL / Qwen2.5-VL special tokens, in the order of the real vocabulary's added tokens.
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# Words the prompts and answers use, so that BPE merges make them short token sequences.
_CORPUS = """
system user assistant You are a helpful assistant. image video quality assessment rate
rating ratings the of and a to in is it this that with for as on be by from at or an
expert look carefully judge human viewer would first reason about what you see inside
think answer then five aspects scale worst best saturation granularity sharpness
foreground background write one per line each number two decimals order how good
picture photographer describe flaws strengths finish holding poor excellent visual
distortions such blur noise compression colour color problems mosaic frames sampled
across whole time left right top bottom next single frames taken full detail motion
smoothness temporal consistency scene content spatial global local bad digit image is
sharp blurry noisy clean bright dark contrast sky grass face cat coffee rocket coins
""".split()


def _corpus_lines() -> list[str]:
    words = _CORPUS + ["<think>", "</think>", "<answer>", "</answer>"]
    return [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)] * 4


def _config_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def build_tokenizer(bpe_vocab_size: int = 300):
    """A Qwen2 tokenizer: byte-level BPE (digits stay single tokens) + Qwen special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    raw.train_from_iterator(_corpus_lines(), trainer)
    raw.add_special_tokens(SPECIAL_TOKENS)
    return Qwen2TokenizerFast(
        tokenizer_object=raw,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )


def _model_config(architecture: str, tokenizer, s: dict):
    """A Qwen2.5-VL / Qwen2-VL config with the given sizes and the tokenizer's token ids."""
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    head_dim = s["text_hidden_size"] // s["text_heads"]
    # M-RoPE splits each head's rotary half-dimension over (time, height, width).
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=s["text_hidden_size"],
        intermediate_size=s["text_intermediate_size"],
        num_hidden_layers=s["text_layers"],
        num_attention_heads=s["text_heads"],
        num_key_value_heads=s["text_kv_heads"],
        max_position_embeddings=4096,
        initializer_range=s["initializer_range"],
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(
        depth=s["vision_depth"],
        hidden_size=s["vision_hidden_size"],
        intermediate_size=s["vision_intermediate_size"],
        num_heads=s["vision_heads"],
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=s["text_hidden_size"],
        initializer_range=s["initializer_range"],
    )
    common = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    if architecture == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig

        vision.update(window_size=112, fullatt_block_indexes=[s["vision_depth"] - 1])
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **common)
    if architecture == "qwen2_vl":
        from transformers import Qwen2VLConfig

        vision = dict(depth=s["vision_depth"], embed_dim=s["vision_hidden_size"],
                      hidden_size=s["text_hidden_size"], mlp_ratio=2, num_heads=s["vision_heads"],
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                      initializer_range=s["initializer_range"])
        return Qwen2VLConfig(text_config=text, vision_config=vision, **common)
    raise ValueError(f"unknown tiny architecture {architecture!r}; use qwen2_5_vl or qwen2_vl")


DEFAULTS = dict(
    architecture="qwen2_5_vl",
    text_hidden_size=64, text_layers=2, text_heads=4, text_kv_heads=2, text_intermediate_size=128,
    vision_hidden_size=32, vision_depth=2, vision_heads=2, vision_intermediate_size=64,
    initializer_range=0.1, bpe_vocab_size=300, seed=0,
    # True: ship Qwen2.5-VL-7B-Instruct's generation_config.json (its chat sampling
    # defaults), so tests see the quirk a real checkpoint brings.
    instruct_generation_config=False,
)

# Qwen2.5-VL-7B-Instruct's generation_config.json, as shipped (token ids are the tiny's own).
INSTRUCT_GENERATION = dict(do_sample=True, repetition_penalty=1.05, temperature=0.1, top_k=1,
                           top_p=0.001)


def _identity_settings(s: dict) -> dict:
    """Settings that name the folder; an option left at its off value is left out, so
    folders built before the option existed keep their names."""
    return {k: v for k, v in s.items() if not (k == "instruct_generation_config" and not v)}


def default_tiny_dir(settings: dict | None = None, cache_dir=None) -> Path:
    """Cache folder for a tiny model: one per distinct set of settings."""
    s = {**DEFAULTS, **(settings or {})}
    if cache_dir is None:
        from preresq.config import load_paths

        cache_dir = load_paths().cache_dir
    return Path(cache_dir) / "models" / f"tiny-{s['architecture']}-{_config_hash(_identity_settings(s))}"


def build_tiny_model(out_dir: str | os.PathLike, overwrite: bool = False, **settings) -> Path:
    """Build (once) a tiny random Qwen2.5-VL/Qwen2-VL checkpoint folder and return its path.

    The folder holds config, weights, tokenizer, image/video processor configs and the
    chat template, like a hub checkpoint. Building is deterministic for given settings;
    an existing complete folder is reused unless ``overwrite``.
    """
    import torch
    from transformers import (
        AutoModelForImageTextToText,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    s = {**DEFAULTS, **settings}
    unknown = set(s) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown tiny model settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    out_dir = Path(out_dir)
    stamp = out_dir / "preresq_tiny.json"
    if stamp.is_file() and not overwrite and json.loads(stamp.read_text()) == _identity_settings(s):
        return out_dir

    tokenizer = build_tokenizer(s["bpe_vocab_size"])
    config = _model_config(s["architecture"], tokenizer, s)
    torch.manual_seed(s["seed"])
    model = AutoModelForImageTextToText.from_config(config)
    # Pixel budgets are the processor's defaults; runs override them from the model config.
    size = {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}  # pixel counts, not sides
    image_processor = Qwen2VLImageProcessor(size=size)
    video_processor = Qwen2VLVideoProcessor(size=dict(size))
    processor_cls = Qwen2_5_VLProcessor if s["architecture"] == "qwen2_5_vl" else Qwen2VLProcessor
    processor = processor_cls(image_processor=image_processor, tokenizer=tokenizer,
                              video_processor=video_processor, chat_template=qwen2_5_vl_chat_template)
    tokenizer.chat_template = qwen2_5_vl_chat_template

    # Write into a temporary sibling and rename: a half-built folder never looks complete.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    if s["instruct_generation_config"]:
        from transformers import GenerationConfig

        ids = {k: getattr(config.text_config, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
        model.generation_config = GenerationConfig(**INSTRUCT_GENERATION, **ids)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    (tmp / "preresq_tiny.json").write_text(json.dumps(_identity_settings(s), indent=2, sort_keys=True))
    if out_dir.exists():
        shutil.rmtree(out_dir, ignore_errors=True)
    try:
        os.replace(tmp, out_dir)
    except OSError:
        # Another process finished the same build first: keep its folder if it is whole.
        shutil.rmtree(tmp, ignore_errors=True)
        if not (stamp.is_file() and json.loads(stamp.read_text()) == _identity_settings(s)):
            raise
    return out_dir


def num_parameters(path: str | os.PathLike) -> int:
    """Parameter count of a saved model folder (for docs and tests)."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(path)
    return sum(p.numel() for p in model.parameters())
