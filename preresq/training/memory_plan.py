"""The memory plan: GPU memory per device of each training stage, estimated before loading.

Everything here is arithmetic on the model's architecture (its config, counted by
``preresq.training.model_sizes``: no weights are read) and on the stage's schedule
(``preresq.training.schedule``). This docstring is the one place the formula is written
down; docs/training.md points here.

Notation (per stage)
--------------------
``P`` all parameters (Qwen2.5-VL: language model + vision tower, counted from the config by
``parameter_counts``), ``T`` the trainable ones (full fine-tune: ``P``, less the vision
tower with ``model.freeze_vision``; LoRA: the adapters only, counted by matching
``target_modules`` against the model's linear layers as peft does), ``N`` the world size,
``w`` bytes per weight of ``model.dtype`` (2 for bf16), ``b`` the micro-batch
(``per_device_train_batch_size``), ``G`` the generation batch (TRL generates every
completion of one optimizer step per device at once: ``completions_per_device``), ``S`` the
tokens of one sequence = visual tokens + prompt text + completion, ``H``, ``F``, ``L`` the
language model's width, MLP width and layers, ``kv`` its key/value width (kv heads x head
dim), ``V`` the vocabulary.

Visual tokens: one per 28 x 28 pixels (``preresq.training.vllm.visual_tokens``) of
``data.max_image_pixels`` (the largest image of the set, when the card states it) capped by
``model.max_pixels``. Prompt text: the longest template's characters / 4 + 32 tokens of chat
template (no tokenizer is loaded; the real count is within some tens of tokens).

Terms (bytes per device)
------------------------
Model states, held all stage:

- no DeepSpeed: ``w P`` weights, and per trainable parameter ``w`` gradient + ``2 w`` AdamW
  moments (AdamW keeps them in the parameter's dtype);
- DeepSpeed (bf16 with fp32 master weights): per trainable parameter 2 (bf16 weight) + 2
  (gradient) + 12 (fp32 master, Adam m and v) = 16 bytes; frozen ones 2. ZeRO-1 divides the
  optimizer by ``N``, ZeRO-2 gradients and optimizer; ZeRO-3 divides everything by ``N``; ZeRO-3 with CPU
  offload (``zero3_offload``) keeps parameters, gradients and optimizer in host memory;
- LoRA adapters without DeepSpeed are fp32 (peft's default): 4 + 4 + 8 = 16 bytes each;
  under DeepSpeed they count as any trainable parameter.

KL reference (``beta > 0``, full fine-tune only: with LoRA TRL disables the adapters
instead): a second copy ``w P``, divided by ``N`` under ZeRO-3 (its own ZeRO-3 engine),
whole under ZeRO-2 and without DeepSpeed.

Then the largest of three phases:

- generation: under ZeRO-3 the whole policy is gathered on every device (TRL's
  ``ds3_gather_for_generation``): ``w P``; the KV cache ``G S L 2 kv w``; the prefill's widest
  transient, one layer's MLP over every prompt token: ``G (S - completion) 3 F w``;
- training step (forward + backward of one micro-batch): with gradient checkpointing, every
  layer's input ``L b S H w`` (and the vision tower's, when it trains, over its patches:
  4 per visual token) plus one layer recomputed with its gradients,
  ``b S (22 H + 8 kv + 14 F)`` bytes (bf16, with RMSNorm's fp32 temporaries), plus with
  LoRA the adapters' fp32 inputs ``b S (24 H + 4 F)``; without checkpointing every layer's
  activations ``L b S (22 H + 8 kv + 8 F)`` and the last layer's MLP gradients ``b S 6 F``
  (vision layers alike over their patches, with their widths). Logits are never whole
  (TRL 1.16's fused LM head works in tiles). Under ZeRO-3 the largest gathered module (the embedding, ``w V H``)
  comes on top;
- optimizer step (DeepSpeed): the fp32 copy of the gradient partition, ``4 T / N`` (at most
  DeepSpeed's ``sub_group_size`` of 1e9 parameters under ZeRO-3).

Colocated vLLM (``trainer.args.use_vllm`` with ``vllm_mode: colocate``; known only with
``gpu_memory_gib``) holds ``vllm_gpu_memory_utilization`` of the GPU while it generates: the
generation phase counts that instead of the HF generation terms. With sleep mode (the
default when colocated) TRL puts the engine to sleep after every rollout (level 2: weights
and KV cache released), so the other phases count only what a sleeping engine keeps
(``VLLM_ASLEEP_GIB``: CUDA graphs and buffers outside vLLM's sleep pool; a guess until the
GPU check measures it); without sleep mode the engine's share stays in every phase.

Validation (``validation.enabled``) adds a fourth phase: under ZeRO-3 the whole policy is
gathered (``w P``) while ``validation.batch_size`` items of up to ``model.max_pixels`` each
(capped by the validation card's ``max_image_pixels``) are decoded greedily for ``validation.max_new_tokens`` (its KV cache and prefill as above).

Headroom: the estimate is calibrated on ``torch.cuda.max_memory_allocated``; the GPU also
holds what the caching allocator does not count: the CUDA context and kernels (~0.5 GiB),
NCCL's buffers (some hundred MiB per communicator) and the allocator's fragmentation
(reserved above allocated, some percent). A stage fits when the estimate plus
``HEADROOM_GIB`` + ``FRAGMENTATION`` x estimate is at most the GPU's memory.

How well it matches (``tests/test_memory_plan.py::test_calibration_against_the_measured_peaks``)
-----------------------------------------------------------------------------------------------
Measured on one H200 (the first GPU run of 2026-12-04, issue 19, and
``docs/measurements/gpu_train.json``), ``torch.cuda.max_memory_allocated``:

- 3B widths, 4 + 4 layers (0.74B parameters), full, ZeRO-3, one GPU, beta 0.04,
  gradient checkpointing, 8 demo images (112 px: 16 visual tokens) x K=12, micro-batch 48,
  64 completion tokens, stage 1: measured 15.18 GiB, estimated 15.09 GiB (-0.6%);
- the 3B model with LoRA r=64 (0.12B adapters, 3.87B parameters), no DeepSpeed,
  448 x 448 images (256 visual tokens), 8 x K=6 = 48 completions of 256 tokens in one
  micro-batch: measured 19.67 GiB, estimated 21.6 GiB (+10%).

Two points on one model family: the per-token activation factors are counted from the
tensors a layer keeps, then checked against these figures (not fitted to them); other shapes (7B, several GPUs) are unmeasured, and
``scripts/gpu_train_check.py`` prints estimate and measurement side by side per stage.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from preresq.training.model_sizes import (
    MemoryPlanError,
    ModelSizes,
    lora_parameters,
    model_sizes,
    parameter_counts,
    plain_dict,
)

GIB = 2**30
DS_BF16_TRAINABLE = 16    # bf16 weight 2 + gradient 2 + fp32 master 4 + Adam m, v 8
LORA_TRAINABLE = 16       # fp32 adapter 4 + gradient 4 + Adam 8
DS_SUB_GROUP = 10**9      # DeepSpeed's default zero_optimization.sub_group_size (ZeRO-3)
PROMPT_CHARS_PER_TOKEN = 4
CHAT_TEMPLATE_TOKENS = 32
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
VLLM_ASLEEP_GIB = 1.0     # what a sleeping colocated engine keeps (unmeasured: the GPU check measures it)
HEADROOM_GIB = 1.5        # CUDA context and kernels + NCCL buffers, outside the allocator's count
FRAGMENTATION = 0.05      # reserved above allocated, as a share of the estimate
ZERO_STAGES = ("none", "zero1", "zero2", "zero3", "zero3_offload")


@dataclass(frozen=True)
class MemoryInputs:
    """Everything the estimate depends on, for one stage on one device."""

    sizes: ModelSizes
    world_size: int
    zero: str                      # one of ZERO_STAGES
    weight_bytes: int              # w: 2 for bf16, 4 for float32
    micro_batch: int               # b
    generation_batch: int          # G
    visual_tokens: int             # per item
    prompt_tokens: int             # text, per item
    completion_tokens: int
    gradient_checkpointing: bool
    freeze_vision: bool = False
    lora_parameters: int = 0       # > 0: LoRA (base frozen)
    beta: float = 0.0
    vllm_gib: float = 0.0          # colocated vLLM's share while it generates (0: HF generation)
    vllm_sleeps: bool = True       # asleep (VLLM_ASLEEP_GIB) outside generation
    validation_batch: int = 0      # > 0: a validation phase (items decoded at once)
    validation_visual_tokens: int = 0
    validation_new_tokens: int = 0

    def __post_init__(self) -> None:
        if self.zero not in ZERO_STAGES:
            raise MemoryPlanError(f"DeepSpeed set-up {self.zero!r} not in {ZERO_STAGES}")


@dataclass
class MemoryEstimate:
    """Per-device bytes by term (GiB), the three phases and their maximum."""

    parameters: int
    trainable_parameters: int
    terms_gib: dict[str, float] = field(default_factory=dict)
    phases_gib: dict[str, float] = field(default_factory=dict)

    @property
    def per_device_gib(self) -> float:
        return max(self.phases_gib.values())

    @property
    def headroom_gib(self) -> float:
        """What the GPU must have beyond the estimate (see the module docstring)."""
        return HEADROOM_GIB + FRAGMENTATION * self.per_device_gib

    def fits(self, gpu_gib: float) -> bool:
        return self.per_device_gib + self.headroom_gib <= gpu_gib

    def to_json(self) -> dict:
        return {"memory_per_device_gib": round(self.per_device_gib, 2),
                "headroom_gib": round(self.headroom_gib, 2), **asdict(self)}


def layer_bytes(width: int, kv: int, mlp: int, with_gradients: bool) -> int:
    """bf16 bytes one decoder (or vision) layer keeps per token for its backward pass:
    RMSNorms with their fp32 temporaries, q/k/v and their rotary copies, attention output
    (22 x width + 8 x kv), gate, up, activation and product (8 x MLP width), and with the
    layer's own gradients alive during its backward, 6 x MLP width more."""
    return 22 * width + 8 * kv + (14 if with_gradients else 8) * mlp


def estimate(x: MemoryInputs) -> MemoryEstimate:
    """The formula of this module's docstring."""
    m, n, w = x.sizes, x.world_size, x.weight_bytes
    counts = parameter_counts(m)
    base = counts["total"]
    lora = x.lora_parameters > 0
    if lora:
        trainable, frozen = x.lora_parameters, base
    else:
        trainable = base - (counts["vision"] if x.freeze_vision else 0)
        frozen = base - trainable
    deepspeed = x.zero != "none"
    offload = x.zero == "zero3_offload"
    zero3 = x.zero.startswith("zero3")

    if offload:
        states = {"weights": 0.0, "trainable_states": 0.0}   # all in host memory
    elif deepspeed:   # DeepSpeed casts adapters to bf16 too and keeps fp32 masters
        gradients = 2 * trainable / (1 if x.zero == "zero1" else n)
        states = {"weights": w * (frozen + trainable) / (n if zero3 else 1),
                  "trainable_states": gradients + (DS_BF16_TRAINABLE - 4) * trainable / n}
    elif lora:
        states = {"weights": w * frozen, "trainable_states": LORA_TRAINABLE * trainable}
    else:
        states = {"weights": w * base, "trainable_states": 3 * w * trainable}
    reference = 0.0
    if x.beta > 0 and not lora:
        reference = 0.0 if offload else w * base / (n if zero3 else 1)
    vllm_awake = x.vllm_gib * GIB
    vllm_resident = min(VLLM_ASLEEP_GIB * GIB, vllm_awake) if x.vllm_sleeps else vllm_awake
    held = sum(states.values()) + reference + vllm_resident

    S = x.visual_tokens + x.prompt_tokens + x.completion_tokens
    H, F, kv, L = m.hidden, m.intermediate, m.kv, m.layers
    whole = w * base if zero3 else 0.0   # ZeRO-3 gathers the whole policy to generate

    def decoding(items: int, seq: int, new: int) -> tuple[float, float]:
        """KV cache and prefill transient of ``items`` sequences of ``seq`` tokens."""
        return items * seq * L * 2 * kv * w, items * (seq - new) * 3 * F * w

    if x.vllm_gib:
        gathered = kv_cache = prefill = 0.0
    else:
        gathered = whole
        kv_cache, prefill = decoding(x.generation_batch, S, x.completion_tokens)
    tokens = x.micro_batch * S
    vision_trains = not lora and not x.freeze_vision
    patches = x.micro_batch * x.visual_tokens * m.merge**2 if vision_trains else 0
    scale = w / 2   # the per-token factors are bf16 bytes
    text = lambda grads: tokens * layer_bytes(H, kv, F, grads) * scale  # noqa: E731
    vision = lambda grads: patches * layer_bytes(m.vision_hidden, m.vision_hidden,  # noqa: E731
                                                 m.vision_intermediate, grads) * scale
    if x.gradient_checkpointing:
        saved = (L * tokens * H + m.vision_depth * patches * m.vision_hidden) * w
        layer = max(text(True), vision(True))
    else:
        saved = L * text(False) + m.vision_depth * vision(False)
        layer = tokens * 6 * F * scale   # the gradients of the last layer's MLP
    lora_inputs = tokens * (24 * H + 4 * F) if lora else 0.0
    working = w * m.vocab * H if zero3 else 0.0
    fp32_grads = 4 * min(trainable / n, DS_SUB_GROUP if zero3 else trainable) if deepspeed and not offload else 0.0

    terms = {**states, "reference": reference, "vllm": vllm_awake, "vllm_asleep": vllm_resident,
             "generation_gathered_weights": gathered, "kv_cache": kv_cache, "prefill": prefill,
             "checkpointed_activations" if x.gradient_checkpointing else "activations": saved,
             "layer_recompute" if x.gradient_checkpointing else "last_layer_gradients": layer,
             "lora_inputs": lora_inputs, "zero3_gathered_module": working,
             "step_fp32_gradients": fp32_grads}
    phases = {"generation": held - vllm_resident + vllm_awake + gathered + kv_cache + prefill,
              "training": held + saved + layer + lora_inputs + working,
              "optimizer_step": held + fp32_grads}
    if x.validation_batch:
        val_seq = x.validation_visual_tokens + x.prompt_tokens + x.validation_new_tokens
        val_kv, val_prefill = decoding(x.validation_batch, val_seq, x.validation_new_tokens)
        terms.update(validation_gathered_weights=whole, validation_kv_cache=val_kv,
                     validation_prefill=val_prefill)
        phases["validation"] = held + whole + val_kv + val_prefill
    result = MemoryEstimate(parameters=base + (trainable if lora else 0), trainable_parameters=trainable)
    result.terms_gib = {k: round(v / GIB, 3) for k, v in terms.items()
                        if v or k not in ("vllm", "vllm_asleep")}
    result.phases_gib = {k: round(v / GIB, 3) for k, v in phases.items()}
    return result


# --- the adapter from configs -------------------------------------------------------------


def zero_setup(cfg) -> str:
    """One of ``ZERO_STAGES``, read from the DeepSpeed config file (``none``: no DeepSpeed)."""
    from preresq.training.deepspeed_config import deepspeed_config_path

    path = deepspeed_config_path(cfg)
    if path is None:
        return "none"
    zero = json.loads(Path(path).read_text()).get("zero_optimization", {})
    stage = int(zero.get("stage", 0))
    offloaded = [(zero.get(k) or {}).get("device", "none") not in ("none", None)
                 for k in ("offload_param", "offload_optimizer")]
    if stage == 3 and all(offloaded):
        return "zero3_offload"
    if any(offloaded):
        raise MemoryPlanError(f"{path}: the memory plan models CPU offload of both parameters and "
                              f"optimizer under ZeRO-3 only (configs/deepspeed/zero3_offload.json)")
    if stage == 3:
        return "zero3"
    if stage not in (1, 2):
        raise MemoryPlanError(f"{path}: ZeRO stage {stage} is not modelled by the memory plan (1, 2 or 3)")
    return f"zero{stage}"


def prompt_tokens(cfg, modality: str) -> int:
    """Text tokens of the longest prompt template, estimated without a tokenizer."""
    from preresq.prompts import load_template

    chars = max(len(load_template(str(t))) for t in cfg.prompt[modality].templates)
    return math.ceil(chars / PROMPT_CHARS_PER_TOKEN) + CHAT_TEMPLATE_TOKENS


def item_visual_tokens(cfg) -> int:
    """Visual tokens of one item: its image(s) at ``data.max_image_pixels`` capped by
    ``model.max_pixels``, or a video's views (``configs/video``)."""
    from preresq.training.vllm import visual_tokens

    modality = str(cfg.data.modality)
    pixels = int(cfg.model.max_pixels)
    if modality == "image" and cfg.data.get("max_image_pixels"):
        pixels = min(pixels, int(cfg.data.max_image_pixels))
    video = plain_dict(cfg.video) if modality == "video" and cfg.get("video") else None
    return visual_tokens(modality, pixels, 1, video)


def validation_visual_tokens(cfg) -> int:
    """Visual tokens of one validation item: ``model.max_pixels``, capped by the largest image
    of the validation set when its card states it (``validation.benchmark``, or the data's
    own card for its val split)."""
    from preresq.training.vllm import visual_tokens

    pixels = int(cfg.model.max_pixels)
    name = cfg.validation.get("benchmark")
    if name:
        from preresq.data.benchmarks import load_card

        card = load_card(str(name), paths=cfg.paths)
        modality, largest = card.modality, card.max_image_pixels
    else:
        modality, largest = str(cfg.data.modality), cfg.data.get("max_image_pixels")
    if modality == "image" and largest:
        pixels = min(pixels, int(largest))
    video = plain_dict(cfg.video) if modality == "video" and cfg.get("video") else None
    return visual_tokens(modality, pixels, 1, video)


def stage_inputs(cfg, plan, gpu_gib: float | None = None) -> MemoryInputs:
    """``MemoryInputs`` of one stage's config and schedule (``schedule.StagePlan``)."""
    sizes, _ = model_sizes(cfg.model)
    args = cfg.trainer.args
    lora = cfg.model.get("lora")
    adapters = 0
    if lora:
        lora = plain_dict(lora)
        adapters = lora_parameters(sizes, int(lora["r"]), lora["target_modules"])
    dtype = str(cfg.model.get("dtype") or "float32")
    if dtype not in DTYPE_BYTES:
        raise MemoryPlanError(f"model.dtype={dtype!r}: the memory plan knows {sorted(DTYPE_BYTES)}")
    vllm_gib = 0.0
    colocate = bool(args.get("use_vllm")) and args.get("vllm_mode", "colocate") == "colocate"
    if colocate and gpu_gib:
        vllm_gib = float(args.get("vllm_gpu_memory_utilization") or 0.0) * gpu_gib
    sleeps = args.get("vllm_enable_sleep_mode")   # null: on when colocated (train.grpo_args)
    validation = cfg.get("validation") or {}
    val_batch = int(validation.get("batch_size") or 16) if validation.get("enabled") else 0
    val_new = validation.get("max_new_tokens")
    return MemoryInputs(
        sizes=sizes, world_size=plan.world_size, zero=zero_setup(cfg), weight_bytes=DTYPE_BYTES[dtype],
        micro_batch=plan.per_device_train_batch_size, generation_batch=plan.completions_per_device,
        visual_tokens=item_visual_tokens(cfg), prompt_tokens=prompt_tokens(cfg, str(cfg.data.modality)),
        completion_tokens=int(args.max_completion_length),
        gradient_checkpointing=bool(cfg.model.get("gradient_checkpointing")),
        freeze_vision=bool(cfg.model.get("freeze_vision")), lora_parameters=adapters,
        beta=float(args.get("beta") or 0.0), vllm_gib=vllm_gib,
        vllm_sleeps=colocate if sleeps is None else bool(sleeps), validation_batch=val_batch,
        validation_visual_tokens=validation_visual_tokens(cfg) if val_batch else 0,
        validation_new_tokens=int(args.max_completion_length if val_new is None else val_new))


def plan_memory(stage_cfgs, plans, gpu_gib: float | None = None) -> list[MemoryEstimate]:
    """One estimate per stage (``stage_cfgs``: the (name, config) pairs of ``stage_configs``)."""
    return [estimate(stage_inputs(scfg, plan, gpu_gib))
            for (_, scfg), plan in zip(stage_cfgs, plans, strict=True)]


def gpu_memory_gib(cfg, real_run: bool) -> float | None:
    """The memory to plan against: ``gpu_memory_gib`` when set; on a real GPU run, the CUDA
    device's total; otherwise (CPU, or ``plan_only`` without it) None: no check."""
    if cfg.get("gpu_memory_gib") is not None:
        return float(cfg.gpu_memory_gib)
    if not real_run or cfg.trainer.args.get("use_cpu"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory / GIB


def memory_lines(names: list[str], estimates: list[MemoryEstimate], gpu_gib: float | None) -> list[str]:
    """The plan's memory for people: one line per stage, its phases and largest terms."""
    against = f" (GPU: {gpu_gib:.1f} GiB)" if gpu_gib else " (no GPU memory given: not checked)"
    lines = [f"memory plan per device{against}, formula in preresq/training/memory_plan.py:"]
    for name, e in zip(names, estimates, strict=True):
        phases = ", ".join(f"{k} {_gib(v)}" for k, v in e.phases_gib.items())
        top = sorted(e.terms_gib.items(), key=lambda kv: -kv[1])[:4]
        lines.append(f"  {name}: {_gib(e.per_device_gib)} GiB + {_gib(e.headroom_gib)} headroom ({phases}; largest: "
                     + ", ".join(f"{k} {_gib(v)}" for k, v in top)
                     + f"; {_count(e.trainable_parameters)} of {_count(e.parameters)} parameters trained)")
    return lines


def _gib(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}" if value >= 0.01 else f"{value:.2g}"


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def check_fits(names: list[str], estimates: list[MemoryEstimate], gpu_gib: float | None) -> None:
    """Raise ``MemoryPlanError`` naming the stages that do not fit and the ways out."""
    if gpu_gib is None:
        return
    over = [(n, e) for n, e in zip(names, estimates, strict=True) if not e.fits(gpu_gib)]
    if not over:
        return
    what = "; ".join(f"stage {n!r} needs about {_gib(e.per_device_gib)} GiB per device "
                     f"+ {_gib(e.headroom_gib)} GiB headroom" for n, e in over)
    raise MemoryPlanError(
        f"the memory plan does not fit: {what}, the GPU has {gpu_gib:.1f} GiB "
        f"(gpu_memory_gib; null reads the CUDA device). Ways out: more GPUs "
        f"(`torchrun --nproc_per_node=N scripts/train.py ...`: ZeRO-3 divides the model states "
        f"by N; check with plan_only=true world_size=N), LoRA with the vision tower frozen "
        f"(+experiment=iqa_6k_lora), the 3B policy (model=qwen2_5_vl_3b), or ZeRO-3 with CPU "
        f"offload (trainer.deepspeed=zero3_offload: model states in host memory, slower); "
        f"a smaller trainer.max_completions_per_device shrinks the activations. The plan is an "
        f"estimate (preresq/training/memory_plan.py says how close, and why the headroom): to "
        f"try anyway, set gpu_memory_gib above the estimate plus the headroom.")


def add_to_summary(summary: dict, estimates: list[MemoryEstimate], gpu_gib: float | None) -> dict:
    """``plan_summary``'s dict with each stage's ``memory_per_device_gib`` (and its terms)."""
    for stage, e in zip(summary["stages"], estimates, strict=True):
        stage.update(e.to_json())
    summary["gpu_memory_gib"] = None if gpu_gib is None else round(gpu_gib, 2)
    summary["fits"] = None if gpu_gib is None else all(e.fits(gpu_gib) for e in estimates)
    return summary



@dataclass
class RunMemory:
    """Every stage's estimate, and the GPU memory they are checked against (None: no check)."""

    names: list[str]
    estimates: list[MemoryEstimate]
    gpu_gib: float | None

    def lines(self) -> list[str]:
        return memory_lines(self.names, self.estimates, self.gpu_gib)

    def check(self) -> None:
        check_fits(self.names, self.estimates, self.gpu_gib)

    def add_to(self, summary: dict) -> dict:
        return add_to_summary(summary, self.estimates, self.gpu_gib)


def run_memory(cfg, plans, real_run: bool) -> RunMemory:
    """The memory plan of a run: before any weights load (``train``), or for ``plan_only``
    (``real_run=False``: checked only against an explicit ``gpu_memory_gib``)."""
    from preresq.training.stages import stage_configs

    stages = stage_configs(cfg)
    gpu_gib = gpu_memory_gib(cfg, real_run)
    return RunMemory([name for name, _ in stages], plan_memory(stages, plans, gpu_gib), gpu_gib)
