"""Policy models: real Qwen2.5-VL / Qwen2-VL checkpoints and the tiny offline one."""

from preresq.models.qwen_vl import (
    ModelNotFoundError,
    load_model,
    load_processor,
    resolve_model_path,
)

__all__ = ["ModelNotFoundError", "load_model", "load_processor", "resolve_model_path"]
