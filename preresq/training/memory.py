"""Handing a finished stage's trainer back, so the next stage starts with free memory.

The next stage builds a new policy, reference model, optimizer and (with vLLM colocate)
inference engine; with the old ones still referenced, a 7B run holds two of each. The
DeepSpeed engine is destroyed (it keeps partitioned parameters and hooks), every large
attribute is dropped, the transformers-wide DeepSpeed config is unset (the next stage's
``GRPOConfig`` sets its own before its model is loaded), then garbage is collected and the
CUDA cache emptied.
"""

from __future__ import annotations

import gc

import torch

_HEAVY = ("model", "model_wrapped", "ref_model", "optimizer", "lr_scheduler", "llm", "deepspeed",
          "train_dataset")


def release_trainer(trainer) -> None:
    """Free what ``trainer`` holds; the caller then drops its own reference."""
    trainer.accelerator.free_memory()  # destroys the DeepSpeed engine when there is one
    for name in _HEAVY:
        if hasattr(trainer, name):
            setattr(trainer, name, None)
    handler = getattr(trainer, "callback_handler", None)
    for name in ("model", "optimizer", "lr_scheduler", "train_dataloader"):
        if handler is not None and hasattr(handler, name):
            setattr(handler, name, None)
    try:
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config
    except ImportError:  # transformers without the DeepSpeed integration
        pass
    else:
        unset_hf_deepspeed_config()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
