"""vLLM in colocate mode: fail early when it is missing, and size its context from the data.

Without ``vllm_max_model_length`` vLLM reserves KV cache for the model's whole context
(128k tokens for Qwen2.5-VL), most of a GPU it shares with training. The longest sequence
a rollout can make is bounded by the pixel budget: each image (or video view) is resized to
at most ``max_pixels``, one visual token per 28x28 pixels after the 2x2 merge, plus the
prompt's text and the completion.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

PIXELS_PER_TOKEN = 28 * 28  # Qwen2.5-VL: 14-px patches merged 2x2


def check_vllm(use_vllm: bool) -> None:
    """Fail at start, not at the first rollout, when vLLM is asked for but absent."""
    if use_vllm and importlib.util.find_spec("vllm") is None:
        raise RuntimeError(
            "trainer.args.use_vllm=true but vllm is not installed. Install it on a GPU machine "
            "with `pip install -e '.[vllm]'`, or set trainer.args.use_vllm=false."
        )


def image_tokens(pixels: int) -> int:
    """Visual tokens of one image of at most ``pixels`` pixels."""
    return int(pixels) // PIXELS_PER_TOKEN


def visual_tokens(modality: str, max_pixels: int, images_per_item: int = 1,
                  video_cfg: Mapping | None = None) -> int:
    """The most visual tokens one item can bring: its images, or a video's views.

    A video's views (``configs/video``) are one mosaic of at most ``mosaic_max_pixels``,
    ``num_local`` frames of at most ``local_max_pixels`` and an optional ``crop`` of
    ``size`` x ``size``; each is then capped at the model's ``max_pixels``.
    """
    if modality == "image":
        return images_per_item * image_tokens(max_pixels)
    from preresq.evaluation.batching import has_mosaic

    video = dict(video_cfg or {})
    views = [video.get("mosaic_max_pixels", max_pixels)] if has_mosaic(video) else []
    views += [video.get("local_max_pixels", max_pixels)] * int(video.get("num_local", 0))
    crop = video.get("crop")
    if crop:
        views.append(int(crop["size"]) ** 2)
    return images_per_item * sum(image_tokens(min(int(v), int(max_pixels))) for v in views)


def max_model_length(visual: int, prompt_tokens: int, max_completion_length: int) -> int:
    """Tokens vLLM must hold for one sequence: visual + prompt text + completion."""
    return int(visual) + int(prompt_tokens) + int(max_completion_length)
