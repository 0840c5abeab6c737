"""Shared fixtures: the tiny model folder (built once per session, offline)."""

import os

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run, so a CI result is reproducible and a
# slow shrink of a chance counterexample cannot stall CI; tests set their own max_examples.
settings.register_profile("preresq", derandomize=True, deadline=None)
settings.load_profile("preresq")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Qwen2.5-VL checkpoint folder, built like the one ``model=tiny`` uses."""
    from preresq.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen2_5_vl")


@pytest.fixture(scope="session")
def digit_model_dir(tiny_model_dir, tmp_path_factory):
    """A copy of the tiny model that rates: asked with ``prompt=demo_digit`` its first
    token is a digit 1-5 that depends on the image. Its output layer keeps only those five
    rows (the others give 0) and its other matrices are doubled, so that the picture moves
    the choice (at the tiny model's own scale every image gets the same answer). For tests
    that need valid, varied scores from a real model without training one."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("digit") / "qwen2_5_vl"
    shutil.copytree(tiny_model_dir, folder)
    digits = AutoTokenizer.from_pretrained(folder).convert_tokens_to_ids([str(d) for d in range(1, 6)])
    weights = load_file(str(folder / "model.safetensors"))
    for name, value in weights.items():
        if value.ndim >= 2 and name != "lm_head.weight":
            weights[name] = value * 2.0
    keep = torch.zeros(weights["lm_head.weight"].shape[0], 1)
    keep[digits] = 1.0
    weights["lm_head.weight"] = weights["lm_head.weight"] * keep
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
