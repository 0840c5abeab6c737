"""The tiny offline model: loads like a hub checkpoint, runs forward and generate."""

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from preresq.models import ModelNotFoundError, load_model, load_processor
from preresq.models.tiny import SPECIAL_TOKENS, build_tiny_model, num_parameters
from preresq.prompts import build_messages

TINY_CFG = OmegaConf.create({"name_or_path": None, "min_pixels": 3136, "max_pixels": 12544,
                             "dtype": "float32", "attn_implementation": "sdpa",
                             "freeze_vision": False, "lora": None})


def _image():
    return Image.radial_gradient("L").convert("RGB").resize((112, 112))


def test_tiny_folder_loads_with_auto_classes(tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    tok = processor.tokenizer
    for special in SPECIAL_TOKENS:
        assert tok.convert_tokens_to_ids(special) != tok.unk_token_id
        assert len(tok.tokenize(special)) == 1
    # Digits are single tokens, so a random model emits numbers now and then.
    assert all(len(tok.tokenize(d)) == 1 for d in "0123456789")
    assert 100_000 < num_parameters(tiny_model_dir) < 1_000_000


def test_forward_and_generate_with_image_through_chat_template(tiny_model_dir):
    processor = load_processor(TINY_CFG, path=str(tiny_model_dir))
    model = load_model(TINY_CFG, path=str(tiny_model_dir))
    text = processor.apply_chat_template(build_messages("iqa"), add_generation_prompt=True, tokenize=False)
    assert "<|vision_start|><|image_pad|><|vision_end|>" in text and text.endswith("<|im_start|>assistant\n")
    inputs = processor(text=[text], images=[_image()], return_tensors="pt")
    # 112 x 112 pixels -> 8 x 8 patches -> 16 tokens after the 2 x 2 merge.
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 16
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == model.config.text_config.vocab_size
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5 or out[0, -1] == processor.tokenizer.eos_token_id


def test_build_is_deterministic_and_reused(tmp_path):
    a = build_tiny_model(tmp_path / "a", seed=3)
    b = build_tiny_model(tmp_path / "b", seed=3)
    sa = (a / "model.safetensors").read_bytes()
    assert sa == (b / "model.safetensors").read_bytes()
    mtime = (a / "model.safetensors").stat().st_mtime_ns
    build_tiny_model(tmp_path / "a", seed=3)
    assert (a / "model.safetensors").stat().st_mtime_ns == mtime


def test_qwen2_vl_variant(tmp_path):
    from transformers import AutoModelForImageTextToText

    path = build_tiny_model(tmp_path / "q2", architecture="qwen2_vl")
    assert type(AutoModelForImageTextToText.from_pretrained(path)).__name__ == "Qwen2VLForConditionalGeneration"


def test_missing_weights_fail_with_clear_message(tmp_path):
    cfg = OmegaConf.merge(TINY_CFG, {"name_or_path": str(tmp_path / "nowhere")})
    with pytest.raises(ModelNotFoundError, match="(?s)nowhere.*model.name_or_path="):
        load_processor(cfg)


def test_hub_id_offline_fails_with_download_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = OmegaConf.merge(TINY_CFG, {"name_or_path": "Qwen/PreResQ-No-Such-Model"})
    with pytest.raises(ModelNotFoundError, match="(?s)not a local folder.*huggingface-cli download Qwen/PreResQ-No-Such-Model"):
        load_processor(cfg)


def test_processor_pixel_budget_without_deprecated_kwargs(tiny_model_dir):
    """model.min_pixels/max_pixels reach the image and the video processor as ``size``
    (transformers >= 5 warns on every call given min_pixels/max_pixels), with the budget
    smart_resize gives for those bounds."""
    import warnings

    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    cfg = OmegaConf.merge(TINY_CFG, {"min_pixels": 6272, "max_pixels": 50176})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a FutureWarning "will be removed in v5.23" fails here
        processor = load_processor(cfg, path=str(tiny_model_dir))
        text = processor.apply_chat_template(build_messages("iqa"), add_generation_prompt=True,
                                             tokenize=False)
        out = processor(text=[text], images=[Image.new("RGB", (400, 300))], return_tensors="pt")
    for sub in (processor.image_processor, processor.video_processor):
        assert (sub.size.shortest_edge, sub.size.longest_edge) == (6272, 50176)
    h, w = smart_resize(300, 400, factor=28, min_pixels=6272, max_pixels=50176)
    assert out["image_grid_thw"].tolist() == [[1, h // 14, w // 14]]
    with pytest.raises(ValueError, match="set both"):
        load_processor(OmegaConf.merge(TINY_CFG, {"min_pixels": None}), path=str(tiny_model_dir))
