"""scripts/gpu_eval_check.py on CPU (the GPU run itself cannot happen here): every variant
recorded with its figures, a failing variant recorded while the rest run, a kill keeping
what finished; the figures' arithmetic (preresq.evaluation.gpu_figures); the 3B builder."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import types

import pytest

from preresq.evaluation import gpu_figures as fig
from preresq.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "gpu_eval_check.py"
TINY = ["--device", "cpu", "--tiny", "--spaq-size", "800", "600"]


def _script():
    spec = importlib.util.spec_from_file_location("gpu_eval_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_eval_check"] = module
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- figures

def test_bandwidth_is_the_device_found():
    assert fig.bandwidth_gbs("NVIDIA H100 80GB HBM3")[0] == 3350.0
    assert fig.bandwidth_gbs("NVIDIA H200")[0] == 4800.0
    assert fig.bandwidth_gbs("NVIDIA H100 PCIe")[0] == 2000.0
    gbs, note = fig.bandwidth_gbs("Some GPU")
    assert gbs is None and "Some GPU" in note
    assert fig.decode_floor_ms(10**9, 1000, 4, 100.0, None) is None


def test_floor_counts_weights_and_kv_reads():
    from preresq.evaluation.synthetic import QWEN25_VL_3B

    text = types.SimpleNamespace(**QWEN25_VL_3B["text"])
    kv = fig.kv_bytes_per_token(text, 2)
    assert kv == 2 * 36 * 2 * 128 * 2  # K and V, 36 layers, 2 KV heads of 128, bf16
    # 7 GB of weights + 128 rows x 400 tokens of KV at 3,350 GB/s
    assert fig.decode_floor_ms(7 * 10**9, kv, 128, 400, 3350) == pytest.approx(
        1000 * (7e9 + kv * 128 * 400) / 3350e9)
    assert fig.ms_per_step(2.0, 5.0, 1, 61) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        fig.ms_per_step(2.0, 5.0, 8, 8)
    assert fig.steady([9.0, 1.2, 1.1]) == 1.1 and fig.steady([3.0]) == 3.0


def test_record_writes_each_variant_goes_on_after_an_error_and_keeps_a_deadline(tmp_path):
    out = tmp_path / "r.json"
    record = fig.Record(out, {"model": "m"}, deadline_s=3600)

    def running():  # the file says which variant is running while it runs
        return {"seen": json.loads(out.read_text())["variants"]["a"]["status"]}

    def fails():
        raise RuntimeError("CUDA out of memory (simulated)")

    record.run("a", running)
    record.run("b", fails)
    record.run("c", lambda: {"x": 1})
    on_disk = json.loads(out.read_text())
    assert on_disk["model"] == "m" and list(on_disk["variants"]) == ["a", "b", "c"]
    assert on_disk["variants"]["a"]["seen"] == "running"
    b = on_disk["variants"]["b"]
    assert b["status"] == "error" and "out of memory" in b["error"] and "fails" in b["traceback"]
    assert on_disk["variants"]["c"] == {"status": "ok", "x": 1, "seconds": on_disk["variants"]["c"]["seconds"]}
    record.deadline_s = 0
    assert record.run("d", lambda: {})["status"] == "skipped"
    screen = fig.summary_table({**record.data, "device_name": "cpu", "device": "cpu", "batch": 1,
                                "bandwidth_gbs": None})
    assert "b                        error" in screen and "out of memory" in screen
    assert "d                        skipped" in screen and "deadline" in screen


# ----------------------------------------------------------------------------- the script

@pytest.mark.slow
def test_tiny_run_on_cpu_records_every_variant_and_survives_a_failing_one(tmp_path, monkeypatch, capsys):
    script = _script()
    real = script.profile_decode

    def profile_decode(check, name):  # the second profile fails as an OOM would
        if name == "default":
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(check, name)

    monkeypatch.setattr(script, "profile_decode", profile_decode)
    out = tmp_path / "gpu_eval.json"
    assert script.main([*TINY, "--paths", "dynamic", "static", "--out", str(out)]) == 1  # one failed
    data = json.loads(out.read_text())
    variants = data["variants"]
    assert list(variants) == ["profile_vision", "path:dynamic", "path:static", "profile_decode:static",
                              "profile_decode:default", "evaluate"]
    assert variants["profile_decode:default"]["status"] == "error"
    assert "out of memory" in variants["profile_decode:default"]["error"]
    assert all(v["status"] == "ok" for k, v in variants.items() if k != "profile_decode:default")
    assert data["bandwidth_gbs"] is None and "no GPU" in data["bandwidth_note"]
    for name in ("path:dynamic", "path:static"):
        path = variants[name]
        assert path["rows"] == 4 and path["new_tokens_per_row"] == 8 and len(path["long_call_seconds"]) == 3
        assert path["first_call_seconds"] == path["long_call_seconds"][0]
        assert path["steady_call_seconds"] == min(path["long_call_seconds"][1:])
        assert path["compile_seconds"] == pytest.approx(path["first_call_seconds"] - path["steady_call_seconds"],
                                                        abs=2e-3)
        # (steady long call - steady prefill-only call) / the 7 decode steps between them
        assert path["ms_per_decode_step"] == pytest.approx(
            1000 * (path["steady_call_seconds"] - min(path["prefill_only_call_seconds"][1:])) / 7, abs=0.5)
        assert "min_new_tokens" in path["new_tokens_note"]
        assert path["x_bandwidth_floor"] is None and path["memory"] == {"note": "no CUDA device: no GPU memory figures"}
    assert variants["path:static"]["same_tokens_as_dynamic"]["rows_identical"] == 4
    assert variants["path:static"]["cache_implementation"] == "static"
    step = variants["profile_decode:static"]
    assert step["time"] == "cpu" and step["top"][0]["self_ms_per_step"] > 0
    assert any(op["op"].startswith("aten::") for op in step["top"])
    vision = variants["profile_vision"]
    assert vision["images"] == 4 and vision["attention_calls"] > 0 and vision["top"]
    evaluate = variants["evaluate"]
    assert evaluate["items"] == 8 and evaluate["rows_generated"] == 8  # KADID- and SPAQ-size items
    assert "never stop" in evaluate["new_tokens_note"]
    screen = capsys.readouterr().out
    assert "profile_decode:default   error" in screen and "out of memory" in screen


@pytest.mark.slow
def test_a_kill_in_the_middle_keeps_what_finished(tmp_path):
    out = tmp_path / "gpu_eval.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *TINY, "--paths", "dynamic", "static",
                             "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if out.is_file() and json.loads(out.read_text())["variants"].get(
                    "path:dynamic", {}).get("status") == "ok":
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the script ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    data = json.loads(out.read_text())  # whole: written by rename, never half
    variants = data["variants"]
    assert variants["profile_vision"]["status"] == "ok"
    assert variants["path:dynamic"]["status"] == "ok" and "ms_per_decode_step" in variants["path:dynamic"]
    assert "evaluate" not in variants or variants["evaluate"]["status"] == "running"


@pytest.mark.slow
def test_3b_builder_at_toy_sizes(tmp_path, monkeypatch):
    """The 3B branch (config from the size table, random weights built on the device,
    tiny tokenizer ids) with the sizes shrunk so that it runs on CPU."""
    from preresq.evaluation import synthetic

    script = _script()
    sizes = json.loads(json.dumps(synthetic.QWEN25_VL_3B))
    sizes["text"].update(vocab_size=2048, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, mrope_section=[2, 3, 3])
    sizes["vision"].update(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                           out_hidden_size=64, fullatt_block_indexes=[1])
    monkeypatch.setattr(synthetic, "QWEN25_VL_3B", sizes)
    args = script.parse_args(["--device", "cpu", "--kadid", "2", "--spaq", "1", "--spaq-size", "600", "400",
                              "--new-tokens", "3", "--batch", "2", "--step-tokens", "3", "--paths", "dynamic",
                              "--profile-paths", "--skip-evaluate", "--override", "model.max_pixels=50176",
                              "--out", str(tmp_path / "out.json")])
    data = script.run(args)
    assert data["dtype"] == "torch.bfloat16" and data["parameters"] > 0
    assert data["kv_bytes_per_token"] == 2 * 2 * 2 * 16 * 2  # toy: 2 layers, 2 KV heads of 16
    assert [v["status"] for v in data["variants"].values()] == ["ok", "ok"]
    assert json.loads((tmp_path / "out.json").read_text())["variants"] == data["variants"]


def test_3b_config_has_the_real_sizes_and_the_tokenizer_ids():
    from preresq.evaluation.synthetic import QWEN25_VL_3B, model_config
    from preresq.models.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    config = model_config(QWEN25_VL_3B, tokenizer)
    text = config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_key_value_heads, text.vocab_size) == \
        (2048, 36, 2, 151936)
    assert (config.vision_config.depth, config.vision_config.out_hidden_size) == (32, 2048)
    assert config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert text.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
