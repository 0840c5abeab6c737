"""The stage schedule: a list of (name, config) pairs, each a full config for one stage.

A run's ``stages`` entry maps stage names to partial configs; each stage's config is the
run's config with that entry merged over it. With ``stages: null`` there is one stage,
``main``. Stage folders are ``output_dir/<name>``; a finished stage leaves its weights in
``<name>/final`` and the next stage starts from them.

A stage's ``reward`` is the exception to merging: a name (``reward: q_insight``, a file of
``configs/reward``) or a mapping with another ``preset`` replaces the run's reward node (a new
preset starts from its own file when there is one), so one preset's ``params`` never leak
into another's. A mapping with the same (or no) preset is merged, to change a few params
(``reward.params.lambda_std: 0.0``).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from preresq.paths import CONFIG_DIR

FINAL = "final"
DONE_MARKER = "STAGE_DONE"


def _reward_file(name: str, stage: str) -> DictConfig:
    path = CONFIG_DIR / "reward" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ValueError(f"stage {stage!r}: reward {name!r} is not a file of {path.parent} "
                         f"(known: {known})")
    return OmegaConf.load(path)


def stage_reward(base: DictConfig, override, stage: str) -> DictConfig:
    """The reward node of a stage: ``override`` replaces ``base`` when it names another preset."""
    if isinstance(override, str):
        return _reward_file(override, stage)
    override = OmegaConf.create(override)
    preset = override.get("preset")
    if preset is None or preset == base.get("preset"):
        return OmegaConf.merge(base, override)
    start = OmegaConf.create({})
    if (CONFIG_DIR / "reward" / f"{preset}.yaml").is_file():
        start = _reward_file(str(preset), stage)  # that preset's shipped defaults
    return OmegaConf.merge(start, override)


def stage_configs(cfg: DictConfig) -> list[tuple[str, DictConfig]]:
    """Expand ``cfg.stages`` into one full config per stage, in order."""
    base = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "stages"])
    stages = cfg.get("stages")
    if not stages:
        return [("main", base)]
    out = []
    for name, override in stages.items():
        override = {} if override is None else OmegaConf.to_container(override)
        reward = override.pop("reward", None)
        merged = OmegaConf.merge(base, override)
        if reward is not None:
            merged.reward = stage_reward(base.reward, reward, str(name))
        out.append((str(name), merged))
    return out


def stage_dir(cfg: DictConfig, name: str) -> Path:
    return Path(cfg.output_dir) / name


def stage_done(directory: Path) -> bool:
    return (directory / DONE_MARKER).is_file() and (directory / FINAL).is_dir()
