"""scripts/gpu_eval_check.py on CPU: the script's own path (benchmark written on the fly,
evaluate() with each decode path, the summary), with the tiny model and with the 3B
builder at toy sizes (the GPU run itself cannot happen here)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from preresq.paths import REPO_ROOT


def _script():
    spec = importlib.util.spec_from_file_location("gpu_eval_check", REPO_ROOT / "scripts" / "gpu_eval_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_eval_check"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tiny_run_on_cpu_writes_the_summary(tmp_path):
    script = _script()
    out = tmp_path / "gpu_eval.json"
    assert script.main(["--tiny", "--device", "cpu", "--paths", "dynamic", "static", "--spaq-size", "800", "600",
                        "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    runs = {r["run"]: r for r in summary["runs"]}
    assert list(runs) == ["dynamic-compare", "static-compare", "default"]  # no compiling first
    default, dynamic, static = runs["default"], runs["dynamic-compare"], runs["static-compare"]
    assert default["run"] == "default" and default["items"] == 6 + 2  # KADID- and SPAQ-size items
    assert default["new_tokens_per_s"] > 0 and default["ms_per_decode_step"] > 0
    assert (dynamic["cache_implementation"], static["cache_implementation"]) == (None, "static")
    assert dynamic["items"] == static["items"] == 4
    assert summary["comparison"]["static_vs_dynamic"]["items_identical"] == 4


@pytest.mark.slow
def test_3b_builder_at_toy_sizes(tmp_path, monkeypatch):
    """The 3B branch (config from the size table, random weights built on the device,
    tiny tokenizer ids) with the sizes shrunk so that it runs on CPU."""
    script = _script()
    sizes = json.loads(json.dumps(script.QWEN25_VL_3B))
    sizes["text"].update(vocab_size=2048, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, mrope_section=[2, 3, 3])
    sizes["vision"].update(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                           out_hidden_size=64, fullatt_block_indexes=[1])
    monkeypatch.setattr(script, "QWEN25_VL_3B", sizes)
    args = script.parse_args(["--device", "cpu", "--kadid", "2", "--spaq", "1", "--spaq-size", "600", "400",
                              "--new-tokens", "3", "--compare-items", "2", "--compare-tokens", "3",
                              "--paths", "dynamic", "static", "--override", "model.max_pixels=50176",
                              "--out", str(tmp_path / "out.json")])
    summary = script.run(args)
    assert summary["dtype"] == "torch.bfloat16" and summary["parameters"] > 0
    assert [r["items"] for r in summary["runs"]] == [2, 2, 3]  # dynamic, static, default
    assert all(r["generate_calls"] >= 1 for r in summary["runs"])
    assert json.loads((tmp_path / "out.json").read_text())["runs"] == summary["runs"]


def test_3b_config_has_the_real_sizes_and_the_tokenizer_ids():
    from preresq.models.tiny import build_tokenizer

    script = _script()
    tokenizer = build_tokenizer()
    config = script.model_config(script.QWEN25_VL_3B, tokenizer)
    text = config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_key_value_heads, text.vocab_size) == \
        (2048, 36, 2, 151936)
    assert (config.vision_config.depth, config.vision_config.out_hidden_size) == (32, 2048)
    assert config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert text.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
