"""Console entry points (``[project.scripts]`` in pyproject.toml)."""

from __future__ import annotations

import sys

from preresq.paths import CONFIG_DIR
from preresq.user_errors import stop_on_user_errors


def train_main() -> None:
    """``preresq-train``: the same as ``python scripts/train.py`` (Hydra overrides as arguments)."""
    import hydra
    from omegaconf import DictConfig

    import preresq.config  # noqa: F401  (registers the ${repo_root:} resolver)
    from preresq.training import train
    
    @hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        with stop_on_user_errors(cfg.paths):
            train(cfg)

    _main()


def eval_main() -> None:
    """``preresq-eval``: the same as ``python scripts/eval.py`` (Hydra overrides as arguments)."""
    import hydra
    from omegaconf import DictConfig

    import preresq.config  # noqa: F401  (registers the ${repo_root:} resolver)
    from preresq.evaluation import evaluate

    @hydra.main(config_path=str(CONFIG_DIR), config_name="eval", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        with stop_on_user_errors(cfg.paths):
            evaluate(cfg)

    _main()


def score_main() -> None:
    """``preresq-score``: score image or video files (see ``preresq.evaluation.score``)."""
    from preresq.evaluation.score import main

    raise SystemExit(main())


def compare_main(argv=None) -> int:
    """``preresq-compare RUN_A RUN_B [--json PATH]``: is A better than B (see scripts/compare.py)."""
    import argparse
    import json

    from preresq.evaluation.compare import compare_runs, markdown
    from preresq.evaluation.report import no_nan

    parser = argparse.ArgumentParser(
        prog="preresq-compare",
        description="SRCC/PLCC differences of two evaluation folders (A minus B) with paired "
                    "bootstrap 95%% intervals and p-values, on the items both scored validly.")
    parser.add_argument("run_a", help="an evaluation output folder (holds predictions/)")
    parser.add_argument("run_b", help="the folder to compare it with")
    parser.add_argument("--json", metavar="PATH", help="also write the comparison as JSON here")
    parser.add_argument("--bootstrap-samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        result = compare_runs(args.run_a, args.run_b, args.bootstrap_samples, args.seed)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(markdown(result), end="")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(no_nan(result), f, indent=2, allow_nan=False)
            f.write("\n")
    return 0


def prepare_data_main() -> None:
    """``preresq-prepare-data``: the same as ``python scripts/prepare_data.py``."""
    from preresq.data.prepare import main

    raise SystemExit(main())
