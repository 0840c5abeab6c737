"""Decoding is ours: a checkpoint shipping Qwen2.5-VL-Instruct's generation settings
(top_k 1, top_p 0.001, temperature 0.1, repetition_penalty 1.05) changes neither the
evaluation's greedy answers nor the sampling of GRPO's rollouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file

from preresq.config import compose
from preresq.decoding import Decoding
from preresq.evaluation.hf_predictor import HFPredictor
from preresq.evaluation.requests import ItemPrompt


@pytest.fixture(scope="module")
def instruct_dir(tmp_path_factory):
    from preresq.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_instruct") / "m",
                            instruct_generation_config=True)


def _load(path):
    from preresq.models import load_model, load_processor

    cfg = compose("eval", ["model=tiny", f"model.name_or_path={path}"])
    return load_model(cfg.model, path=str(path)), load_processor(cfg.model, path=str(path))


def _requests():
    prompts = [ItemPrompt("demo_digit", 1, "bare"), ItemPrompt("iqa", 5, "tagged")]
    images = [Image.new("RGB", (56 + 28 * i, 56), (60 * i, 120, 200 - 60 * i)) for i in range(3)]
    return [prompts[i % 2].request([im]) for i, im in enumerate(images)]


def test_the_tiny_model_can_carry_the_instruct_settings(instruct_dir, tiny_model_dir):
    shipped = json.loads((instruct_dir / "generation_config.json").read_text())
    assert shipped["top_k"] == 1 and shipped["repetition_penalty"] == 1.05
    assert shipped["do_sample"] is True and shipped["temperature"] == 0.1
    a, b = load_file(str(instruct_dir / "model.safetensors")), load_file(str(tiny_model_dir / "model.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)  # same weights: only the settings differ
    model, _ = _load(instruct_dir)
    # Loading keeps the stop ids and drops every sampling default.
    assert model.generation_config.eos_token_id == shipped["eos_token_id"]
    assert model.generation_config.top_k != 1 and model.generation_config.repetition_penalty in (None, 1.0)
    assert not model.generation_config.do_sample


def test_eval_predictions_do_not_depend_on_the_checkpoint_settings(instruct_dir, tiny_model_dir):
    from transformers import GenerationConfig

    decoding = Decoding(max_new_tokens=16)
    plain = HFPredictor(*_load(tiny_model_dir), decoding).generate(_requests())
    model, processor = _load(instruct_dir)
    # Even with the shipped settings put back on the model (a model not loaded by us, e.g.
    # handed over by a trainer), the answers are the same.
    model.generation_config = GenerationConfig.from_pretrained(instruct_dir)
    predictor = HFPredictor(model, processor, decoding)
    assert predictor.generation_config.repetition_penalty == 1.0
    assert predictor.generation_config.do_sample is False
    # What generate() really decodes with, after transformers merged the model's config
    # into ours (it fills every field we leave None from model.generation_config).
    used = []
    prepare = model._prepare_generation_config

    def spy(*args, **kwargs):
        out = prepare(*args, **kwargs)
        used.append(out[0])
        return out

    model._prepare_generation_config = spy
    assert predictor.generate(_requests()) == plain
    assert used and all(not c.do_sample and c.repetition_penalty == 1.0 and c.top_k in (0, None)
                        and c.temperature in (1.0, None) for c in used)
    assert model.generation_config.top_k == 1  # restored after generate: nothing mutated


def test_decoding_refuses_to_defer_to_the_checkpoint():
    with pytest.raises(ValueError, match="repetition_penalty"):
        Decoding(repetition_penalty=None)
    cfg = Decoding(do_sample=True, temperature=0.7, top_k=20, num_samples=2).generation_config()
    assert (cfg.temperature, cfg.top_k, cfg.top_p, cfg.repetition_penalty) == (0.7, 20, 1.0, 1.0)


@pytest.mark.slow
def test_grpo_rollouts_are_sampled_with_the_instruct_settings(tmp_path):
    """TRL's rollouts from a checkpoint whose generation_config says top_k 1: the K
    completions of a group must still differ (top_k 1 would make them all equal)."""
    from preresq.models import resolve_model_path
    from preresq.parsing import completion_text
    from preresq.training.train import build_trainer

    cfg = compose("train", ["+experiment=smoke", f"output_dir={tmp_path / 'run'}",
                            "model.tiny.instruct_generation_config=true", "trainer.max_steps=1",
                            "trainer.args.save_steps=100", "trainer.args.max_completion_length=12"])
    init = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    assert json.loads((Path(init) / "generation_config.json").read_text())["top_k"] == 1
    trainer = build_trainer(cfg, init, tmp_path / "run" / "main", "main")
    seen = []
    reward = trainer.reward_funcs[0]

    def spy(*args, **kwargs):
        seen.extend(completion_text(c) for c in kwargs["completions"])
        return reward(*args, **kwargs)

    trainer.reward_funcs[0] = spy
    trainer.train()
    k = int(cfg.trainer.args.num_generations)
    groups = [seen[i:i + k] for i in range(0, len(seen), k)]
    assert groups and all(len(g) == k for g in groups)
    assert all(len(set(g)) > 1 for g in groups), groups


def test_vllm_backend_takes_every_setting_from_our_decoding(tmp_path, monkeypatch):
    """With a stand-in vllm module: the engine is told to ignore the checkpoint's
    generation_config.json and the sampling parameters are ours (greedy, penalty 1.0)."""
    import sys
    import types

    from omegaconf import OmegaConf

    from preresq.evaluation.vllm_backend import VLLMPredictor

    seen = {}
    fake = types.ModuleType("vllm")
    fake.LLM = lambda **kw: seen.setdefault("engine", kw)
    fake.SamplingParams = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", fake)
    model_cfg = OmegaConf.create({"dtype": "bfloat16", "min_pixels": 3136, "max_pixels": 12845056})
    predictor = VLLMPredictor(str(tmp_path), processor=None, decoding=Decoding(max_new_tokens=7),
                              model_cfg=model_cfg)
    assert seen["engine"]["generation_config"] == "vllm"
    s = predictor.params  # every SamplingParams is these plus the item's seed
    assert (s["temperature"], s["top_p"], s["top_k"], s["repetition_penalty"], s["n"], s["max_tokens"]) == \
        (0.0, 1.0, -1, 1.0, 1, 7)
