"""preresq.create_metric: a rater called as pyiqa metrics are (tensors in, a tensor of scores out)."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from eval_fakes import FakePredictor, fake_answer
from PIL import Image

import preresq
from preresq.evaluation.batching import BatchLimits, image_tokens, plan_batches
from preresq.evaluation.scorer import Scorer, file_images
from preresq.metric import QualityMetric


def _pils(x: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray((xi.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()) for xi in x]


@pytest.fixture(scope="module")
def metric(digit_model_dir):
    """The tiny model that answers a digit, as a metric (built once for the module)."""
    return preresq.create_metric(str(digit_model_dir), model="tiny", prompt="demo_digit",
                                 max_new_tokens=1)


def test_the_interface_is_pyiqas(metric, tmp_path):
    """pyiqa's documented interface, which code written for pyiqa relies on:
    README "Advanced Usage with Codes" and pyiqa/api_helpers.py (IQA-PyTorch, 2026-05):
    ``pyiqa.list_models()``; ``pyiqa.create_metric(metric_name, as_loss=False, device=None,
    **kwargs)``; ``iqa_metric.lower_better``; ``iqa_metric(img_tensor_x)`` with
    "Tensor inputs, img_tensor_x/y: (N, 3, H, W), RGB, 0 ~ 1"; an image path as input;
    pyiqa/models/inference_model.py sets ``metric_name``, ``lower_better`` and
    ``score_range`` on the metric and returns a tensor of N scores."""
    names = preresq.list_models()
    assert names == sorted(names) and all(isinstance(n, str) for n in names) and "tiny" in names
    params = inspect.signature(preresq.create_metric).parameters
    first, *_ = params.values()
    assert first.kind in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD)
    assert params["device"].default is None
    assert any(p.kind is p.VAR_KEYWORD for p in params.values())  # metric options as kwargs
    assert isinstance(metric.lower_better, bool) and metric.lower_better is False
    low, high = metric.score_range
    assert low < high and isinstance(metric.metric_name, str)
    x = torch.rand(3, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    scores = metric(x)
    assert isinstance(scores, torch.Tensor) and scores.shape == (3,) and scores.is_floating_point()
    path = tmp_path / "a.png"
    _pils(x[:1])[0].save(path)
    by_path = metric(str(path))
    assert by_path.shape == (1,)
    torch.testing.assert_close(by_path, scores[:1], equal_nan=True)
    torch.testing.assert_close(metric.forward(x), scores, equal_nan=True)


def test_a_batch_scores_as_the_scorer_scores_the_same_images(metric):
    """The issue's check, on the tiny model: (4, 3, 64, 64) in [0, 1] -> float (4,), with
    lower_better False and score_range (1, 5), equal to Scorer.score on the PIL images."""
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    scores = metric(x)
    assert scores.dtype == torch.float32 and scores.shape == (4,) and scores.device == x.device
    assert metric.lower_better is False and metric.score_range == (1, 5)
    expected = [r.score if r.valid else math.nan for r in metric.scorer.score(_pils(x))]
    torch.testing.assert_close(scores, torch.tensor(expected), equal_nan=True)
    assert not torch.isnan(scores).all() and len(set(scores.tolist())) > 1  # valid, varied scores
    assert ((scores >= 1) & (scores <= 5)).all()
    # numpy (H, W, 3) uint8 arrays and a single (3, H, W) tensor score the same.
    arrays = [np.asarray(p) for p in _pils(x)]
    torch.testing.assert_close(metric(arrays), scores, equal_nan=True)
    torch.testing.assert_close(metric(x[3]), scores[3:], equal_nan=True)


def test_no_score_is_nan_and_as_loss_is_refused():
    fake = FakePredictor()
    metric = QualityMetric(Scorer.from_pretrained("tiny", predictor=fake, prompt="demo_digit"), "tiny")
    x = torch.rand(24, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    scores = metric(x)
    seen = [file_images(img, "image", 3136, 12544) for img in _pils(x)]  # as the model sees them
    answers = [fake_answer(images) for images in seen]
    assert "no idea" in answers  # some answers hold no score
    for got, answer in zip(scores.tolist(), answers, strict=True):
        assert math.isnan(got) if answer == "no idea" else got == float(answer)
    with pytest.raises(ValueError, match="no gradient"):
        preresq.create_metric("tiny", as_loss=True)


def test_256_tensors_reuse_one_model_and_batch_by_tokens():
    """Scoring a batch goes through the evaluation's planner: sorted by prompt length and
    cut by items and tokens (a stand-in model counts the calls)."""
    sizes = [(56, 56), (112, 112), (84, 168)]
    images = [torch.rand(3, *sizes[i % 3], generator=torch.Generator().manual_seed(i)) for i in range(256)]
    fake = FakePredictor()
    metric = QualityMetric(Scorer.from_pretrained("tiny", predictor=fake, prompt="demo_digit",
                                                  batch_size=32, batch_tokens=400), "tiny")
    scores = metric(images)
    assert scores.shape == (256,)
    cfg = metric.scorer.cfg
    tokens = [image_tokens(h, w, int(cfg.model.min_pixels), int(cfg.model.max_pixels)) for _, h, w in
              (i.shape for i in images)]
    planned = plan_batches(tokens, BatchLimits(32, 400))
    assert fake.calls == len(planned) and fake.items == 256
    assert max(len(b) for b in planned) <= 32 and len(planned) < 256 // 8
    # One model for every call: the metric keeps its scorer.
    assert metric(images[:4]).shape == (4,) and metric.scorer.predictor is fake
