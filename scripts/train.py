"""Train a PreResQ policy with GRPO.

    python scripts/train.py +experiment=iqa_6k
    torchrun --nproc_per_node=4 scripts/train.py +experiment=iqa_6k
    python scripts/train.py +experiment=smoke resume=true
"""

import hydra
from omegaconf import DictConfig

import preresq.config  # noqa: F401  (registers the repo_root resolver)
from preresq.models import ModelNotFoundError
from preresq.training import train
from preresq.training.memory_plan import MemoryPlanError


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        train(cfg)
    except (ModelNotFoundError, MemoryPlanError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
