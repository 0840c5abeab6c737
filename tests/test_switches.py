"""Config switches that real runs use: LoRA, frozen vision, DeepSpeed choice, vLLM check."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from preresq.config import compose
from preresq.models import load_model, load_processor, lora_config
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


def _lora_trainer(tmp_path, tiny_model_dir, seed, name):
    """A stage's GRPOTrainer for the LoRA experiment's settings on the tiny model."""
    from preresq.training.train import build_trainer

    cfg = compose("train", ["+experiment=smoke", f"model.name_or_path={tiny_model_dir}",
                            "model.freeze_vision=true", f"seed={seed}"])
    cfg.model.lora = _lora_section()
    return build_trainer(cfg, str(tiny_model_dir), tmp_path / name, "main")


def test_lora_goes_through_trl_seeded_with_frozen_vision(tiny_model_dir, tmp_path):
    from peft import PeftModel

    first = _lora_trainer(tmp_path, tiny_model_dir, 1, "a")
    model = first.model
    assert isinstance(model, PeftModel)
    # TRL made the adapters (peft_config): not a "loaded adapter" with a frozen "ref" copy,
    # so the KL reference is the base model with adapters disabled.
    assert list(model.peft_config) == ["default"] and first.ref_model is None
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all("language_model" in n for n in trainable)  # the target regex: LM projections only
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".visual." in n)

    def adapters(trainer):
        return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_A" in n}

    same = adapters(_lora_trainer(tmp_path, tiny_model_dir, 1, "b"))
    other = adapters(_lora_trainer(tmp_path, tiny_model_dir, 2, "c"))
    mine = adapters(first)
    assert mine and all(torch.equal(mine[n], same[n]) for n in mine)  # seed decides the init
    assert not all(torch.equal(mine[n], other[n]) for n in mine)


def test_frozen_vision_alone_keeps_the_language_model_trainable(tiny_model_dir):
    model = load_model(_tiny_with(tiny_model_dir, freeze_vision=True), training=True)
    vision = [p.requires_grad for n, p in model.named_parameters() if ".visual." in n]
    language = [p.requires_grad for n, p in model.named_parameters() if "language_model" in n]
    assert vision and not any(vision)
    assert language and all(language)


def test_lora_checkpoint_loads_merged_with_the_same_outputs(tiny_model_dir, tmp_path):
    from peft import get_peft_model

    cfg = _tiny_with(tiny_model_dir, lora=_lora_section())
    model = get_peft_model(load_model(cfg, training=True), lora_config(cfg))
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


def test_zero3_config_exists_before_the_model_loads(tiny_model_dir, tmp_path, monkeypatch):
    """Every stage builds GRPOConfig (which installs the DeepSpeed config) before the model,
    so from_pretrained partitions ZeRO-3 weights while loading (zero.Init) in every stage."""
    import preresq.models
    from preresq.training.train import build_trainer

    seen = []

    class Stop(Exception):
        pass

    def spy(*args, **kwargs):
        from transformers.integrations import is_deepspeed_zero3_enabled

        seen.append(is_deepspeed_zero3_enabled())
        raise Stop

    monkeypatch.setattr(preresq.models, "load_model", spy)
    cfg = compose("train", ["+experiment=smoke", f"model.name_or_path={tiny_model_dir}",
                            "trainer.deepspeed=zero3"])
    for stage in ("one", "two"):
        with pytest.raises(Stop):
            build_trainer(cfg, str(tiny_model_dir), tmp_path / stage, stage)
    assert seen == [True, True]


def test_vllm_model_length_from_the_pixel_budget():
    from preresq.training import vllm

    assert vllm.image_tokens(28 * 28 * 10 + 5) == 10
    # KADID under the 7B config: one image of at most 12,845,056 pixels = 16,384 tokens.
    assert vllm.visual_tokens("image", 12845056) == 16384
    assert vllm.visual_tokens("image", 12845056, images_per_item=2) == 32768
    # A video: mosaic (802,816 px = 1,024 tokens) + 3 local frames (401,408 px = 512 each).
    video = compose("train", ["+experiment=vqa_28k"]).video
    assert vllm.visual_tokens("video", 12845056, 1, video) == 1024 + 3 * 512
    # Each view is capped at the model's max_pixels; a crop adds size^2 pixels.
    assert vllm.visual_tokens("video", 28 * 28 * 100, 1, {"mosaic_max_pixels": 802816, "num_local": 1,
                                                          "local_max_pixels": 401408,
                                                          "crop": {"size": 280}}) == 100 + 100 + 100
    assert vllm.max_model_length(16384, 120, 256) == 16760


def test_vllm_colocate_gets_the_model_length(tmp_path):
    from trl import GRPOConfig

    if "vllm_max_model_length" not in GRPOConfig.__dataclass_fields__:
        pytest.skip("this TRL has no vllm_max_model_length")
    on = ["+experiment=smoke", "trainer.args.use_vllm=true", "trainer.args.vllm_mode=colocate"]
    args = grpo_args(compose("train", on), tmp_path, [1.0, 1.0], "main", vllm_length=1234)
    assert args.vllm_max_model_length == 1234
    server = compose("train", [*on[:2], "trainer.args.vllm_mode=server"])
    assert grpo_args(server, tmp_path, [1.0, 1.0], "main", vllm_length=1234).vllm_max_model_length is None


@pytest.mark.slow
def test_a_continued_lora_stage_keeps_the_initial_reference(tiny_model_dir, tmp_path):
    """Stage 2 of a LoRA run loads stage 1's adapters; TRL would give it a frozen "ref" copy of
    them (the stage-1 policy). With reference=initial the reference is the base model."""
    from peft import get_peft_model

    from preresq.training.train import build_trainer

    cfg = _tiny_with(tiny_model_dir, lora=_lora_section())
    get_peft_model(load_model(cfg, training=True), lora_config(cfg)).save_pretrained(tmp_path / "stage1")
    load_processor(cfg).save_pretrained(tmp_path / "stage1")

    def stage_two(reference):
        run = compose("train", ["+experiment=smoke", f"model.name_or_path={tiny_model_dir}",
                                f"reference={reference}"])
        run.model.lora = _lora_section()
        return build_trainer(run, str(tmp_path / "stage1"), tmp_path / reference, "two",
                             initial_path=str(tiny_model_dir))

    initial = stage_two("initial").model
    assert list(initial.peft_config) == ["default"]  # reference: adapters disabled = the base
    assert any(p.requires_grad for n, p in initial.named_parameters() if "lora_" in n)
    assert "ref" in stage_two("previous").model.peft_config
