"""Batched generation with a transformers model (``predictor=hf``): left padding, greedy or
sampled, with a dynamic or a static KV cache and optionally compiled decoding.

Decoding one token costs a batch of 1 or 64 about the same on a GPU (~90 ms for the 3B:
Python and kernel launches for ~7,000 small operations, against ~1.5 ms of weight reads;
issue 20), so the fast path removes that fixed cost: a **static cache**
(``predictor.cache_implementation: static``, fixed-size tensors allocated once per call)
lets transformers **compile** the decode step (``predictor.compile``: ``torch.compile`` in
"reduce-overhead" mode, i.e. CUDA graphs, transformers' own ``CompileConfig`` default).
A compiled step is recorded per tensor shape, so the shapes are kept to a bounded set
(``fixed_shapes``, ``preresq.evaluation.shapes``): batch sizes and prompt lengths on a
ladder of four sizes per doubling (a smaller last batch padded up with copies of its last
request, prompts left padded to ``length_bucket``; the token budget ``batch_tokens`` is
checked before the length padding, which adds at most 25%).

``auto`` (the default of both keys) picks the static cache and compiling on CUDA and the
dynamic cache without compiling elsewhere: on CPU the compiled step buys nothing for the
tiny model and costs a long compile. That CUDA default is a reasoned choice, not yet
measured (no GPU was lent to this work): ``scripts/gpu_eval_check.py`` measures each path.
"""

from __future__ import annotations

from collections.abc import Sequence

from preresq.decoding import Decoding, neutral_defaults
from preresq.evaluation.requests import Request, prompt_text, text_tokens
from preresq.evaluation.shapes import bucket_up, pad_requests

CACHE_IMPLEMENTATIONS = (None, "dynamic", "static", "auto")


def decode_path(cache_implementation: str | None, compile_: bool | str | None,
                device_type: str) -> tuple[str | None, bool]:
    """(cache implementation for ``generate``: None (dynamic) or ``"static"``, compile?)
    from the config's values on a device of type ``device_type`` (``"cuda"``, ``"cpu"``)."""
    if cache_implementation not in CACHE_IMPLEMENTATIONS:
        raise ValueError(f"predictor.cache_implementation must be null (dynamic), static or auto; "
                         f"got {cache_implementation!r}")
    if compile_ not in (None, True, False, "auto"):
        raise ValueError(f"predictor.compile must be true, false or auto; got {compile_!r}")
    cuda = device_type == "cuda"
    cache = {"auto": "static" if cuda else None, "dynamic": None}.get(cache_implementation,
                                                                      cache_implementation)
    compiled = (cuda and cache == "static") if compile_ == "auto" else bool(compile_)
    if compiled and cache != "static":
        raise ValueError("predictor.compile=true needs predictor.cache_implementation=static "
                         "(a compiled decode step needs fixed-size cache tensors)")
    return cache, compiled


def length_bucket(length: int) -> int:
    """The smallest of 4, 5, 6, 7 x 2^k (k >= 2, so at least 16) that holds ``length``:
    at most 25% padding, four prompt lengths per doubling."""
    return bucket_up(length, smallest=16)


def pad_left(inputs: dict, length: int, pad_token_id: int) -> dict:
    """``inputs`` with its per-token tensors left padded to ``length`` tokens.

    Padding is masked (``attention_mask`` 0) and marked text (``mm_token_type_ids`` 0), the
    same as the processor's own left padding, so the answers do not change.
    """
    import torch

    width = inputs["input_ids"].shape[1]
    if length <= width:
        return inputs
    extra = length - width
    fill = {"input_ids": pad_token_id, "attention_mask": 0, "mm_token_type_ids": 0,
            "token_type_ids": 0}
    out = dict(inputs)
    for key, value in fill.items():
        if key in inputs:
            tensor = inputs[key]
            pad = torch.full((tensor.shape[0], extra), value, dtype=tensor.dtype, device=tensor.device)
            out[key] = torch.cat([pad, tensor], dim=1)
    return out


class HFPredictor:
    """Batched generation with a transformers model; prompts padded on the left.

    Args:
        model, processor: the policy and its processor.
        decoding: greedy or sampling settings (ours only, never the checkpoint's).
        device: where inputs go (default: the model's first parameter's device).
        cache_implementation: None or "dynamic" (grows per token), "static" or "auto".
        compile: True, False or "auto" (see the module docstring).
    """

    def __init__(self, model, processor, decoding: Decoding, device=None,
                 cache_implementation: str | None = None, compile: bool | str | None = False,
                 synced_gpus: bool | None = None) -> None:
        import torch

        # synced_gpus: transformers' own choice by default (on under ZeRO-3 with several
        # processes: every rank steps until all are done). False for a model whose weights
        # are gathered on every rank, so that ranks can generate different items.
        self.synced_gpus = synced_gpus
        self.model = model.eval()
        self.processor = processor
        self.decoding = decoding
        self.device = device if device is not None else next(model.parameters()).device
        self.cache_implementation, self.compile = decode_path(
            cache_implementation, compile, torch.device(self.device).type)
        self.generation_config = self._generation_config()
        if decoding.do_sample:
            torch.manual_seed(decoding.seed)

    @property
    def fixed_shapes(self) -> bool:
        """Whether batches should come in a bounded set of shapes (compiled decoding)."""
        return self.compile

    def _generation_config(self):
        # Every choice from ``self.decoding``; of the checkpoint's settings only token ids.
        cfg = self.decoding.generation_config(getattr(self.model, "generation_config", None),
                                              self.processor.tokenizer)
        cfg.cache_implementation = self.cache_implementation
        if self.compile:
            from transformers import CompileConfig

            cfg.compile_config = CompileConfig()  # reduce-overhead: CUDA graphs
            # transformers compiles on CUDA only unless told otherwise; compile=true is honoured
            # wherever it is asked (on CPU: slow, for checking that answers stay the same).
            cfg.compile_config._compile_all_devices = True
        else:
            cfg.disable_compile = True
        return cfg

    def prompt_text(self, messages: list[dict], add_vision_id: bool = False) -> str:
        """The chat-templated prompt, ending where the assistant's answer starts."""
        return prompt_text(self.processor, messages, add_vision_id)

    def text_tokens(self, messages: list[dict], add_vision_id: bool = False) -> int:
        """Tokens of the prompt's text, image placeholders left out (for batches by tokens)."""
        return text_tokens(self.processor, messages, add_vision_id)

    def inputs(self, requests: Sequence[Request]) -> dict:
        """Everything the processor returns for ``requests`` (ids, mask, ``mm_token_type_ids``
        where it makes them, pixels, grids), left padded, on the device."""
        texts = [self.prompt_text(r.messages, r.add_vision_id) for r in requests]
        images = [image for r in requests for image in r.images]
        inputs = dict(self.processor(text=texts, images=images or None, padding=True,
                                     padding_side="left", return_tensors="pt"))
        if self.fixed_shapes:
            inputs = pad_left(inputs, length_bucket(inputs["input_ids"].shape[1]),
                              int(self.generation_config.pad_token_id))
        return {k: v.to(self.device) for k, v in inputs.items()}

    def new_token_ids(self, requests: Sequence[Request]):
        """The generated token ids, ``num_samples`` rows per request (a row that stopped early
        is padded after its end-of-sequence token)."""
        import torch

        inputs = self.inputs(requests)
        if self.cache_implementation == "static":
            # transformers sizes a static cache for the longest call so far; size it for this
            # call instead, so that one long SPAQ batch does not make every later cache huge.
            self.model._previous_max_cache_length = -1
        with torch.inference_mode(), neutral_defaults(self.model):
            out = self.model.generate(**inputs, generation_config=self.generation_config,
                                      synced_gpus=self.synced_gpus)
        return out[:, inputs["input_ids"].shape[1]:]

    def generate(self, requests: Sequence[Request]) -> list[list[str]]:
        if not requests:
            return []
        n = self.decoding.num_samples
        asked = len(requests)
        if self.fixed_shapes:  # a batch size off the ladder: padded up, the copies dropped
            requests = pad_requests(requests, bucket_up(asked))
        ids = self.new_token_ids(requests)[:asked * n]  # each request's n rows are adjacent
        decoded = self.processor.batch_decode(ids, skip_special_tokens=True)
        return [decoded[i * n:(i + 1) * n] for i in range(asked)]

    def expected_scores(self, requests: Sequence[Request],
                        values: Sequence[int] = (1, 2, 3, 4, 5)) -> list[tuple[float, float]]:
        """Expected score of a one-token answer, from the first answer token's distribution.

        For prompts whose whole answer is one score written as one token (the demo's bare
        digit): the probabilities of the tokens ``str(v)`` are renormalised over ``values``
        and averaged, ``sum_v v * p(v) / sum_v p(v)`` (Q-Align's readout). Greedy decoding
        keeps only the most likely digit, so a small policy whose distribution moves with
        quality can still give one constant answer; the expectation keeps that signal.
        Returns ``(expected score, probability mass on the score tokens)`` per request.
        """
        import torch

        if not requests:
            return []
        tokenizer = self.processor.tokenizer
        ids = []
        for v in values:
            token_ids = tokenizer.encode(str(v), add_special_tokens=False)
            if len(token_ids) != 1:
                raise ValueError(f"score {v} is {len(token_ids)} tokens in this tokenizer; the "
                                 "expected-score readout needs one-token scores")
            ids.append(token_ids[0])
        inputs = self.inputs(requests)
        with torch.inference_mode():
            logits = self.model(**inputs).logits[:, -1, :].float()  # left padding: last = next
        probs = torch.softmax(logits, dim=-1)[:, ids]
        mass = probs.sum(-1)
        expected = (probs * torch.tensor(values, dtype=probs.dtype, device=probs.device)).sum(-1) / mass
        return list(zip(expected.tolist(), mass.tolist(), strict=True))
