"""Run a multi-stage training in this process and record what each stage finds alive.

    python tests/stage_release_probe.py RESULT.json OVERRIDE...

A subprocess of ``tests/test_training.py``: a DeepSpeed run joins a process group and
fills process-wide state (accelerate's singleton, DeepSpeed's lists), which must not leak
into the test session. Before each stage is built, first without any garbage collection,
it records how many earlier trainers are alive and the bytes of live tensors that are not
parameters (ZeRO-3 partitions, optimizer states, buffered generation batches: each storage
once); then, after garbage collection, whether the previous stages' policy and reference
modules are still alive and how many parameter elements live in the process (a ZeRO-3
parameter counts its full ``ds_numel``, which is what a GPU holds a share of); after
building, the same count with the new stage.
"""

import gc
import importlib
import json
import sys
import weakref

import torch
from transformers import TrainerCallback

from preresq.config import compose


def live_parameters() -> int:
    """Elements of every ``torch.nn.Parameter`` alive in this process."""
    total = 0
    for obj in gc.get_objects():
        if isinstance(obj, torch.nn.Parameter):
            total += int(getattr(obj, "ds_numel", 0) or obj.numel())
    return total


def live_tensor_bytes() -> int:
    """Bytes of the storages of every live tensor that is not a parameter (each storage once)."""
    seen, total = set(), 0
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and not isinstance(obj, torch.nn.Parameter):
            try:
                storage = obj.untyped_storage()
            except RuntimeError:  # tensors without storage (meta, sparse)
                continue
            if storage.data_ptr() and storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
    return total


def module_of(model):
    """The ``nn.Module`` inside a DeepSpeed engine (or the module itself)."""
    return getattr(model, "module", model)


class _KeepRefs(TrainerCallback):
    """Weak references to what ``trainer.train`` builds: the policy engine and its optimizer."""

    def __init__(self, trainer, refs):
        self.trainer, self.refs = weakref.ref(trainer), refs

    def on_train_begin(self, args, state, control, **kwargs):
        trainer = self.trainer()
        for obj in (trainer.model_wrapped, trainer.optimizer, trainer.ref_model):
            if obj is not None:
                self.refs.append(weakref.ref(obj))


def main(result_path: str, overrides: list[str]) -> None:
    training = importlib.import_module("preresq.training.train")
    real_build = training.build_trainer
    previous: list[weakref.ref] = []
    trainers: list[weakref.ref] = []
    stages = []

    def build_and_look(cfg, init_path, output_dir, stage, plan=None, initial_path=None):
        record = {"stage": stage, "trainers_alive": sum(t() is not None for t in trainers),
                  "tensor_bytes": live_tensor_bytes()}   # before any garbage collection
        gc.collect()
        record.update(alive_before=sum(r() is not None for r in previous), live_before=live_parameters())
        trainer = real_build(cfg, init_path, output_dir, stage, plan, initial_path)
        trainers.append(weakref.ref(trainer))
        for model in (trainer.model, trainer.ref_model):
            if model is not None:
                previous.append(weakref.ref(module_of(model)))
        trainer.add_callback(_KeepRefs(trainer, previous))
        gc.collect()
        record["live_built"] = live_parameters()
        stages.append(record)
        return trainer

    training.build_trainer = build_and_look
    training.train(compose("train", overrides))
    end = {"trainers_alive": sum(t() is not None for t in trainers), "tensor_bytes": live_tensor_bytes()}
    gc.collect()
    stages.append({"stage": "end", **end, "alive_before": sum(r() is not None for r in previous),
                   "live_before": live_parameters()})
    with open(result_path, "w") as f:
        json.dump(stages, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
