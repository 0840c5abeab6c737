"""A quality model as a metric with pyiqa's conventions: tensors in, a tensor of scores out.

    >>> import preresq, torch
    >>> metric = preresq.create_metric("outputs/demo/main/best", prompt="demo_digit",
    ...                                max_new_tokens=1)                     # doctest: +SKIP
    >>> metric(torch.rand(4, 3, 64, 64))                                     # doctest: +SKIP
    tensor([3., 4., nan, 2.])
    >>> metric.lower_better, metric.score_range, metric.metric_name          # doctest: +SKIP
    (False, (1.0, 5.0), 'outputs/demo/main/best')

``create_metric(name_or_path, device=None, **overrides)`` takes what
``Scorer.from_pretrained`` takes (a model preset of ``list_models()``, a hub id or a
checkpoint folder, and ``configs/eval.yaml`` overrides such as ``prompt="demo_digit"``)
and builds the model once; each call scores a batch with it, batched by tokens as
evaluation batches. A call takes what ``Scorer.score`` takes: ``(N, 3, H, W)`` or
``(3, H, W)`` tensors in [0, 1] (or uint8) on any device, numpy ``(H, W, 3)`` uint8
arrays, paths, PIL images, lists of these, and videos with ``modality="video"``.

It returns a float32 tensor ``(N,)`` (``(1,)`` for a single image), on the device of the
input tensor (on the metric's device for paths, PIL images and arrays). **An item whose
answer held no score, or whose file could not be read, scores NaN**: no number is
invented; count them with ``torch.isnan`` and leave them out (``torch.nanmean``), as
evaluation reports ``invalid_rate`` beside SRCC. Scores lie in ``score_range``, the
[1, 5] scale every prompt asks for and benchmarks are rescaled to (``preresq.parsing``
rejects answers outside it; a peer's ``answer_format`` takes the number as written).
Higher is better (``lower_better`` is False). Generation gives no gradient, so pyiqa's
``as_loss=True`` is refused.
"""

from __future__ import annotations

from pathlib import Path

from preresq.parsing import SCORE_MAX, SCORE_MIN


def list_models() -> list[str]:
    """The model presets ``create_metric`` takes by name (``configs/model/``), sorted.
    Checkpoint folders and hub ids are taken too."""
    from preresq.paths import CONFIG_DIR

    return sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))


class QualityMetric:
    """A scorer called like a pyiqa metric (see the module docstring).

    Attributes:
        metric_name: the name or path the metric was created from.
        lower_better: False: a higher score is a better picture.
        score_range: ``(low, high)`` of the scores, (1.0, 5.0).
        scorer: the ``preresq.Scorer`` underneath (its ``score`` gives the reasoning too).
    """

    lower_better = False
    score_range = (SCORE_MIN, SCORE_MAX)

    def __init__(self, scorer, metric_name: str) -> None:
        self.scorer = scorer
        self.metric_name = metric_name

    @property
    def device(self):
        """Where the model runs."""
        return self.scorer.device

    def __call__(self, inputs, modality: str | None = None):
        """Scores of ``inputs`` as a float32 tensor ``(N,)``; NaN where there is none."""
        import torch

        from preresq.evaluation.tensor_input import input_device

        results = self.scorer.score(inputs, modality=modality)
        results = results if isinstance(results, list) else [results]
        values = [r.score if r.valid and r.score is not None else float("nan") for r in results]
        device = input_device(inputs) or self.device or "cpu"
        return torch.tensor(values, dtype=torch.float32, device=device)

    forward = __call__  # pyiqa's metrics are modules: metric.forward(x) works there too

    def __repr__(self) -> str:
        return (f"QualityMetric({self.metric_name!r}, lower_better={self.lower_better}, "
                f"score_range={self.score_range})")


def create_metric(name_or_path: str | Path, device=None, **overrides) -> QualityMetric:
    """A metric for a model preset (``list_models()``), hub id or checkpoint folder.

    Args:
        name_or_path: as ``Scorer.from_pretrained`` takes it.
        device: where the model runs; None: this process's GPU, else the CPU.
        **overrides: ``configs/eval.yaml`` overrides (``prompt="demo_digit"``,
            ``max_new_tokens=1``, ``batch_size=64``...). pyiqa's ``as_loss=False`` is
            accepted and ignored; ``as_loss=True`` raises (generation has no gradient).
    """
    from preresq.evaluation.scorer import Scorer

    if overrides.pop("as_loss", False):
        raise ValueError("as_loss=True: a score read from generated text has no gradient, so "
                         "this metric cannot be a loss")
    scorer = Scorer.from_pretrained(name_or_path, device=device, **overrides)
    return QualityMetric(scorer, str(name_or_path))


__all__ = ["create_metric", "list_models", "QualityMetric"]
