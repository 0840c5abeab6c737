"""Train a PreResQ policy with GRPO.

    python scripts/train.py +experiment=iqa_6k
    torchrun --nproc_per_node=4 scripts/train.py +experiment=iqa_6k
    python scripts/train.py +experiment=smoke resume=true
"""

import hydra
from omegaconf import DictConfig

import preresq.config  # noqa: F401  (registers the repo_root resolver)
from preresq.training import train
from preresq.user_errors import stop_on_user_errors


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with stop_on_user_errors(cfg.paths):  # missing data or weights: a message, no traceback
        train(cfg)


if __name__ == "__main__":
    main()
