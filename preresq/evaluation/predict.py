"""Turn benchmark items into cached predictions: batched generation, parsing, resuming.

The moving parts, each replaceable on its own:

* a *predictor* maps a batch of ``Request`` (chat messages + images) to N completions per
  request: ``HFPredictor`` (``preresq.evaluation.hf_predictor``, transformers ``generate``)
  or ``VLLMPredictor`` (``preresq.evaluation.vllm_backend``). Tests pass any object with
  the same ``generate``.
* ``preresq.evaluation.batching`` sorts a benchmark's items by prompt length and cuts them
  into batches by items and tokens; media are opened lazily, one batch ahead.
* a ``PredictionCache`` (``preresq.evaluation.cache``) receives one row per item as soon
  as it is predicted, so an interrupted run resumes where it stopped, and writes the rows
  back in the benchmark's order.

Scoring rule: the completion is read with ``preresq.parsing.parse_answer`` (the parser
used by the rewards). With N samples per item the prediction is the mean of the samples'
valid scores; an item none of whose samples holds a valid answer gets ``pred: null``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from PIL import Image

from preresq.data.records import Record
from preresq.evaluation.batching import BatchLimits, Loaded, batches_of, load_ahead
from preresq.evaluation.cache import PredictionCache
from preresq.evaluation.requests import ItemPrompt, Request
from preresq.parsing import parse_answer

logger = logging.getLogger(__name__)


class Predictor(Protocol):
    """Anything that maps requests to ``num_samples`` completions each, in order.

    Optional: ``text_tokens(messages, add_vision_id) -> int`` (the prompt's text tokens,
    for batches by tokens), ``fixed_shapes`` (batch sizes from a fixed set of buckets) and
    ``call_limits`` (a ``BatchLimits`` of its own: a backend that schedules by itself).
    """

    def generate(self, requests: Sequence[Request]) -> list[list[str]]: ...


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


def shard(items: Sequence, rank: int, world_size: int) -> list:
    """This process's share: every ``world_size``-th item starting at ``rank``."""
    return list(items[rank::world_size])


def text_counter(predictor: Predictor, prompt: ItemPrompt) -> Callable[[int], int] | None:
    """Number of images -> the prompt's text tokens, by the predictor's tokenizer; None
    when the predictor has none (then batches count visual tokens only)."""
    count = getattr(predictor, "text_tokens", None)
    if count is None:
        return None
    return lambda num_images: count(prompt.messages(num_images), prompt.add_vision_id)


def batch_limits(batch_size: int, batch_tokens: int | None, predictor: Predictor) -> BatchLimits:
    """The limits for ``predictor``: its own ``call_limits`` if it has some (vLLM), else
    ``batch_size`` and ``batch_tokens``, with bucketed sizes when it compiles."""
    own = getattr(predictor, "call_limits", None)
    if own is not None:
        return own
    return BatchLimits(batch_size, batch_tokens, bool(getattr(predictor, "fixed_shapes", False)))


def predict_batch(batch: Sequence[Loaded], predictor: Predictor, prompt: ItemPrompt) -> list[dict]:
    """One row per loaded item, in order: the parsed prediction, or the media error.

    A row is ``{"id", "gt", "pred", "subscores", "completion"}`` (plus ``completions`` and
    ``sample_preds`` with several samples); a failed item has ``pred: null`` and ``error``.
    """
    ready = [item for item in batch if item.error is None]
    requests = [prompt.request(item.images, item.record.id) for item in ready]
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
                    cache: PredictionCache, limits: BatchLimits,
                    lengths: Callable[[Record], int] | None = None,
                    progress: Callable[[int], None] | None = None) -> int:
    """Predict ``records`` in batches and append one row per item to ``cache`` at once.

    ``lengths`` (record -> prompt tokens, ``batching.PromptLengths``) sorts the items
    longest first and applies ``limits.batch_tokens``; without it, batches of
    ``limits.batch_size`` in the given order. An item whose media cannot be read gets a row
    with ``error`` and the run goes on. Returns the number of rows written.
    """
    written = 0
    for batch in load_ahead(batches_of(records, limits, lengths), load_images):
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
