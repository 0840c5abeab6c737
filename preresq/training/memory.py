"""Handing a finished stage's trainer back, so the next stage starts with free memory.

Stages run one after another in the same processes (no re-exec: torchrun's ranks, their
process group and the data caches on disk stay; each stage builds its own policy,
reference, optimizer and vLLM engine). What a stage built must then be unreachable when
it ends, or the next stage holds two of each: a ZeRO-3 run held stage 1's weights, fp32
master, Adam moments, gradients and reference (18 bytes per parameter) through stage 2.
Reachable from outside the trainer were:

- the DeepSpeed engines. The policy's is destroyed by accelerate's ``free_memory``; the
  KL reference is a second engine that TRL made itself (``trl.models.prepare_deepspeed``),
  unknown to accelerate: destroyed here.
- DeepSpeed's module-level ``FWD_MODULE_STACK`` (``deepspeed.runtime.zero.parameter_offload``):
  every ZeRO-3 engine appends its model to it and nothing removes it; from the model, its
  hooks and each parameter's ``_z3_optimizer`` reach the engine and the optimizer. No
  forward runs between stages, so every entry is a finished stage's: the list is emptied.
  It is private; when a DeepSpeed upgrade moves it, ``deepspeed_module_stack`` fails at the
  start of a multi-stage run (``train.py``), not after hours of stage 1.
- the vLLM colocate engine (``trainer.vllm_generation.llm`` in TRL 1.16) and vLLM's
  model-parallel groups, which a new engine would find already initialised: the engine is
  dropped and the groups destroyed (the training process group is kept).
- transformers' global DeepSpeed config (the next stage's ``GRPOConfig`` sets its own).

Then every large attribute of the trainer is dropped, garbage is collected and the CUDA
cache emptied.
"""

from __future__ import annotations

import gc
import logging

import torch

log = logging.getLogger("preresq.train")

_HEAVY = ("model", "model_wrapped", "ref_model", "optimizer", "lr_scheduler", "deepspeed",
          "vllm_generation", "train_dataset", "eval_dataset")
STACK_MODULE = "deepspeed.runtime.zero.parameter_offload"
STACK_NAME = "FWD_MODULE_STACK"


def deepspeed_module_stack() -> list:
    """DeepSpeed's list of ZeRO-3 models; a clear error when this DeepSpeed has none."""
    import importlib

    module = importlib.import_module(STACK_MODULE)
    stack = getattr(module, STACK_NAME, None)
    if not isinstance(stack, list):
        import deepspeed

        raise RuntimeError(
            f"DeepSpeed {deepspeed.__version__} has no list {STACK_MODULE}.{STACK_NAME}: it keeps "
            f"every ZeRO-3 model alive, and preresq.training.memory empties it between stages. "
            f"Find where this DeepSpeed keeps its ZeRO-3 modules and update STACK_MODULE/STACK_NAME "
            f"(tests/test_training.py::test_deepspeed_still_has_its_module_stack), or run one "
            f"stage per command (stages: null).")
    return stack


def _is_engine(model) -> bool:
    try:
        from deepspeed import DeepSpeedEngine
    except ImportError:
        return False
    return isinstance(model, DeepSpeedEngine)


def release_vllm(trainer) -> None:
    """Drop the colocated vLLM engine and vLLM's model-parallel groups."""
    generation = getattr(trainer, "vllm_generation", None)
    if generation is None or getattr(generation, "llm", None) is None:
        return
    generation.llm = None
    from vllm.distributed.parallel_state import destroy_model_parallel

    # The tensor-parallel groups belong to this engine; the next stage's engine builds its
    # own. destroy_distributed_environment would also end torch's group that training uses.
    destroy_model_parallel()


def _empty_module_stack() -> None:
    try:
        stack = deepspeed_module_stack()
    except RuntimeError as err:  # a multi-stage run checked it at its start: this is the last stage
        log.warning("%s", err)
        return
    if stack:
        log.info("releasing %d model(s) from DeepSpeed's %s", len(stack), STACK_NAME)
    stack.clear()


def release_trainer(trainer) -> None:
    """Free what ``trainer`` holds; the caller then drops its own reference."""
    ref = getattr(trainer, "ref_model", None)
    deepspeed = _is_engine(getattr(trainer, "model_wrapped", None)) or _is_engine(ref)
    release_vllm(trainer)
    trainer.accelerator.free_memory()  # destroys the policy's DeepSpeed engine
    if _is_engine(ref):
        ref.destroy()  # TRL's own engine: accelerate does not know it
    if deepspeed:
        _empty_module_stack()
    for name in _HEAVY:
        if hasattr(trainer, name):
            setattr(trainer, name, None)
    handler = getattr(trainer, "callback_handler", None)
    for name in ("model", "optimizer", "lr_scheduler", "train_dataloader", "eval_dataloader"):
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
