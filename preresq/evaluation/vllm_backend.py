"""Generation with vLLM (``predictor=vllm``): the same prompts and parser, faster decoding.

vLLM is optional (``pip install 'preresq[vllm]'``); without it, choosing this backend fails
at once with a message saying so. The prompt text comes from the model's own processor
(``apply_chat_template``), exactly as with ``predictor=hf``, and images are passed already
resized by the shared loader. LoRA checkpoints must be merged into full weights first.

Decoding is ours, as with ``predictor=hf``: every sampling parameter is set from
``Decoding``, and the engine is told not to read the checkpoint's
``generation_config.json`` (``generation_config="vllm"``), whose defaults would otherwise
apply to any parameter left unset.

Under ``torchrun`` every process runs its own engine on its own GPU (``cuda:LOCAL_RANK``)
on its share of the items, as with ``predictor=hf``: the engine joins torchrun's process
group as TRL's colocated engines do (``distributed_executor_backend="external_launcher"``).
Building it runs collectives over that group (a ``new_group`` per parallel group, an
``all_reduce`` of the free memory), so every rank builds it, items or none
(``preresq.evaluation.evaluate``). Room for images is reserved per prompt as the suite
needs it: one for image suites, a video's views for video suites.

**Calls.** vLLM schedules by tokens itself (up to its ``max_num_seqs`` sequences and its KV
cache), so it gets far more prompts per call than ``batch_size``: up to
``predictor.items_per_call`` items and ``predictor.tokens_per_call`` prompt tokens
(``call_limits``; ``batch_size`` and ``batch_tokens`` are ``predictor=hf``'s). Why not the
whole share in one call: ``LLM.generate`` processes every prompt (pixels into patch
tensors, ~19 kB per visual token in float32) before the first step and returns nothing
until the last, so a whole KonIQ share would hold ~190 GB of host memory and a kill would
lose every answer of the share. Rows are appended after each call: a kill loses at most
the call in flight, and the engine drains (runs below ``max_num_seqs``) once per call
instead of once per ``batch_size`` items.

**Seeds.** Each request is seeded from its item's id and ``decoding.seed``
(``preresq.decoding.item_seed``), so an item's samples are the same on any rank, in any
call, resumed or not, and sample i of two items are not drawn from one random stream.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from preresq.decoding import Decoding, item_seed
from preresq.evaluation.batching import BatchLimits
from preresq.evaluation.requests import Request, prompt_text, text_tokens
from preresq.models.qwen_vl import processor_size_kwargs

ITEMS_PER_CALL = 2048
TOKENS_PER_CALL = 524288  # prompt tokens: ~10 GB of float32 patches at most in host memory


class VLLMNotInstalledError(ImportError):
    """``predictor=vllm`` was chosen but the vllm package is not installed."""


def import_vllm():
    """The vllm module, or an error that says how to install it."""
    try:
        import vllm
    except ImportError as e:
        raise VLLMNotInstalledError(
            "predictor=vllm needs the vllm package, which is not installed "
            f"({e}). Install it with `pip install 'preresq[vllm]'` (a CUDA machine), "
            "or use the transformers backend: predictor=hf.") from None
    return vllm


class VLLMPredictor:
    """Batched generation with ``vllm.LLM``; N samples per request with ``n=N``.

    Args:
        model_path: a folder or hub id with full weights.
        processor: the model's processor (its chat template builds the prompt text).
        decoding: greedy (temperature 0) or sampling settings.
        model_cfg: the ``model`` config (dtype, min/max pixels).
        max_images: most images in one prompt (1 for images, the views of a video).
        items_per_call, tokens_per_call: the most items and prompt tokens of one
            ``generate`` call (see the module docstring).
        **engine_args: passed to ``vllm.LLM`` (tensor_parallel_size, gpu_memory_utilization,
            max_model_len, ...).
    """

    def __init__(self, model_path: str, processor, decoding: Decoding, model_cfg,
                 max_images: int = 1, items_per_call: int = ITEMS_PER_CALL,
                 tokens_per_call: int | None = TOKENS_PER_CALL, **engine_args) -> None:
        vllm = import_vllm()
        if (Path(model_path) / "adapter_config.json").is_file():
            raise ValueError(f"{model_path} holds LoRA adapters: predictor=vllm needs full "
                             "weights; merge them first (peft merge_and_unload + save_pretrained) "
                             "or use predictor=hf, which merges on load")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # torchrun: one engine per process, each on its own GPU and its own items.
            if int(engine_args.get("tensor_parallel_size") or 1) != 1:
                raise ValueError("predictor=vllm under torchrun runs one engine per GPU, so "
                                 "predictor.tensor_parallel_size must be 1; for a model split "
                                 "over GPUs run one process (python scripts/eval.py "
                                 "predictor.tensor_parallel_size=N)")
            engine_args["distributed_executor_backend"] = "external_launcher"
        self.processor = processor
        self.decoding = decoding
        self.call_limits = BatchLimits(int(items_per_call),
                                       None if tokens_per_call is None else int(tokens_per_call))
        dtype = model_cfg.get("dtype") or "auto"
        self.llm = vllm.LLM(
            model=str(model_path), dtype=dtype, seed=decoding.seed,
            limit_mm_per_prompt={"image": int(max_images)},
            generation_config="vllm",  # never the checkpoint's sampling defaults
            # The pixel budget as `size` (transformers >= 5 warns on min_pixels/max_pixels).
            mm_processor_kwargs=processor_size_kwargs(model_cfg),
            **{k: v for k, v in engine_args.items() if v is not None})
        d = decoding
        self._sampling_params = vllm.SamplingParams
        self.params = dict(  # all but the seed, which is per item
            n=d.num_samples, max_tokens=d.max_new_tokens,
            temperature=d.temperature if d.do_sample else 0.0,
            top_p=d.top_p if d.do_sample else 1.0,
            top_k=(d.top_k or -1) if d.do_sample else -1,
            repetition_penalty=float(d.repetition_penalty))

    def seed(self, request: Request) -> int:
        """The request's sampling seed: its item's (``item_seed``)."""
        if request.item_id is None:
            raise ValueError("predictor=vllm seeds each request from its item's id, and this "
                             "request has none (Request.item_id)")
        return item_seed(self.decoding.seed, request.item_id)

    def text_tokens(self, messages: list[dict], add_vision_id: bool = False) -> int:
        """Tokens of the prompt's text, image placeholders left out (for batches by tokens)."""
        return text_tokens(self.processor, messages, add_vision_id)

    def generate(self, requests: Sequence[Request]) -> list[list[str]]:
        prompts = [{
            "prompt": prompt_text(self.processor, r.messages, r.add_vision_id),
            "multi_modal_data": {"image": list(r.images)},
        } for r in requests]
        params = [self._sampling_params(**self.params, seed=self.seed(r)) for r in requests]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [[o.text for o in out.outputs] for out in outputs]
