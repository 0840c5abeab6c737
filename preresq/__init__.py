"""PreResQ-R1: preference-response disentangled GRPO for visual quality assessment.

``from preresq import Scorer`` scores images and videos (``Scorer.from_pretrained``);
``preresq.create_metric`` gives the same model as a metric with pyiqa's conventions
(tensors in, a tensor of scores out) and ``preresq.list_models()`` names the presets. The
rest of the package is imported on demand.
"""

__version__ = "0.1.0"

__all__ = ["Scorer", "ItemScore", "create_metric", "list_models", "__version__"]


def __getattr__(name):
    # Lazy: `import preresq` stays cheap (no torch) for the config and data tools.
    if name in ("Scorer", "ItemScore"):
        from preresq.evaluation import scorer

        return getattr(scorer, name)
    if name in ("create_metric", "list_models"):
        from preresq import metric

        return getattr(metric, name)
    raise AttributeError(f"module 'preresq' has no attribute {name!r}")
