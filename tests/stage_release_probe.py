"""Run a multi-stage training in this process and record what each stage finds alive.

    python tests/stage_release_probe.py RESULT.json OVERRIDE...

A subprocess of ``tests/test_training.py``: a DeepSpeed run joins a process group and
fills process-wide state (accelerate's singleton, DeepSpeed's lists), which must not leak
into the test session. Before each stage is built, after garbage collection, it records
whether the previous stages' policy and reference modules are still alive and how many
parameter elements live in the process (a ZeRO-3 parameter counts its full ``ds_numel``,
which is what a GPU holds a share of); after building, the same count with the new stage.
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
    stages = []

    def build_and_look(cfg, init_path, output_dir, stage, plan=None, initial_path=None):
        gc.collect()
        record = {"stage": stage, "alive_before": sum(r() is not None for r in previous),
                  "live_before": live_parameters()}
        trainer = real_build(cfg, init_path, output_dir, stage, plan, initial_path)
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
    gc.collect()
    stages.append({"stage": "end", "alive_before": sum(r() is not None for r in previous),
                   "live_before": live_parameters()})
    with open(result_path, "w") as f:
        json.dump(stages, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
