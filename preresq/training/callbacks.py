"""Trainer callbacks: the metric log on disk and validation during training."""

from __future__ import annotations

import json
import logging
import math
import weakref
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from transformers import TrainerCallback

log = logging.getLogger("preresq.train")


class MetricsFileCallback(TrainerCallback):
    """Append every logged dict (reward components, KL, lengths...) to ``metrics.jsonl``.

    wandb is optional and often offline; this file is what plots and tests read.
    """

    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / "metrics.jsonl"

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({"step": state.global_step, **logs}) + "\n")


def validation_records(cfg: DictConfig):
    """The held-out items validation scores: a benchmark card, or the data's val split."""
    from preresq.data.benchmarks import (
        card_from_config,
        load_card,
        read_benchmark,
        require_media_root,
    )

    name = cfg.validation.get("benchmark")
    if name:
        card = load_card(str(name), paths=cfg.paths)
    else:
        base = card_from_config(cfg.data)
        if not base.val_split:
            raise ValueError(f"validation.enabled=true but data {base.name!r} has no val_split "
                             f"and validation.benchmark is not set")
        card = card_from_config(cfg.data, overrides={"split": base.val_split})
    records = read_benchmark(card)
    require_media_root(card)
    limit = cfg.validation.get("max_items")
    return (records[: int(limit)] if limit else records), card


def checkpointing_kwargs(args) -> dict | None:
    """The kwargs gradient checkpointing runs with (transformers 5.2x also calls them
    ``activation_checkpointing_kwargs``; TRL reads ``gradient_checkpointing_kwargs``)."""
    kwargs = getattr(args, "gradient_checkpointing_kwargs", None)
    if kwargs is None:
        kwargs = getattr(args, "activation_checkpointing_kwargs", None)
    return kwargs


def _zero3(accelerator) -> bool:
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return plugin is not None and plugin.zero_stage == 3


class ValidationCallback(TrainerCallback):
    """SRCC/PLCC on held-out items every N steps, with the evaluation code.

    Prompts, parsing and greedy decoding are those of ``scripts/eval.py``;
    ``validation.readout=expected`` scores one-digit answers by their expected value
    (``preresq.evaluation.held_out.held_out_metrics``). Results go to
    the trainer's log (``val/srcc``...) and ``validation.jsonl``; with
    ``validation.keep_best`` the weights with the best SRCC are saved to ``<stage>/best``.

    The model is unwrapped for generation as TRL does for its own rollouts
    (``trl.models.unwrap_model_for_generation``): under ZeRO-3 the weights are gathered once
    for the whole validation, not layer by layer at every decoding step. Each process then
    scores every ``world_size``-th item and the answers are pooled, so every rank computes
    the same numbers one process would. With ZeRO-3 and ``ds3_gather_for_generation=false``
    the weights stay partitioned, every decoding step needs every rank: all ranks then
    score all items. Rank 0 writes.

    The callback holds its trainer by a weak reference: the trainer holds its callbacks, and
    a strong reference back made a cycle that kept a finished stage's trainer (and what it
    still held) alive until the garbage collector happened to run, into the next stage.
    """

    def __init__(self, cfg: DictConfig, output_dir: str | Path):
        self.cfg = cfg
        self.output_dir = Path(output_dir)
        self.every = int(cfg.validation.every_n_steps)
        self.batch_size = int(cfg.validation.get("batch_size", 16))
        self.max_new_tokens = int(cfg.validation.get("max_new_tokens",
                                                     cfg.trainer.args.max_completion_length))
        self.keep_best = bool(cfg.validation.get("keep_best", False))
        self.readout = str(cfg.validation.get("readout", "greedy"))
        self.records, self.card = validation_records(cfg)
        self.prompt = cfg.prompt[self.card.modality]
        self.best = -math.inf
        self._trainer = None

    def attach(self, trainer) -> None:
        self._trainer = weakref.ref(trainer)

    @property
    def trainer(self):
        trainer = self._trainer() if self._trainer is not None else None
        if trainer is None:
            raise RuntimeError("ValidationCallback: no trainer attached (or it was released); "
                               "build_trainer attaches it")
        return trainer

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            self._validate(state)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0:
            self._validate(state)

    def on_train_end(self, args, state, control, **kwargs):
        if state.global_step < state.max_steps:
            return  # stopped by a signal: the scheduler's grace period is for the save, not this
        if state.global_step % self.every != 0:
            self._validate(state)

    def _validate(self, state) -> None:
        from accelerate.utils import gather_object
        from trl.models import unwrap_model_for_generation

        from preresq.data.rows import item_images
        from preresq.decoding import Decoding
        from preresq.evaluation.held_out import held_out_predictions, held_out_scores
        from preresq.evaluation.hf_predictor import HFPredictor
        from preresq.evaluation.requests import ItemPrompt

        trainer = self.trainer
        accelerator = trainer.accelerator
        gathered = bool(getattr(trainer.args, "ds3_gather_for_generation", True)) or not _zero3(accelerator)
        rank, world = (accelerator.process_index, accelerator.num_processes) if gathered else (0, 1)
        indices = list(range(rank, len(self.records), world))
        video_cfg = OmegaConf.to_container(self.cfg.video, resolve=True) if self.cfg.get("video") else None

        def load_images(record):
            return item_images(record, self.card.media_root, int(self.cfg.model.min_pixels),
                               int(self.cfg.model.max_pixels), video_cfg)

        log.info("validation at step %d: process %d of %d scores %d of %d items", state.global_step,
                 rank, world, len(indices), len(self.records))
        # Checkpointing is switched off for generation and back on after it: with the run's
        # own kwargs, as TRL's rollouts do (without them transformers re-enables it with
        # use_reentrant=False, undoing the use_reentrant=True TRL forces for LoRA under ZeRO-3).
        with unwrap_model_for_generation(trainer.model_wrapped, accelerator,
                                         gather_deepspeed3_params=gathered,
                                         gradient_checkpointing_kwargs=checkpointing_kwargs(trainer.args),
                                         ) as model:
            was_training = model.training
            predictor = HFPredictor(model, trainer.processing_class,
                                    Decoding(max_new_tokens=self.max_new_tokens),
                                    synced_gpus=False if world > 1 else None)
            mine = held_out_predictions(predictor, [self.records[i] for i in indices],
                                        ItemPrompt.from_cfg(self.prompt), load_images, self.batch_size,
                                        self.readout)
            model.train(was_training)
        pooled = sorted(gather_object(list(zip(indices, mine, strict=True))) if world > 1
                        else zip(indices, mine, strict=True))
        if [i for i, _ in pooled] != list(range(len(self.records))):
            raise RuntimeError(f"validation: the processes returned items {[i for i, _ in pooled]}, "
                               f"not each of the {len(self.records)} once")
        result = held_out_scores([p for _, p in pooled], [r.score for r in self.records], self.readout)
        s, p, valid_rate = result["srcc"], result["plcc"], result["valid_rate"]
        metrics = {"val/srcc": s, "val/plcc": p, "val/valid_rate": valid_rate}
        if state.is_world_process_zero:
            with (self.output_dir / "validation.jsonl").open("a") as f:
                f.write(json.dumps({"step": state.global_step, "n": result["n"], **metrics}) + "\n")
        log.info("validation at step %d: srcc %.3f plcc %.3f valid %.2f", state.global_step, s, p,
                 valid_rate)
        if state.global_step > 0:
            trainer.log(metrics)
        if self.keep_best and not math.isnan(s) and s > self.best:
            self.best = s
            trainer.save_model(str(self.output_dir / "best"))
            if state.is_world_process_zero:
                trainer.processing_class.save_pretrained(str(self.output_dir / "best"))
                (self.output_dir / "best" / "validation.json").write_text(
                    json.dumps({"step": state.global_step, **metrics}))
