"""``train(cfg)``: build policy, data and rewards, and run TRL's GRPOTrainer per stage.

The trainer is TRL's own (no fork). What this module adds is the wiring: configs to
``GRPOConfig``, the stage schedule, resume, the run record (config + git commit) and a
few callbacks (metrics file, validation). Reward components and the invalid-answer rate
are logged by the reward adapter, which also adds each item's MOS and parsed score to
TRL's completions table (``log_completions``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from preresq.paths import CONFIG_DIR
from preresq.training.stages import (
    DONE_MARKER,
    FINAL,
    last_checkpoint,
    stage_configs,
    stage_dir,
    stage_done,
)

log = logging.getLogger("preresq.train")


def _container(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})


def check_vllm(cfg: DictConfig) -> None:
    """Fail at start, not at the first rollout, when vLLM is asked for but absent."""
    if cfg.trainer.args.get("use_vllm") and importlib.util.find_spec("vllm") is None:
        raise RuntimeError(
            "trainer.args.use_vllm=true but vllm is not installed. Install it on a GPU machine "
            "with `pip install -e '.[vllm]'`, or set trainer.args.use_vllm=false."
        )


def grpo_args(cfg: DictConfig, output_dir: Path, reward_weights: list[float], stage: str):
    """A ``trl.GRPOConfig`` from ``cfg.trainer`` and the model's training switches."""
    from trl import GRPOConfig

    args = _container(cfg.trainer.args)
    ds = cfg.trainer.get("deepspeed")
    if ds:
        ds_path = Path(ds) if str(ds).endswith(".json") else CONFIG_DIR / "deepspeed" / f"{ds}.json"
        if not ds_path.is_file():
            raise FileNotFoundError(f"trainer.deepspeed={ds!r}: no such DeepSpeed config {ds_path}")
        args["deepspeed"] = str(ds_path)
    args.update(output_dir=str(output_dir), run_name=f"{cfg.run_name}/{stage}",
                reward_weights=reward_weights)
    # transformers 5.2x renamed gradient_checkpointing to activation_checkpointing (the old
    # name still works, with a warning); use whichever this version has. TRL's own default
    # is True, so the model config's choice is always passed explicitly.
    fields = GRPOConfig.__dataclass_fields__
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    args[name] = bool(cfg.model.get("gradient_checkpointing", False))
    if args[name]:
        args.setdefault(f"{name}_kwargs", {"use_reentrant": False})
    return GRPOConfig(**args)


def build_dataset(cfg: DictConfig, split: str | None = None):
    """Training rows (and their records) for ``cfg.data``, one split of it."""
    from preresq.data.benchmarks import card_from_config, read_benchmark
    from preresq.data.rows import build_train_dataset

    overrides = {"split": split} if split else None
    card = card_from_config(cfg.data, overrides=overrides)
    records = read_benchmark(card)
    if not records:
        raise ValueError(f"data {card.name!r} (split {card.split!r}) has no items: {card.labels}")
    prompt_cfg = _container(cfg.prompt[card.modality])
    dataset = build_train_dataset(records, card.media_root, prompt_cfg, int(cfg.model.min_pixels),
                                  int(cfg.model.max_pixels), _container(cfg.get("video")))
    return dataset, records, card


def build_trainer(cfg: DictConfig, init_path: str, output_dir: Path, stage: str):
    """A ready ``GRPOTrainer`` for one stage, starting from the weights at ``init_path``."""
    from trl import GRPOTrainer

    from preresq.models import load_model, load_processor
    from preresq.rewards import build_reward_funcs
    from preresq.training.callbacks import MetricsFileCallback, ValidationCallback

    dataset, _, card = build_dataset(cfg)
    prompt_cfg = cfg.prompt[card.modality]
    reward_funcs, weights = build_reward_funcs(cfg.reward, int(prompt_cfg.num_scores),
                                               str(prompt_cfg.answer_format))
    processor = load_processor(cfg.model, path=init_path)
    model = load_model(cfg.model, training=True, path=init_path)
    args = grpo_args(cfg, output_dir, weights, stage)
    callbacks = [MetricsFileCallback(output_dir)]
    validation = None
    if cfg.validation.get("enabled"):
        validation = ValidationCallback(cfg, output_dir)
        callbacks.append(validation)
    trainer = GRPOTrainer(model=model, processing_class=processor, reward_funcs=reward_funcs,
                          args=args, train_dataset=dataset, callbacks=callbacks)
    if validation is not None:
        validation.attach(trainer)
    return trainer


def _configure_logging_env(cfg: DictConfig) -> None:
    # wandb reads these at init; offline by default so a run never blocks on a login.
    os.environ.setdefault("WANDB_MODE", str(cfg.wandb.get("mode", "offline")))
    os.environ.setdefault("WANDB_PROJECT", str(cfg.wandb.get("project", "preresq")))


def train(cfg: DictConfig) -> Path:
    """Run every stage of ``cfg`` in order; return the folder of the final weights.

    Each stage trains in ``output_dir/<stage>`` from the previous stage's ``final``
    weights (the first from ``cfg.model``). With ``resume=true`` a finished stage is
    skipped and an unfinished one continues from its last ``checkpoint-*``.
    """
    from accelerate import PartialState

    from preresq.models import resolve_model_path
    from preresq.training.run_info import write_run_info

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    check_vllm(cfg)
    _configure_logging_env(cfg)
    state = PartialState()  # joins the process group under torchrun / accelerate launch
    out = Path(cfg.output_dir)
    stages = stage_configs(cfg)

    with state.main_process_first():  # the tiny model is built once, by rank 0
        init_path = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    if state.is_main_process:
        write_run_info(out, cfg, {"stages": [name for name, _ in stages],
                                  "world_size": state.num_processes})

    for index, (name, scfg) in enumerate(stages, start=1):
        sdir = stage_dir(cfg, name)
        if stage_done(sdir):
            if not cfg.resume:
                raise FileExistsError(f"stage {name!r} already finished in {sdir}; pass resume=true "
                                      f"to continue the run, or choose another run_name/output_dir")
            log.info("stage %d/%d %r already finished: continuing from %s", index, len(stages), name,
                     sdir / FINAL)
            init_path = str(sdir / FINAL)
            continue
        checkpoint = last_checkpoint(sdir)
        if checkpoint is not None and not cfg.resume:
            raise FileExistsError(f"{sdir} already holds {checkpoint.name}; pass resume=true to "
                                  f"continue from it, or choose another run_name/output_dir")
        log.info("stage %d/%d %r starts from %s (output %s)", index, len(stages), name, init_path, sdir)
        trainer = build_trainer(scfg, init_path, sdir, name)
        if state.is_main_process:
            write_run_info(sdir, scfg, {"stage": name, "init": init_path})
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

        final = sdir / FINAL
        trainer.save_model(str(final))
        if state.is_main_process:
            trainer.processing_class.save_pretrained(str(final))
            write_run_info(final, scfg, {"stage": name, "init": init_path,
                                         "global_step": trainer.state.global_step})
            (sdir / DONE_MARKER).write_text(f"{trainer.state.global_step}\n")
        state.wait_for_everyone()
        init_path = str(final)
        del trainer
    log.info("training finished: %s", init_path)
    return Path(init_path)
