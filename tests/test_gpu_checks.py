"""scripts/gpu_train_check.py and scripts/gpu_checks.sh on CPU (``--device cpu --tiny``): the
record after every variant, errors recorded and passed over, the policy folder's marker, and
the whole sitting with its training check killed in the middle."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from preresq.config import compose
from preresq.paths import REPO_ROOT
from preresq.training import model_sizes as ms


def _check():
    spec = importlib.util.spec_from_file_location("gpu_train_check", REPO_ROOT / "scripts" / "gpu_train_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    return check


def test_skips_what_would_pass_its_deadline_and_says_why(tmp_path):
    check = _check()
    out = tmp_path / "gpu_train.json"
    assert check.main(["--device", "cpu", "--tiny", "--variants", "small_full", "small_vllm", "3b_full",
                       "--deadline-s", "30", "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    variants = json.loads(out.read_text())["variants"]
    assert variants["small_full"] == {"status": "skipped", "expected_s": 100,
                                      "why": "expected 100 s, 30 s left of --deadline-s 30"}
    assert variants["small_vllm"]["status"] == "skipped"   # no vllm, or no CUDA: said so
    assert variants["3b_full"]["why"] == "--tiny"


def test_a_failing_variant_is_recorded_and_the_next_runs(tmp_path, monkeypatch):
    check = _check()
    out = tmp_path / "gpu_train.json"
    seen = []

    def run_variant(name, cfg, run_out):
        seen.append((name, json.loads(out.read_text())["variants"][name]["status"]))
        if name == "small_full":
            raise RuntimeError("CUDA out of memory (stand-in)")
        return {"seconds": 1.0, "stages": {}, "stage2_over_stage1": {}}

    monkeypatch.setattr(check, "run_variant", run_variant)
    assert check.main(["--device", "cpu", "--tiny", "--variants", "small_full", "small_lora",
                       "--work", str(tmp_path / "work"), "--out", str(out)]) == 1
    assert seen == [("small_full", "running"), ("small_lora", "running")]   # written before each
    variants = json.loads(out.read_text())["variants"]
    assert variants["small_full"]["status"] == "error"
    assert "CUDA out of memory (stand-in)" in variants["small_full"]["error"]
    assert variants["small_lora"]["status"] == "ok"


def test_a_half_written_policy_is_built_again(tmp_path, monkeypatch, tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    check = _check()
    built = []

    def random_policy(size, device, processor):
        built.append(size)
        return AutoModelForImageTextToText.from_pretrained(tiny_model_dir)

    monkeypatch.setattr(check, "random_policy", random_policy)
    folder = tmp_path / "policy_small"
    folder.mkdir()
    (folder / "config.json").write_text("{}")   # a build killed after its config
    assert check.save_policy(folder, "small", "cpu") == folder
    assert (folder / check.COMPLETE).is_file() and (folder / "model.safetensors").is_file()
    assert check.save_policy(folder, "small", "cpu") == folder   # whole: reused
    assert built == ["small"]
    assert not list(tmp_path.glob("*.partial-*"))


def test_the_vllm_variant_colocates_in_sleep_mode(tmp_path):
    from preresq.training.train import grpo_args

    check = _check()
    cfg = compose("train", check.overrides(tmp_path / "p", tmp_path / "o", True, 64, 1, "vllm"))
    args = grpo_args(cfg, tmp_path, [1.0, 1.0], "main")
    assert args.use_vllm and args.vllm_mode == "colocate" and args.vllm_enable_sleep_mode is True
    validation = compose("train", check.overrides(tmp_path / "p", tmp_path / "o", True, 64, 1, "validation"))
    assert validation.validation.enabled and validation.validation.every_n_steps == 1


@pytest.mark.slow
def test_gpu_checks_sh_on_cpu_keeps_what_finished_when_the_training_check_is_killed(tmp_path):
    """The whole sitting on CPU: generation check, then the training check (validation with
    per-stage wandb runs, LoRA, full), killed (as the out-of-memory killer would) once its
    LoRA variant has finished; the record keeps the finished variants, the variant then running shows ``running``, and the summary screen is printed."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1",
           "EVAL_ARGS": "--paths dynamic",
           "TRAIN_ARGS": "--variants small_validation small_lora small_full"}
    proc = subprocess.Popen(["bash", str(REPO_ROOT / "scripts" / "gpu_checks.sh"), str(out),
                             "--device", "cpu", "--tiny"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    record = out / "gpu_train.json"
    deadline = time.monotonic() + 600
    killed = None
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(1)
        try:
            data = json.loads(record.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            continue
        if data["variants"].get("small_lora", {}).get("status") == "ok" and killed is None:
            killed = data["pid"]
            os.kill(killed, signal.SIGKILL)
    printed = proc.communicate(timeout=120)[0]
    print(printed[-3000:])
    assert killed is not None, printed
    assert proc.returncode == 1, printed   # a check was killed: said after the summary
    data = json.loads(record.read_text())
    validation = data["variants"]["small_validation"]
    assert validation["status"] == "ok" and validation["validation_rows"] == {"exploration": 2, "stability": 2}
    assert len(validation["wandb_runs"]) == 2   # one offline wandb run per stage
    lora = data["variants"]["small_lora"]
    assert data["variants"]["small_full"]["status"] == "running"   # cut off: shown, not lost
    stages = lora["stages"]
    assert list(stages) == ["exploration", "stability"]
    targets = compose("train", ["+experiment=iqa_6k_lora"]).model.lora.target_modules
    adapters = ms.lora_parameters(ms.sizes_from_tiny({}), 64, targets)
    for stage in stages.values():
        assert len(stage["step_s"]) == 1 and stage["step_s"][0] > 0
        assert stage["trainable_parameters"] == adapters   # from the run's own model
        assert stage["estimate_gib"] > 0 and stage["peak_gib"] is None   # plan written; CPU
    assert "gpu_train_check exit 137" in printed
    assert "==== summary" in printed and "small_lora           ok" in printed
    assert "small_full           running" in printed
    assert "gpu_eval_check exit " in printed and "\ngpu_eval" in printed.split("==== summary")[1]
