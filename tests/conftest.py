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
