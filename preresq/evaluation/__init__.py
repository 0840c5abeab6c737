"""Zero-shot evaluation: batched prediction, metrics, reports, comparisons and scoring.

``evaluate(cfg)`` runs a model on a suite of benchmarks (``scripts/eval.py``), each output
folder carrying its identity (``identity``); ``metrics`` holds the correlation functions;
``compare`` tells whether one run beats another (``scripts/compare.py``); ``scorer.Scorer``
scores individual files or images (``preresq-score``, ``from preresq import Scorer``).
"""

from preresq.evaluation.evaluate import evaluate
from preresq.evaluation.metrics import bootstrap_ci, krcc, plcc, plcc_logistic, rmse_logistic, srcc

__all__ = ["evaluate", "srcc", "plcc", "plcc_logistic", "krcc", "rmse_logistic", "bootstrap_ci"]
