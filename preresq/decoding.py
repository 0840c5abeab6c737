"""How completions are drawn, from our config only, never from a checkpoint.

A checkpoint's ``generation_config.json`` carries sampling settings its authors chose for
chat: Qwen2.5-VL-7B-Instruct ships ``repetition_penalty`` 1.05, ``top_k`` 1, ``top_p``
0.001, temperature 0.1 and ``do_sample`` true. transformers fills every generation field
we leave unset (``None``) from the model's ``generation_config``, and applies a repetition
penalty to the prompt's tokens too, so a two-decimal rating gets pushed off digits that
appeared before. TRL's rollouts use penalty 1.0; evaluation must decode like training.

So: ``Decoding`` (``cfg.decoding`` of ``configs/eval.yaml``) states every setting, and
``neutral_generation_config`` keeps of a checkpoint's settings only what says *when to
stop* (token ids), which the model loader installs on every model it loads and
``HFPredictor`` installs around each ``generate`` call.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass

# What a checkpoint's generation config may keep: the special token ids (when to stop,
# what pads), never how to choose tokens.
TOKEN_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


@dataclass(frozen=True)
class Decoding:
    """Greedy with repetition penalty 1.0 by default (as TRL's rollouts); sampling with N
    samples per item (self-consistency: the score is the mean of the valid samples)."""

    max_new_tokens: int = 256
    do_sample: bool = False
    num_samples: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None
    repetition_penalty: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"decoding.num_samples must be >= 1, got {self.num_samples}")
        if self.num_samples > 1 and not self.do_sample:
            raise ValueError("decoding.num_samples > 1 needs decoding.do_sample=true "
                             "(greedy decoding gives N identical samples)")
        if self.max_new_tokens < 1:
            raise ValueError(f"decoding.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.repetition_penalty is None or self.repetition_penalty <= 0:
            raise ValueError("decoding.repetition_penalty must be a positive number (1.0: none); "
                             "the checkpoint's own setting is never used")

    @classmethod
    def from_cfg(cls, cfg) -> Decoding:
        """From an eval config: ``cfg.decoding`` plus its ``max_new_tokens`` and ``seed``."""
        fields = dict(cfg.get("decoding") or {})
        return cls(max_new_tokens=int(cfg.max_new_tokens), seed=int(cfg.seed), **fields)

    def generation_config(self, stop_from=None, tokenizer=None):
        """A transformers ``GenerationConfig`` with every choice made here.

        Args:
            stop_from: a checkpoint's generation config: only its token ids are kept.
            tokenizer: fills pad/eos ids the checkpoint does not give.
        """
        cfg = neutral_generation_config(stop_from)
        cfg.max_new_tokens = self.max_new_tokens
        cfg.do_sample = self.do_sample
        cfg.num_return_sequences = self.num_samples
        cfg.repetition_penalty = float(self.repetition_penalty)
        # Explicit neutral values, not None: None would be filled from the model's config.
        cfg.temperature = float(self.temperature) if self.do_sample else 1.0
        cfg.top_p = float(self.top_p) if self.do_sample else 1.0
        cfg.top_k = int(self.top_k or 0) if self.do_sample else 0
        if tokenizer is not None:
            if cfg.pad_token_id is None:
                cfg.pad_token_id = tokenizer.pad_token_id
            if cfg.eos_token_id is None:
                cfg.eos_token_id = tokenizer.eos_token_id
        return cfg


def item_seed(seed: int, item_id: str) -> int:
    """The sampling seed of one item: a hash of the run's ``seed`` and the item's id.

    The same on every run and on every rank (a process's share does not change it), and
    different per item, so that sample i of two items do not share a random stream (vLLM
    gives sample i of a request ``seed + i``: 62 bits leave room for that and make two
    items' ranges overlapping as unlikely as a hash collision).
    """
    digest = hashlib.sha256(f"{int(seed)}\0{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2


def neutral_generation_config(base=None):
    """A ``GenerationConfig`` with library defaults and only ``base``'s token ids."""
    from transformers import GenerationConfig

    cfg = GenerationConfig()
    if base is not None:
        for field in TOKEN_FIELDS:
            value = getattr(base, field, None)
            if value is not None:
                setattr(cfg, field, value)
    return cfg


@contextmanager
def neutral_defaults(model):
    """Within the block, ``model.generation_config`` holds token ids only (then restored).

    ``generate`` fills the fields a passed config leaves unset from the model's own config;
    this makes sure nothing a checkpoint ships reaches those fields.
    """
    original = getattr(model, "generation_config", None)
    model.generation_config = neutral_generation_config(original)
    try:
        yield
    finally:
        model.generation_config = original
