"""The sizes of a Qwen2.5-VL (or Qwen2-VL) policy that the memory plan counts with.

Parameter counts come from the architecture alone (a ``config.json``, the tiny model's
settings, or a model config's ``sizes`` block): no weights are read. The 7B count,
8,292,166,656, equals the loaded model's; the tiny model is matched layer by layer in
``tests/test_memory_plan.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class MemoryPlanError(RuntimeError):
    """The plan does not fit the GPU, or cannot be made from the config."""


@dataclass(frozen=True)
class ModelSizes:
    """The dimensions of a Qwen2.5-VL (or Qwen2-VL) that set its parameter count."""

    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    tied: bool
    vision_hidden: int
    vision_intermediate: int     # Qwen2-VL: hidden x mlp_ratio
    vision_depth: int
    vision_out: int              # the merger's output width (the language model's)
    vision_kind: str = "qwen2_5_vl"   # or "qwen2_vl" (LayerNorm, plain MLP)
    patch: int = 14
    temporal_patch: int = 2
    merge: int = 2
    in_channels: int = 3

    @property
    def kv(self) -> int:
        return self.kv_heads * (self.hidden // self.heads)


def sizes_from_hf(config: Mapping) -> ModelSizes:
    """``ModelSizes`` from a Qwen2.5-VL / Qwen2-VL ``config.json`` (text fields at the top
    level, as on the hub, or under ``text_config``, as transformers 5 writes them)."""
    text = dict(config.get("text_config") or config)
    vision = dict(config["vision_config"])
    kind = str(config.get("model_type", "qwen2_5_vl"))
    tied = bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False)))
    if kind == "qwen2_vl":
        width = int(vision["embed_dim"])
        vision_sizes = dict(vision_hidden=width, vision_intermediate=int(width * vision.get("mlp_ratio", 4)),
                            vision_out=int(vision.get("hidden_size", text["hidden_size"])))
    elif kind == "qwen2_5_vl":
        vision_sizes = dict(vision_hidden=int(vision["hidden_size"]),
                            vision_intermediate=int(vision["intermediate_size"]),
                            vision_out=int(vision.get("out_hidden_size", text["hidden_size"])))
    else:
        raise MemoryPlanError(f"the memory plan knows Qwen2.5-VL and Qwen2-VL, not model_type {kind!r}")
    return ModelSizes(vocab=int(text["vocab_size"]), hidden=int(text["hidden_size"]),
                      intermediate=int(text["intermediate_size"]), layers=int(text["num_hidden_layers"]),
                      heads=int(text["num_attention_heads"]), kv_heads=int(text["num_key_value_heads"]),
                      tied=tied, vision_depth=int(vision["depth"]), vision_kind=kind,
                      patch=int(vision.get("patch_size", 14)),
                      temporal_patch=int(vision.get("temporal_patch_size", 2)),
                      merge=int(vision.get("spatial_merge_size", 2)),
                      in_channels=int(vision.get("in_channels", 3)), **vision_sizes)


def sizes_from_tiny(settings: Mapping) -> ModelSizes:
    """The tiny model's sizes (``model.tiny``; see ``preresq.models.tiny``), its vocabulary
    being the byte-level BPE plus Qwen's special tokens."""
    from preresq.models.tiny import DEFAULTS, SPECIAL_TOKENS

    s = {**DEFAULTS, **dict(settings)}
    vision = (dict(embed_dim=s["vision_hidden_size"], mlp_ratio=2, hidden_size=s["text_hidden_size"])
              if s["architecture"] == "qwen2_vl" else
              dict(hidden_size=s["vision_hidden_size"], intermediate_size=s["vision_intermediate_size"],
                   out_hidden_size=s["text_hidden_size"]))
    return sizes_from_hf({
        "model_type": s["architecture"], "tie_word_embeddings": False,
        "text_config": dict(vocab_size=s["bpe_vocab_size"] + len(SPECIAL_TOKENS),
                            hidden_size=s["text_hidden_size"], intermediate_size=s["text_intermediate_size"],
                            num_hidden_layers=s["text_layers"], num_attention_heads=s["text_heads"],
                            num_key_value_heads=s["text_kv_heads"]),
        "vision_config": dict(depth=s["vision_depth"], **vision)})


def linear_layers(m: ModelSizes) -> list[tuple[str, int, int, bool]]:
    """Every linear layer as (module name, in features, out features, has bias), named as in
    transformers' Qwen2.5-VL (what peft's ``target_modules`` are matched against)."""
    H, F, kv = m.hidden, m.intermediate, m.kv
    out = []
    for i in range(m.layers):
        p = f"model.language_model.layers.{i}."
        out += [(p + "self_attn.q_proj", H, H, True), (p + "self_attn.k_proj", H, kv, True),
                (p + "self_attn.v_proj", H, kv, True), (p + "self_attn.o_proj", H, H, False),
                (p + "mlp.gate_proj", H, F, False), (p + "mlp.up_proj", H, F, False),
                (p + "mlp.down_proj", F, H, False)]
    Hv, Iv = m.vision_hidden, m.vision_intermediate
    for i in range(m.vision_depth):
        p = f"model.visual.blocks.{i}."
        out += [(p + "attn.qkv", Hv, 3 * Hv, True), (p + "attn.proj", Hv, Hv, True)]
        if m.vision_kind == "qwen2_vl":
            out += [(p + "mlp.fc1", Hv, Iv, True), (p + "mlp.fc2", Iv, Hv, True)]
        else:
            out += [(p + "mlp.gate_proj", Hv, Iv, True), (p + "mlp.up_proj", Hv, Iv, True),
                    (p + "mlp.down_proj", Iv, Hv, True)]
    merged = Hv * m.merge**2
    out += [("model.visual.merger.mlp.0", merged, merged, True),
            ("model.visual.merger.mlp.2", merged, m.vision_out, True)]
    return out


def parameter_counts(m: ModelSizes) -> dict[str, int]:
    """Parameters of the language model (with embeddings and LM head) and of the vision tower."""
    linear = {"text": 0, "vision": 0}
    for name, fan_in, fan_out, bias in linear_layers(m):
        linear["vision" if ".visual." in name else "text"] += fan_in * fan_out + (fan_out if bias else 0)
    text = linear["text"] + m.vocab * m.hidden * (1 if m.tied else 2) + m.hidden * (2 * m.layers + 1)
    norm = 2 if m.vision_kind == "qwen2_vl" else 1   # LayerNorm has a bias, RMSNorm does not
    vision = (linear["vision"] + m.in_channels * m.temporal_patch * m.patch**2 * m.vision_hidden
              + norm * m.vision_hidden * (2 * m.vision_depth + 1))
    return {"text": text, "vision": vision, "total": text + vision}


def lora_parameters(m: ModelSizes, r: int, target_modules) -> int:
    """Adapter parameters: ``r (in + out)`` per targeted linear layer, matched as peft does
    (a string is a regular expression for the whole name; a list, name suffixes)."""
    if isinstance(target_modules, str):
        if target_modules == "all-linear":
            raise MemoryPlanError("model.lora.target_modules='all-linear' is not modelled by the "
                                  "memory plan; list the modules or give a regular expression")
        hit = lambda name: re.fullmatch(target_modules, name) is not None  # noqa: E731
    else:
        names = [str(t) for t in target_modules]
        hit = lambda name: any(name == t or name.endswith("." + t) for t in names)  # noqa: E731
    total = sum(r * (fan_in + fan_out) for name, fan_in, fan_out, _ in linear_layers(m) if hit(name))
    if total == 0:
        raise MemoryPlanError(f"model.lora.target_modules={target_modules!r} matches no linear layer")
    return total


def model_sizes(model_cfg) -> tuple[ModelSizes, str]:
    """The policy's sizes and where they came from: a local ``config.json`` (the folder that
    will load), the ``model.tiny`` settings, or the ``model.sizes`` block of the model config."""
    name = model_cfg.get("name_or_path")
    if name and (Path(str(name)) / "config.json").is_file():
        path = Path(str(name)) / "config.json"
        return sizes_from_hf(json.loads(path.read_text())), str(path)
    if name and (Path(str(name)) / "adapter_config.json").is_file():
        base = json.loads((Path(str(name)) / "adapter_config.json").read_text())["base_model_name_or_path"]
        return model_sizes({**plain_dict(model_cfg), "name_or_path": base})
    if not name and model_cfg.get("tiny"):
        return sizes_from_tiny(plain_dict(model_cfg["tiny"])), "model.tiny"
    sizes = model_cfg.get("sizes")
    if sizes:
        return sizes_from_hf(plain_dict(sizes)), "model.sizes"
    raise MemoryPlanError(
        f"the memory plan needs the policy's architecture: model.name_or_path={name!r} is not a "
        f"local folder with config.json and the model config has no `sizes` block (copy "
        f"text_config/vision_config from the model's config.json, see configs/model/qwen2_5_vl_7b.yaml)")


def plain_dict(node) -> dict:
    """A config node (or a mapping) as a plain dict, interpolations resolved."""
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


