"""The per-stage record of a real run (scripts/gpu_train_check.py: tests/test_gpu_checks.py)."""

import json
import types

import torch

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


def test_report_records_reserved_and_free_memory_on_cuda(tmp_path, monkeypatch):
    """On a GPU: allocated, reserved and mem_get_info at the start, their peaks and free at the
    end (a stand-in torch.cuda with the figures a GPU would give)."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from preresq.training import memory_report

    gib = memory_report.GIB
    free = iter([70 * gib, 20 * gib])
    cuda = types.SimpleNamespace(
        synchronize=lambda: None, reset_peak_memory_stats=lambda: None, get_device_name=lambda: "H-test",
        memory_allocated=lambda: 2 * gib, memory_reserved=lambda: 3 * gib,
        max_memory_allocated=lambda: 40 * gib, max_memory_reserved=lambda: 48 * gib,
        mem_get_info=lambda: (next(free), 80 * gib), memory_stats=lambda: {"num_alloc_retries": 0})
    monkeypatch.setattr(memory_report, "_cuda", lambda: cuda)
    report = MemoryReport("s", tmp_path, estimate_gib=39.0)
    args, state, control = TrainingArguments(str(tmp_path), use_cpu=True), TrainerState(), TrainerControl()
    report.on_train_end(args, state, control)
    memory = json.loads((tmp_path / "run_info.json").read_text())["memory"]
    assert memory["device"] == "H-test"
    assert (memory["allocated_at_start_gib"], memory["reserved_at_start_gib"], memory["free_at_start_gib"]) == (2, 3, 70)
    assert (memory["peak_gib"], memory["peak_reserved_gib"], memory["free_at_end_gib"]) == (40, 48, 20)
