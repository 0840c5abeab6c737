"""What one stage really used: step times, GPU memory and trainable parameters, from the run.

``MemoryReport`` is made just before a stage builds its trainer (so that "allocated at the
stage's start" is what earlier stages left behind, and the peak covers loading), attached to
the trainer as a callback, and at the end of training writes its record under ``memory`` in
the stage's ``run_info.json``, next to the plan's estimate (``preresq.training.memory_plan``):

- ``step_s``: wall time of each optimizer step (generation included), CUDA synchronized;
- ``allocated_at_start_gib``, ``peak_gib``: ``torch.cuda.memory_allocated`` before the stage,
  ``max_memory_allocated`` over the stage (the peak is reset when the report is made);
  ``reserved_at_start_gib``, ``peak_reserved_gib``: the same for the caching allocator's
  reserved memory (what the GPU lends torch); ``free_at_start_gib``, ``free_at_end_gib``:
  ``torch.cuda.mem_get_info``'s free memory, which also sees what torch does not allocate
  (CUDA context, NCCL, a vLLM engine's pool);
- ``alloc_retries``: the allocator's ``num_alloc_retries`` during the stage (cache flushes
  and retries: a run close to the limit crawls long before it fails);
- ``trainable_parameters``: counted with ``ds_numel`` where ZeRO-3 partitioned a parameter
  (its ``numel()`` is then 0).

On a CPU run the memory fields are None.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from transformers import TrainerCallback

GIB = 2**30
log = logging.getLogger("preresq.train")


def _cuda():
    import torch

    return torch.cuda if torch.cuda.is_available() else None


def count_parameters(model) -> tuple[int, int]:
    """(all, trainable) parameters; ZeRO-3's partitioned ones by their full ``ds_numel``."""
    total = trainable = 0
    for p in model.parameters():
        n = int(getattr(p, "ds_numel", p.numel()))
        total += n
        trainable += n if p.requires_grad else 0
    return total, trainable


class MemoryReport(TrainerCallback):
    """One stage's record (see the module docstring); make it before the stage's trainer."""

    def __init__(self, stage: str, output_dir: str | Path, estimate_gib: float | None = None):
        self.path = Path(output_dir) / "run_info.json"
        self.cuda = _cuda()
        self.record = {"stage": stage, "device": "cpu", "estimate_gib": estimate_gib, "step_s": [],
                       "allocated_at_start_gib": None, "peak_gib": None, "alloc_retries": None,
                       "reserved_at_start_gib": None, "peak_reserved_gib": None,
                       "free_at_start_gib": None, "free_at_end_gib": None,
                       "parameters": None, "trainable_parameters": None}
        self._retries = 0
        if self.cuda is not None:
            self.cuda.synchronize()
            self.cuda.reset_peak_memory_stats()
            self.record["device"] = self.cuda.get_device_name()
            self.record["allocated_at_start_gib"] = round(self.cuda.memory_allocated() / GIB, 3)
            self.record["reserved_at_start_gib"] = round(self.cuda.memory_reserved() / GIB, 3)
            self.record["free_at_start_gib"] = round(self.cuda.mem_get_info()[0] / GIB, 3)
            self._retries = self.cuda.memory_stats().get("num_alloc_retries", 0)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None:   # after DeepSpeed partitioned it
            total, trainable = count_parameters(model)
            self.record.update(parameters=total, trainable_parameters=trainable)

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.cuda is not None:
            self.cuda.synchronize()
        self.record["step_s"].append(round(time.perf_counter() - self._t0, 3))

    def on_train_end(self, args, state, control, **kwargs):
        if self.cuda is not None:
            self.record["peak_gib"] = round(self.cuda.max_memory_allocated() / GIB, 3)
            self.record["peak_reserved_gib"] = round(self.cuda.max_memory_reserved() / GIB, 3)
            self.record["free_at_end_gib"] = round(self.cuda.mem_get_info()[0] / GIB, 3)
            self.record["alloc_retries"] = self.cuda.memory_stats().get("num_alloc_retries", 0) - self._retries
        if state.is_world_process_zero:
            log.info("stage %r memory: %s", self.record["stage"], json.dumps(self.record))
            info = json.loads(self.path.read_text()) if self.path.is_file() else {}
            info["memory"] = self.record
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(info, indent=2))
