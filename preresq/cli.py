"""Console entry points (``[project.scripts]`` in pyproject.toml)."""

from __future__ import annotations

from preresq.paths import CONFIG_DIR


def eval_main() -> None:
    """``preresq-eval``: the same as ``python scripts/eval.py`` (Hydra overrides as arguments)."""
    import hydra
    from omegaconf import DictConfig

    import preresq.config  # noqa: F401  (registers the ${repo_root:} resolver)
    from preresq.evaluation import evaluate

    @hydra.main(config_path=str(CONFIG_DIR), config_name="eval", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        evaluate(cfg)

    _main()


def score_main() -> None:
    """``preresq-score``: score image or video files (see ``preresq.evaluation.score``)."""
    from preresq.evaluation.score import main

    raise SystemExit(main())
