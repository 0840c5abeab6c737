"""The stage schedule: a list of (name, config) pairs, each a full config for one stage.

A run's ``stages`` entry maps stage names to partial configs; each stage's config is the
run's config with that entry merged over it. With ``stages: null`` there is one stage,
``main``. Stage folders are ``output_dir/<name>``; a finished stage leaves its weights in
``<name>/final`` and the next stage starts from them.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

FINAL = "final"
DONE_MARKER = "STAGE_DONE"


def stage_configs(cfg: DictConfig) -> list[tuple[str, DictConfig]]:
    """Expand ``cfg.stages`` into one full config per stage, in order."""
    base = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "stages"])
    stages = cfg.get("stages")
    if not stages:
        return [("main", base)]
    out = []
    for name, override in stages.items():
        if override is None:
            override = {}
        merged = OmegaConf.merge(base, override)
        out.append((str(name), merged))
    return out


def stage_dir(cfg: DictConfig, name: str) -> Path:
    return Path(cfg.output_dir) / name


def stage_done(directory: Path) -> bool:
    return (directory / DONE_MARKER).is_file() and (directory / FINAL).is_dir()


def last_checkpoint(directory: Path) -> Path | None:
    """The newest ``checkpoint-<step>`` folder in a stage folder, or None."""
    if not directory.is_dir():
        return None
    ckpts = [p for p in directory.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[-1]), default=None)
