"""The CPU demo behind `make demo`: see preresq/demo.py and configs/experiment/demo.yaml."""

import hydra
from omegaconf import DictConfig

import preresq.config  # noqa: F401  (registers the repo_root resolver)
from preresq.demo import run_demo
from preresq.user_errors import stop_on_user_errors


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if "demo" not in cfg:
        raise SystemExit("scripts/demo.py needs the demo experiment: +experiment=demo")
    with stop_on_user_errors(cfg.paths):  # e.g. a demo card pointed at a missing manifest
        run_demo(cfg)


if __name__ == "__main__":
    main()
