"""PreResQ-R1: preference-response disentangled GRPO for visual quality assessment.

``from preresq import Scorer`` scores images and videos (``Scorer.from_pretrained``); the
rest of the package is imported on demand.
"""

__version__ = "0.1.0"

__all__ = ["Scorer", "ItemScore", "__version__"]


def __getattr__(name):
    # Lazy: `import preresq` stays cheap (no torch) for the config and data tools.
    if name in ("Scorer", "ItemScore"):
        from preresq.evaluation import scorer

        return getattr(scorer, name)
    raise AttributeError(f"module 'preresq' has no attribute {name!r}")
