"""Zero-shot evaluation: batched prediction, SRCC/PLCC/KRCC, reports, and scoring files.

``evaluate(cfg)`` runs a model on a suite of benchmarks (``scripts/eval.py``);
``preresq.evaluation.metrics`` holds the correlation functions;
``preresq.evaluation.score`` scores individual files (``preresq-score``).
"""

from preresq.evaluation.evaluate import evaluate
from preresq.evaluation.metrics import bootstrap_ci, krcc, plcc, plcc_logistic, srcc

__all__ = ["evaluate", "srcc", "plcc", "plcc_logistic", "krcc", "bootstrap_ci"]
