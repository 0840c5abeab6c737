"""Validation during training gives the model back as it found it: gradient checkpointing on,
with the run's own kwargs (TRL forces use_reentrant=True for LoRA under ZeRO-3)."""

import gc
import types
import weakref

import pytest

from preresq.config import compose
from preresq.paths import REPO_ROOT


def _checkpointing_keywords(model) -> dict:
    funcs = {id(f): f for m in model.modules() if (f := getattr(m, "_gradient_checkpointing_func", None))}
    assert funcs, "gradient checkpointing is off"
    (func,) = funcs.values()
    return dict(func.keywords)


class _Trainer(types.SimpleNamespace):
    """What the callback asks of a trainer (weakly referable, as a real trainer is)."""

    __slots__ = ("__weakref__",)


def _callback(tmp_path):
    from preresq.training.callbacks import ValidationCallback

    cfg = compose("train", ["+experiment=smoke", f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}",
                            "validation.enabled=true", "validation.max_items=1", "validation.batch_size=1",
                            "validation.max_new_tokens=1"])
    return ValidationCallback(cfg, tmp_path)


@pytest.mark.slow
def test_validation_re_enables_checkpointing_with_the_run_kwargs(tmp_path, tiny_model_dir):
    from accelerate import Accelerator
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerState

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    kwargs = {"use_reentrant": True}   # what TRL sets for LoRA under ZeRO-3
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.train()
    assert _checkpointing_keywords(model) == kwargs
    trainer = _Trainer(
        accelerator=Accelerator(cpu=True), model_wrapped=model,
        processing_class=AutoProcessor.from_pretrained(tiny_model_dir),
        args=types.SimpleNamespace(gradient_checkpointing_kwargs=kwargs, ds3_gather_for_generation=True))
    callback = _callback(tmp_path)
    callback.attach(trainer)
    callback._validate(TrainerState())
    assert (tmp_path / "validation.jsonl").is_file()
    assert model.training and model.is_gradient_checkpointing
    assert _checkpointing_keywords(model) == kwargs, "validation changed the checkpointing settings"


def test_the_validation_callback_does_not_keep_its_trainer_alive(tmp_path):
    """The trainer holds its callbacks: a strong reference back is a cycle that only the
    garbage collector frees, and stage 1 was still alive when stage 2 started."""
    callback = _callback(tmp_path)
    trainer = _Trainer(callbacks=[callback])
    callback.attach(trainer)
    assert callback.trainer is trainer
    ref = weakref.ref(trainer)
    gc.disable()
    try:
        del trainer
        assert ref() is None, "the callback keeps its trainer alive"
    finally:
        gc.enable()
    with pytest.raises(RuntimeError, match="no trainer attached"):
        _ = callback.trainer


def test_a_run_stopped_by_a_signal_is_not_validated_at_its_end(tmp_path):
    # The grace period a scheduler gives after SIGTERM is for the checkpoint; the stage's last
    # validation belongs to a stage that reached its last step.
    from transformers import TrainerState

    callback = _callback(tmp_path)
    validated = []
    callback._validate = lambda state: validated.append(state.global_step)
    callback.every = 50
    callback.on_train_end(None, TrainerState(global_step=7, max_steps=40), None)
    assert validated == []
    callback.on_train_end(None, TrainerState(global_step=40, max_steps=40), None)
    assert validated == [40]
