"""A quick correlation check on a few held-out records (training validation, the demo)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image

from preresq.data.records import Record
from preresq.evaluation.hf_predictor import HFPredictor
from preresq.evaluation.predict import score_completions
from preresq.evaluation.requests import ItemPrompt

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
    for start in range(0, len(records), batch_size):
        batch = records[start:start + batch_size]
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
