"""Console entry points (``[project.scripts]`` in pyproject.toml)."""

from __future__ import annotations

from preresq.paths import CONFIG_DIR


def train_main() -> None:
    """``preresq-train``: the same as ``python scripts/train.py`` (Hydra overrides as arguments)."""
    import hydra
    from omegaconf import DictConfig

    import preresq.config  # noqa: F401  (registers the ${repo_root:} resolver)
    from preresq.models import ModelNotFoundError
    from preresq.training import train

    @hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        try:
            train(cfg)
        except ModelNotFoundError as err:
            raise SystemExit(f"error: {err}") from None

    _main()


def eval_main() -> None:
    """``preresq-eval``: the same as ``python scripts/eval.py`` (Hydra overrides as arguments)."""
    import hydra
    from omegaconf import DictConfig

    import preresq.config  # noqa: F401  (registers the ${repo_root:} resolver)
    from preresq.evaluation import evaluate
    from preresq.models import ModelNotFoundError

    @hydra.main(config_path=str(CONFIG_DIR), config_name="eval", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        try:
            evaluate(cfg)
        except ModelNotFoundError as err:
            raise SystemExit(f"error: {err}") from None

    _main()


def score_main() -> None:
    """``preresq-score``: score image or video files (see ``preresq.evaluation.score``)."""
    from preresq.evaluation.score import main

    raise SystemExit(main())


def prepare_data_main() -> None:
    """``preresq-prepare-data``: the same as ``python scripts/prepare_data.py``."""
    from preresq.data.prepare import main

    raise SystemExit(main())
