"""Config helpers shared by the Hydra scripts, tests and library code.

``repo_root`` is registered as an OmegaConf resolver so that relative locations in
``configs/paths`` are anchored at the repository, never at the current directory.
"""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from preresq.paths import CONFIG_DIR, REPO_ROOT

if not OmegaConf.has_resolver("repo_root"):
    OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))


def compose(config_name: str = "train", overrides: Sequence[str] = ()) -> DictConfig:
    """Compose a config from ``configs/`` as the scripts would, outside ``@hydra.main``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def check_overrides(overrides: Sequence[str]) -> None:
    """Stop (``SystemExit``) naming the command-line words that are not ``key=value``
    Hydra overrides, before anything is composed or run."""
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise SystemExit(f"not a Hydra override (key=value): {bad}")


def load_paths(overrides: dict | None = None) -> DictConfig:
    """The ``paths`` group alone (``configs/paths/default.yaml``), resolved."""
    cfg = OmegaConf.create({"paths": OmegaConf.load(CONFIG_DIR / "paths" / "default.yaml")})
    if overrides:
        cfg = OmegaConf.merge(cfg, {"paths": overrides})
    OmegaConf.resolve(cfg)
    return cfg.paths
