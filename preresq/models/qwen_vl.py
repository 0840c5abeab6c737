"""Load the policy and its processor from a hub id, a local folder or the tiny builder.

One entry point for training, evaluation and scoring, driven by a ``model`` config
(``configs/model/*.yaml``). Missing weights fail at once with a message that names the id
or path and says how to point at a local copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
           "auto": "auto"}


class ModelNotFoundError(RuntimeError):
    """The configured model could not be found locally or on the hub."""


def _cfg_get(cfg, key, default=None):
    value = cfg.get(key, default) if isinstance(cfg, (dict, DictConfig)) else getattr(cfg, key, default)
    return default if value is None else value


def resolve_model_path(model_cfg, cache_dir: str | os.PathLike | None = None) -> str:
    """The folder or hub id to load: builds the tiny model when the config asks for it."""
    name = _cfg_get(model_cfg, "name_or_path")
    tiny = _cfg_get(model_cfg, "tiny")
    if name:
        return str(name)
    if tiny:
        from preresq.models.tiny import build_tiny_model, default_tiny_dir

        settings = OmegaConf.to_container(tiny, resolve=True) if isinstance(tiny, DictConfig) else dict(tiny)
        out_dir = default_tiny_dir(settings, cache_dir)
        return str(build_tiny_model(out_dir, **settings))
    raise ValueError("model config needs name_or_path (a hub id or a local folder) or a tiny section")


def _not_found(name: str, err: Exception) -> ModelNotFoundError:
    local = Path(name).expanduser()
    if local.is_absolute() or name.startswith((".", "~")) or local.exists():
        what = "is missing" if not local.exists() else "does not hold a loadable checkpoint"
        return ModelNotFoundError(
            f"Model not available: the local folder {name!r} {what} ({type(err).__name__}).\n"
            f"Set model.name_or_path=<folder> to a folder holding config.json, the weights and "
            f"the processor files (a hub download or a training run's checkpoint)."
        )
    return ModelNotFoundError(
        f"Model not available: {name!r} is not a local folder and could not be loaded from the "
        f"Hugging Face hub (offline, or not downloaded yet: {type(err).__name__}).\n"
        f"Download it once on a machine with internet (`huggingface-cli download {name} "
        f"--local-dir /models/<name>`), then point the run at the folder: "
        f"model.name_or_path=/models/<name> (or set PRERESQ_MODEL_7B / PRERESQ_MODEL_3B)."
    )


def pixel_size(model_cfg) -> dict[str, int]:
    """The model config's pixel bounds in the form transformers asks for: ``{"shortest_edge":
    min_pixels, "longest_edge": max_pixels}`` (Qwen2-VL reads both as pixel counts, not
    sides). Empty when the config sets neither; a bound it leaves out keeps the checkpoint's.

    Passing ``min_pixels``/``max_pixels`` themselves makes transformers >= 5 warn on every
    processor call that they "will be removed in v5.23".
    """
    size = {}
    if _cfg_get(model_cfg, "min_pixels"):
        size["shortest_edge"] = int(model_cfg.min_pixels)
    if _cfg_get(model_cfg, "max_pixels"):
        size["longest_edge"] = int(model_cfg.max_pixels)
    return size


def processor_size_kwargs(model_cfg) -> dict:
    """``AutoProcessor.from_pretrained`` keyword arguments that set the pixel budget of the
    image and the video processor alike (``size``; see ``pixel_size``)."""
    size = pixel_size(model_cfg)
    if not size:
        return {}
    if set(size) != {"shortest_edge", "longest_edge"}:
        raise ValueError(f"model config sets only {sorted(size)} of min_pixels/max_pixels: set both "
                         "(transformers' size needs shortest_edge and longest_edge together)")
    return {"size": size}


def load_processor(model_cfg, cache_dir=None, path: str | None = None):
    """The model's ``AutoProcessor`` with the config's pixel budget (``pixel_size``), left padding."""
    from transformers import AutoProcessor

    path = path or resolve_model_path(model_cfg, cache_dir)
    kwargs = processor_size_kwargs(model_cfg)
    try:
        processor = AutoProcessor.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:
        raise _not_found(path, err) from None
    # Generation appends on the right, so batched prompts are padded on the left.
    processor.tokenizer.padding_side = "left"
    return processor


def load_model(model_cfg, training: bool = False, cache_dir=None, path: str | None = None,
               device=None):
    """The policy as ``AutoModelForImageTextToText``, with frozen vision applied.

    ``device`` (evaluation, scoring): the weights are read straight onto it
    (``device_map``), in the config's dtype, with no whole copy in host memory first; under
    torchrun each process passes its own ``cuda:LOCAL_RANK``. None (training): transformers'
    default placement, which the trainer (DeepSpeed, accelerate) then moves.

    New LoRA adapters are not added here: ``lora_config`` gives the ``peft_config`` that
    GRPOTrainer wraps the model with (seeded by its ``args.seed``, with TRL's ZeRO-3 adapter
    dtype handling). A folder holding a LoRA checkpoint (``adapter_config.json``) is loaded
    with its adapters trainable when ``training``, merged for fast inference otherwise.
    Under DeepSpeed ZeRO-3 the weights are partitioned while loading (``zero.Init``) when the
    ``GRPOConfig`` exists before this call, as ``preresq.training`` makes sure in every stage.
    """
    from transformers import AutoModelForImageTextToText

    path = path or resolve_model_path(model_cfg, cache_dir)
    dtype = _DTYPES[str(_cfg_get(model_cfg, "dtype", "float32"))]
    attn = _cfg_get(model_cfg, "attn_implementation", "sdpa")
    adapter = Path(path) / "adapter_config.json"
    placement = {} if device is None else {"device_map": str(device)}
    try:
        if adapter.is_file():
            model = _load_lora_checkpoint(Path(path), dtype, attn, merge=not training, **placement)
        else:
            model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, attn_implementation=attn,
                                                                **placement)
    except (OSError, ValueError) as err:
        raise _not_found(path, err) from None
    from preresq.decoding import neutral_generation_config

    # Decoding comes from our config only (training rollouts, validation, eval): drop the
    # checkpoint's sampling defaults (Instruct: top_k 1, repetition_penalty 1.05), keep its stop ids.
    model.generation_config = neutral_generation_config(model.generation_config)

    if _cfg_get(model_cfg, "freeze_vision", False):
        for p in _vision_tower(model).parameters():
            p.requires_grad_(False)
    # Gradient checkpointing is switched on by the trainer (GRPOConfig.gradient_checkpointing
    # comes from model.gradient_checkpointing), so that it is set in one place only.
    return model


def lora_config(model_cfg):
    """The ``peft.LoraConfig`` of ``model.lora``, or None when LoRA is off."""
    lora = _cfg_get(model_cfg, "lora")
    if not lora:
        return None
    from peft import LoraConfig

    lora = OmegaConf.to_container(lora, resolve=True) if isinstance(lora, DictConfig) else dict(lora)
    try:
        return LoraConfig(**lora)
    except TypeError as err:
        raise ValueError(f"model.lora: {err} (fields of peft.LoraConfig)") from None


def is_lora_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder of LoRA adapters (the weights of a LoRA stage)."""
    return (Path(path) / "adapter_config.json").is_file()


def _vision_tower(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", base)
    for name in ("visual", "vision_tower"):
        if hasattr(inner, name):
            return getattr(inner, name)
        if hasattr(base, name):
            return getattr(base, name)
    raise AttributeError(f"cannot find the vision tower of {type(base).__name__}")


def _load_lora_checkpoint(path: Path, dtype, attn, merge: bool, **placement):
    import json

    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    base_id = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
    base = AutoModelForImageTextToText.from_pretrained(base_id, dtype=dtype, attn_implementation=attn,
                                                       **placement)
    model = PeftModel.from_pretrained(base, str(path), is_trainable=not merge)
    return model.merge_and_unload() if merge else model
