"""Config switches that real runs use: LoRA, frozen vision, DeepSpeed choice, vLLM check."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from preresq.config import compose
from preresq.models import load_model, load_processor
from preresq.paths import CONFIG_DIR
from preresq.prompts import build_messages
from preresq.training.train import check_vllm, grpo_args


def _tiny_with(tiny_model_dir, **switches):
    """The tiny model config pointed at the session's tiny folder, plus switches."""
    cfg = compose("train", ["+experiment=smoke"]).model
    return OmegaConf.merge(cfg, {"name_or_path": str(tiny_model_dir), **switches})


def _lora_section():
    # The LoRA settings of the shipped experiment, not a copy that could drift from it.
    return OmegaConf.to_container(compose("train", ["+experiment=iqa_6k_lora"]).model.lora)


def test_lora_trains_adapters_only_and_frozen_vision_stays_frozen(tiny_model_dir):
    model = load_model(_tiny_with(tiny_model_dir, lora=_lora_section(), freeze_vision=True), training=True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all("language_model" in n for n in trainable)  # the target regex: LM projections only
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".visual." in n)


def test_frozen_vision_alone_keeps_the_language_model_trainable(tiny_model_dir):
    model = load_model(_tiny_with(tiny_model_dir, freeze_vision=True), training=True)
    vision = [p.requires_grad for n, p in model.named_parameters() if ".visual." in n]
    language = [p.requires_grad for n, p in model.named_parameters() if "language_model" in n]
    assert vision and not any(vision)
    assert language and all(language)


def test_lora_checkpoint_loads_merged_with_the_same_outputs(tiny_model_dir, tmp_path):
    cfg = _tiny_with(tiny_model_dir, lora=_lora_section())
    model = load_model(cfg, training=True)
    torch.manual_seed(0)
    with torch.no_grad():  # lora_B starts at zero; give the adapters a real effect
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()

    processor = load_processor(cfg)
    text = processor.apply_chat_template(build_messages("demo_digit", 1), add_generation_prompt=True,
                                         tokenize=False)
    inputs = processor(text=[text], images=[Image.new("RGB", (56, 56), (200, 40, 90))], return_tensors="pt")
    model.eval()
    with torch.no_grad():
        expected = model(**inputs).logits
        merged = load_model(cfg, path=str(tmp_path / "adapter"))  # inference: merged
        base = load_model(_tiny_with(tiny_model_dir))
        got, plain = merged(**inputs).logits, base(**inputs).logits
    assert not hasattr(merged, "peft_config")
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(got, plain, atol=1e-3)  # the adapters did change the model


def test_deepspeed_config_is_chosen_by_name_or_path(tmp_path):
    cfg = compose("train", ["+experiment=smoke", "trainer.deepspeed=zero2"])
    args = grpo_args(cfg, tmp_path, [1.0, 1.0], "main")
    assert Path(args.deepspeed) == CONFIG_DIR / "deepspeed" / "zero2.json"
    cfg = compose("train", ["+experiment=smoke", "trainer.deepspeed=zero9"])
    with pytest.raises(FileNotFoundError, match="zero9"):
        grpo_args(cfg, tmp_path, [1.0, 1.0], "main")


def test_use_vllm_without_vllm_fails_at_start(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(RuntimeError, match="vllm is not installed"):
        check_vllm(compose("train", ["+experiment=smoke", "trainer.args.use_vllm=true"]))
    check_vllm(compose("train", ["+experiment=smoke"]))  # not asked for: no error
