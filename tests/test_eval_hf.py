"""HFPredictor on the tiny Qwen2.5-VL: left-padded batches decode like single items."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from preresq.config import compose
from preresq.evaluation.predict import Decoding, HFPredictor, Request
from preresq.prompts import build_messages


@pytest.fixture(scope="module")
def tiny():
    from preresq.models import load_model, load_processor, resolve_model_path

    cfg = compose("eval", ["model=tiny"])
    path = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    return load_model(cfg.model, path=path), load_processor(cfg.model, path=path)


def _requests(prompts=("demo_digit", "iqa", "demo_digit")):
    # Different templates and image sizes: the prompts have different lengths, so the
    # batch really is left padded.
    sizes = [(56, 56), (112, 84), (84, 112)]
    images = [Image.new("RGB", size, (40 * i, 200 - 50 * i, 90)) for i, size in enumerate(sizes)]
    return [Request(build_messages(t, 1), [im]) for t, im in zip(prompts, images)]


def test_batched_greedy_equals_one_at_a_time(tiny):
    model, processor = tiny
    predictor = HFPredictor(model, processor, Decoding(max_new_tokens=12))
    requests = _requests()
    batched = predictor.generate(requests)
    single = [predictor.generate([r])[0] for r in requests]
    assert batched == single
    assert all(len(c) == 1 and isinstance(c[0], str) for c in batched)
    assert predictor.generate(requests) == batched  # greedy: the same every time


def test_prompt_is_the_chat_template_with_generation_prompt(tiny):
    model, processor = tiny
    predictor = HFPredictor(model, processor, Decoding(max_new_tokens=2))
    text = predictor.prompt_text(build_messages("demo_digit", 1))
    assert text.rstrip().endswith("assistant")
    assert "<|image_pad|>" in text


def test_sampling_gives_num_samples_per_request(tiny):
    model, processor = tiny
    decoding = Decoding(max_new_tokens=6, do_sample=True, num_samples=3, seed=1)
    predictor = HFPredictor(model, processor, decoding)
    out = predictor.generate(_requests())
    assert [len(c) for c in out] == [3, 3, 3]
    torch.manual_seed(1)
    again = HFPredictor(model, processor, decoding).generate(_requests())
    assert again == out  # seeded
    assert predictor.generation_config.do_sample and predictor.generation_config.num_return_sequences == 3


def test_greedy_config_sets_no_sampling_fields(tiny):
    model, processor = tiny
    cfg = HFPredictor(model, processor, Decoding(max_new_tokens=5)).generation_config
    assert cfg.do_sample is False and cfg.max_new_tokens == 5
    assert cfg.temperature is None and cfg.top_p is None and cfg.top_k is None
