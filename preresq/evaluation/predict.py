"""Turn benchmark items into cached predictions: batched generation, parsing, resuming.

The moving parts, each replaceable on its own:

* a *predictor* maps a batch of ``Request`` (chat messages + images) to N completions per
  request: ``HFPredictor`` (transformers ``generate``, left padding) or ``VLLMPredictor``
  (``preresq.evaluation.vllm_backend``). Tests pass any object with the same ``generate``.
* a ``PredictionCache`` (``preresq.evaluation.cache``) receives one row per item as soon
  as it is predicted, so an interrupted run resumes where it stopped.
* ``predict_records`` drives one process's share of a benchmark: media are opened lazily,
  one batch ahead in a background thread, so memory does not grow with the benchmark.

Scoring rule: the completion is read with ``preresq.parsing.parse_answer`` (the parser
used by the rewards). With N samples per item the prediction is the mean of the samples'
valid scores; an item none of whose samples holds a valid answer gets ``pred: null``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from preresq.data.records import Record
from preresq.data.video import VideoDecodeError
from preresq.evaluation.cache import PredictionCache
from preresq.evaluation.decoding import Decoding, neutral_defaults
from preresq.parsing import parse_answer
from preresq.prompts import build_messages, load_template

logger = logging.getLogger(__name__)

# What a broken media file raises: preresq.data.rows.MediaError (an OSError naming the file
# and item), other OSErrors, bad content (ValueError), an undecodable video
# (VideoDecodeError), and PIL's guard against absurd image sizes.
MEDIA_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, VideoDecodeError, Image.DecompressionBombError,
)


@dataclass
class Request:
    """One item to generate for: the chat messages (with image slots) and the images.

    ``add_vision_id`` asks the chat template to write "Picture 1:" before each image, as
    some peers' scripts do (``prompt.<modality>.add_vision_id``).
    """

    messages: list[dict]
    images: list[Image.Image]
    add_vision_id: bool = False


class Predictor(Protocol):
    """Anything that maps requests to ``num_samples`` completions each, in order."""

    def generate(self, requests: Sequence[Request]) -> list[list[str]]: ...


class HFPredictor:
    """Batched generation with a transformers model; prompts padded on the left."""

    def __init__(self, model, processor, decoding: Decoding, device=None,
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
        self.generation_config = self._generation_config()
        if decoding.do_sample:
            torch.manual_seed(decoding.seed)

    def _generation_config(self):
        # Every choice from ``self.decoding``; of the checkpoint's settings only token ids.
        return self.decoding.generation_config(getattr(self.model, "generation_config", None),
                                               self.processor.tokenizer)

    def prompt_text(self, messages: list[dict], add_vision_id: bool = False) -> str:
        """The chat-templated prompt, ending where the assistant's answer starts."""
        extra = {"add_vision_id": True} if add_vision_id else {}
        return self.processor.apply_chat_template(messages, add_generation_prompt=True,
                                                  tokenize=False, **extra)

    def generate(self, requests: Sequence[Request]) -> list[list[str]]:
        import torch

        if not requests:
            return []
        texts = [self.prompt_text(r.messages, r.add_vision_id) for r in requests]
        images = [image for r in requests for image in r.images]
        inputs = self.processor(text=texts, images=images or None, padding=True,
                                padding_side="left", return_tensors="pt").to(self.device)
        with torch.inference_mode(), neutral_defaults(self.model):
            out = self.model.generate(**inputs, generation_config=self.generation_config,
                                      synced_gpus=self.synced_gpus)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        decoded = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        n = self.decoding.num_samples
        return [decoded[i * n:(i + 1) * n] for i in range(len(requests))]

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
        texts = [self.prompt_text(r.messages, r.add_vision_id) for r in requests]
        images = [image for r in requests for image in r.images]
        inputs = self.processor(text=texts, images=images or None, padding=True,
                                padding_side="left", return_tensors="pt").to(self.device)
        with torch.inference_mode():
            logits = self.model(**inputs).logits[:, -1, :].float()  # left padding: last = next
        probs = torch.softmax(logits, dim=-1)[:, ids]
        mass = probs.sum(-1)
        expected = (probs * torch.tensor(values, dtype=probs.dtype, device=probs.device)).sum(-1) / mass
        return list(zip(expected.tolist(), mass.tolist(), strict=True))


# ----------------------------------------------------------------------------- scoring

def score_completions(completions: Sequence[str], num_scores: int,
                      answer_format: str = "tagged") -> dict:
    """One item's prediction from its completions (see the module docstring's rule).

    Returns a dict with ``pred`` (float or None), ``subscores`` (of the first sample, or
    None) and ``completion`` (the first sample's text); with more than one sample also
    ``completions`` and ``sample_preds`` (None for a sample without a valid answer).
    """
    parsed = [parse_answer(text, num_scores, answer_format) for text in completions]
    valid = [p.score for p in parsed if p.valid]
    row = {
        "pred": sum(valid) / len(valid) if valid else None,
        "subscores": list(parsed[0].subscores) if parsed[0].valid else None,
        "completion": completions[0],
    }
    if len(completions) > 1:
        row["completions"] = list(completions)
        row["sample_preds"] = [p.score for p in parsed]
    return row


# ----------------------------------------------------------------------------- driving

def shard(items: Sequence, rank: int, world_size: int) -> list:
    """This process's share: every ``world_size``-th item starting at ``rank``."""
    return list(items[rank::world_size])


@dataclass
class Loaded:
    """An item with its images, or the reason they could not be read."""

    record: Record
    images: list[Image.Image] | None = None
    error: str | None = None


def _load(record: Record, load_images: Callable[[Record], list[Image.Image]]) -> Loaded:
    try:
        return Loaded(record, images=load_images(record))
    except MEDIA_ERRORS as e:
        return Loaded(record, error=f"{type(e).__name__}: {e}")


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def load_ahead(records: Sequence[Record], batch_size: int,
               load_images: Callable[[Record], list[Image.Image]],
               ahead: int = 1, workers: int = 2) -> Iterator[list[Loaded]]:
    """Batches of loaded items; the next ``ahead`` batches load in threads meanwhile.

    At most ``ahead + 1`` batches of images are in memory at any time.
    """
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="media") as pool:
        pending: deque[list[Future]] = deque()
        for batch in _batches(records, batch_size):
            pending.append([pool.submit(_load, r, load_images) for r in batch])
            if len(pending) > ahead:
                yield [f.result() for f in pending.popleft()]
        while pending:
            yield [f.result() for f in pending.popleft()]


@dataclass
class ItemPrompt:
    """How items of one modality are asked and read (``cfg.prompt[modality]``).

    ``system`` names a template sent as the system message (some peers train with one;
    None keeps the chat template's default); ``add_vision_id`` writes "Picture 1:" before
    each image, as some peers' scripts do.
    """

    template: str
    num_scores: int
    answer_format: str = "tagged"
    system: str | None = None
    add_vision_id: bool = False

    @classmethod
    def from_cfg(cls, cfg, modality: str = "image") -> ItemPrompt:
        """From ``cfg.prompt[modality]``: evaluation always asks with ``templates[0]``."""
        if cfg is None:
            raise ValueError(f"this prompt config has no {modality} prompt (prompt.{modality} is "
                             f"null): the model it belongs to was not made for {modality}s")
        templates = cfg["templates"]
        template = templates if isinstance(templates, str) else list(templates)[0]
        system = cfg.get("system")
        return cls(template, int(cfg["num_scores"]), str(cfg.get("answer_format", "tagged")),
                   str(system) if system else None, bool(cfg.get("add_vision_id", False)))

    def messages(self, num_images: int) -> list[dict]:
        messages = build_messages(self.template, num_images)
        if self.system:
            system = {"role": "system", "content": [{"type": "text", "text": load_template(self.system)}]}
            messages = [system, *messages]
        return messages

    def request(self, images: list[Image.Image]) -> Request:
        return Request(self.messages(len(images)), images, self.add_vision_id)

    def texts(self) -> dict:
        """The words the model is asked with (for an output folder's identity)."""
        return {"template": load_template(self.template),
                "system": load_template(self.system) if self.system else None}


def predict_batch(batch: Sequence[Loaded], predictor: Predictor, prompt: ItemPrompt) -> list[dict]:
    """One row per loaded item, in order: the parsed prediction, or the media error.

    A row is ``{"id", "gt", "pred", "subscores", "completion"}`` (plus ``completions`` and
    ``sample_preds`` with several samples); a failed item has ``pred: null`` and ``error``.
    """
    ready = [item for item in batch if item.error is None]
    requests = [prompt.request(item.images) for item in ready]
    outputs = predictor.generate(requests) if requests else []
    if len(outputs) != len(requests):
        raise RuntimeError(f"predictor returned {len(outputs)} results for {len(requests)} requests")
    scored = iter([score_completions(c, prompt.num_scores, prompt.answer_format) for c in outputs])
    rows = []
    for item in batch:
        row = {"id": item.record.id, "gt": item.record.score}
        if item.error is not None:
            logger.warning("%s: %s", item.record.id, item.error)
            row.update(pred=None, subscores=None, completion=None, error=item.error)
        else:
            row.update(next(scored))
        rows.append(row)
    return rows


def predict_records(records: Sequence[Record], predictor: Predictor, prompt: ItemPrompt,
                    load_images: Callable[[Record], list[Image.Image]],
                    cache: PredictionCache, batch_size: int,
                    progress: Callable[[int], None] | None = None) -> int:
    """Predict ``records`` in batches and append one row per item to ``cache`` at once.

    An item whose media cannot be read gets a row with ``error`` and the run goes on.
    Returns the number of rows written.
    """
    written = 0
    for batch in load_ahead(records, batch_size, load_images):
        for row in predict_batch(batch, predictor, prompt):
            cache.append(row)
        written += len(batch)
        if progress is not None:
            progress(len(batch))
    cache.close()
    return written


def pending_records(records: Iterable[Record], done: set[str]) -> list[Record]:
    """The records whose ids are not predicted yet, in benchmark order."""
    return [r for r in records if r.id not in done]


# ----------------------------------------------------------------------------- held-out check

READOUTS = ("greedy", "expected")


def held_out_metrics(predictor: HFPredictor, records: Sequence[Record], prompt: ItemPrompt,
                     load_images: Callable[[Record], list[Image.Image]], batch_size: int,
                     readout: str = "greedy") -> dict:
    """SRCC, PLCC and valid-answer rate on a few held-out records (training validation, demo).

    ``valid_rate`` always counts the generated answers that parse. The score correlated
    with the labels is the parsed answer (``readout="greedy"``; items without one are left
    out), or ``"expected"``: ``HFPredictor.expected_scores`` over the digit tokens, for
    one-digit bare answers only; then the greedy answers' correlations come along as
    ``srcc_greedy``/``plcc_greedy`` from the same generation. Fewer than 3 scored items give
    NaN, never a made-up number. The two halves (``held_out_predictions`` per record,
    ``held_out_scores`` over all) let processes share the records and pool their answers.
    """
    predictions = held_out_predictions(predictor, records, prompt, load_images, batch_size, readout)
    return held_out_scores(predictions, [r.score for r in records], readout)


def _check_readout(readout: str, prompt: ItemPrompt) -> None:
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    if readout == "expected" and (prompt.num_scores != 1 or prompt.answer_format != "bare"):
        raise ValueError("readout=expected needs one-digit bare answers (prompt=demo_digit)")


def held_out_predictions(predictor: HFPredictor, records: Sequence[Record], prompt: ItemPrompt,
                         load_images: Callable[[Record], list[Image.Image]], batch_size: int,
                         readout: str = "greedy") -> list[tuple]:
    """Per record, in order: (parsed greedy answer or None, expected score or None)."""
    _check_readout(readout, prompt)
    out = []
    for batch in _batches(records, batch_size):
        requests = [prompt.request(ims) for ims in map(load_images, batch)]
        greedy = [score_completions(c, prompt.num_scores, prompt.answer_format)["pred"]
                  for c in predictor.generate(requests)]
        expected = ([score for score, _mass in predictor.expected_scores(requests)]
                    if readout == "expected" else [None] * len(batch))
        out += list(zip(greedy, expected, strict=True))
    return out


def held_out_scores(predictions: Sequence[tuple], gts: Sequence[float], readout: str = "greedy") -> dict:
    """``held_out_metrics``' numbers from every record's predictions and labels."""
    from preresq.evaluation.metrics import plcc, srcc

    greedy = [g for g, _ in predictions]

    def correlations(preds: list) -> tuple[float, float]:
        pairs = [(p, g) for p, g in zip(preds, gts, strict=True) if p is not None]
        if len(pairs) < 3:
            return float("nan"), float("nan")
        x, y = (list(column) for column in zip(*pairs, strict=True))
        return srcc(x, y), plcc(x, y)

    n = len(gts)
    result = {"n": n, "valid_rate": sum(p is not None for p in greedy) / n if n else 0.0}
    result["srcc_greedy"], result["plcc_greedy"] = correlations(greedy)
    if readout == "expected":
        result["srcc"], result["plcc"] = correlations([e for _, e in predictions])
    else:
        result["srcc"], result["plcc"] = result.pop("srcc_greedy"), result.pop("plcc_greedy")
    return result
