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
- the vLLM colocate engine (``trainer.vllm_generation.llm`` in TRL 1.16). TRL puts it to
  sleep after every rollout (level 2: weights and KV cache released). Freeing a sleeping
  engine through the garbage collector frees memory that sleep already released (vLLM issue
  36651: CUDA driver errors, sticky for the next engine on the same allocator), and dropping
  an in-process ``LLM`` does not free its memory anyway (vLLM issue 21073). So the engine is
  woken (``LLM.wake_up``) and its executor shut down (``llm_engine.model_executor.shutdown``:
  the workers drop the model and the KV cache and release vLLM's memory pools). The shut
  engine is then kept, not dropped, until the process ends: in vLLM 0.31 collecting an
  in-process engine runs ``EngineCore.shutdown`` (the ``InprocClient`` finalizer), whose
  ``cleanup_dist_env_and_memory`` destroys torch's default process group, the one training
  runs on (``LLM`` has no shutdown of its own that spares it). Then TRL's tensor-parallel
  subgroup (``vllm_generation.tp_group``) and vLLM's model-parallel groups are destroyed.
- TRL's last generation batch (``trainer._buffered_inputs``, with the pixel values of every
  completion).
- transformers' global DeepSpeed config (the next stage's ``GRPOConfig`` sets its own).
- transformers' fast image processors cache their fused mean/std tensors with a
  ``functools.lru_cache`` on a method (``TorchvisionBackend._fuse_mean_std_and_rescale_factor``
  in 5.2x): its key holds the stage's processor. The cache is cleared (its own
  ``cache_clear``); a stage's first batch fills it again.

Every large attribute of the trainer is dropped; the caller then drops its own reference
and calls ``collect``: garbage collection while the caller still held the trainer could not
free it, and nothing collected after.
"""

from __future__ import annotations

import gc
import logging

import torch

log = logging.getLogger("preresq.train")

_HEAVY = ("model", "model_wrapped", "ref_model", "optimizer", "lr_scheduler", "deepspeed",
          "vllm_generation", "train_dataset", "eval_dataset", "_buffered_inputs")
STACK_MODULE = "deepspeed.runtime.zero.parameter_offload"
# Shut-down vLLM engines, kept until the process ends (see the module docstring).
SHUT_DOWN_VLLM_ENGINES: list = []
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
    """Wake and shut down the colocated vLLM engine, keep its shell, destroy its groups."""
    generation = getattr(trainer, "vllm_generation", None)
    llm = getattr(generation, "llm", None)
    if llm is None:
        return
    if getattr(generation, "enable_sleep_mode", False):
        llm.wake_up()   # every tag; vLLM only warns when it is awake already
    llm.llm_engine.model_executor.shutdown()
    SHUT_DOWN_VLLM_ENGINES.append(llm)
    generation.llm = None
    tp_group = getattr(generation, "tp_group", None)
    if tp_group is not None:   # TRL's subgroup for tensor_parallel_size > 1
        import torch.distributed

        torch.distributed.destroy_process_group(tp_group)
        generation.tp_group = None
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
    """Free what ``trainer`` holds; the caller then drops its own reference and calls
    ``collect`` (``del trainer; collect()``)."""
    ref = getattr(trainer, "ref_model", None)
    deepspeed = _is_engine(getattr(trainer, "model_wrapped", None)) or _is_engine(ref)
    trainer.accelerator.free_memory()  # destroys the policy's DeepSpeed engine
    if _is_engine(ref):
        ref.destroy()  # TRL's own engine: accelerate does not know it
    if deepspeed:
        _empty_module_stack()
    release_vllm(trainer)  # after the policy: waking the engine maps its memory again
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
    _clear_image_processor_cache()


def _clear_image_processor_cache() -> None:
    try:
        from transformers.image_processing_backends import TorchvisionBackend
    except ImportError:  # a transformers without it: nothing to clear
        return
    clear = getattr(getattr(TorchvisionBackend, "_fuse_mean_std_and_rescale_factor", None), "cache_clear", None)
    if clear is not None:
        clear()


def collect() -> None:
    """Collect what the released stage left in reference cycles and return cached CUDA memory."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
