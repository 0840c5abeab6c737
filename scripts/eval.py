"""Evaluate a model on a suite of benchmarks: ``python scripts/eval.py suite=iqa10 ...``.

All options are in ``configs/eval.yaml``; see ``preresq.evaluation.evaluate`` for the
output folder. Under ``torchrun --nproc_per_node=N`` the items are split across processes.
"""

import hydra
from omegaconf import DictConfig

import preresq.config  # noqa: F401  (registers the ${repo_root:} resolver used by configs/paths)
from preresq.evaluation import evaluate
from preresq.user_errors import stop_on_user_errors


@hydra.main(config_path="../configs", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with stop_on_user_errors(cfg.paths):  # missing data or weights: a message, no traceback
        evaluate(cfg)


if __name__ == "__main__":
    main()
