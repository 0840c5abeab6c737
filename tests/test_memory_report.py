"""The per-stage record of a real run, and scripts/gpu_train_check.py's CPU mode."""

import importlib.util
import json

import pytest
import torch

from preresq.config import compose
from preresq.paths import REPO_ROOT
from preresq.training import memory_plan as mp
from preresq.training.memory_report import MemoryReport, count_parameters


def test_trainable_parameters_count_zero3_partitions():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model[1].requires_grad_(False)
    assert count_parameters(model) == (15 + 8, 15)
    # ZeRO-3 leaves an empty tensor and the full size in ds_numel
    model[0].weight.data = torch.empty(0)
    model[0].weight.ds_numel = 12
    assert count_parameters(model) == (23, 15)


def test_report_merges_into_run_info(tmp_path):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    (tmp_path / "run_info.json").write_text(json.dumps({"stage": "s"}))
    report = MemoryReport("s", tmp_path, estimate_gib=1.5)
    args, state, control = TrainingArguments(str(tmp_path), use_cpu=True), TrainerState(), TrainerControl()
    report.on_train_begin(args, state, control, model=torch.nn.Linear(2, 2))
    for _ in range(2):
        report.on_step_begin(args, state, control)
        report.on_step_end(args, state, control)
    report.on_train_end(args, state, control)
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["stage"] == "s"   # kept
    memory = info["memory"]
    assert memory["estimate_gib"] == 1.5 and len(memory["step_s"]) == 2
    assert memory["trainable_parameters"] == memory["parameters"] == 6
    assert memory["peak_gib"] is None and memory["allocated_at_start_gib"] is None  # CPU


def _gpu_train_check():
    spec = importlib.util.spec_from_file_location("gpu_train_check", REPO_ROOT / "scripts" / "gpu_train_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    return check


def test_gpu_train_check_skips_what_would_pass_its_deadline(tmp_path):
    check = _gpu_train_check()
    out = tmp_path / "gpu_train.json"
    assert check.main(["--device", "cpu", "--tiny", "--variants", "small_full", "--deadline-s", "30",
                       "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["variants"] == {}
    assert result["skipped"] == ["small_full: expected 90 s, 30 s left of --deadline-s 30"]


@pytest.mark.slow
def test_gpu_train_check_runs_on_cpu_with_the_tiny_model(tmp_path, capsys):
    check = _gpu_train_check()
    out = tmp_path / "gpu_train.json"
    assert check.main(["--device", "cpu", "--tiny", "--variants", "small_lora", "3b_full",
                       "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["skipped"] == ["3b_full: --tiny"]
    stages = result["variants"]["small_lora"]["stages"]
    assert list(stages) == ["exploration", "stability"]
    targets = compose("train", ["+experiment=iqa_6k_lora"]).model.lora.target_modules
    adapters = mp.lora_parameters(mp.sizes_from_tiny({}), 64, targets)
    for record in stages.values():
        assert len(record["step_s"]) == 1 and record["step_s"][0] > 0
        assert record["trainable_parameters"] == adapters   # from the run's own model
        assert record["estimate_gib"] > 0                   # the plan's, written by train()
        assert record["peak_gib"] is None and record["alloc_retries"] is None   # CPU
    printed = capsys.readouterr().out
    assert "small_lora/exploration: steps [" in printed and "peak n/a, plan " in printed
