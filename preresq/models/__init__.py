"""Policy models: real Qwen2.5-VL / Qwen2-VL checkpoints and the tiny offline one."""

from preresq.models.qwen_vl import (
    ModelNotFoundError,
    is_lora_checkpoint,
    load_model,
    load_processor,
    lora_config,
    resolve_model_path,
)

__all__ = ["ModelNotFoundError", "is_lora_checkpoint", "load_model", "load_processor", "lora_config",
           "resolve_model_path"]
