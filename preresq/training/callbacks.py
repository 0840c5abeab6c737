"""Trainer callbacks: the metric log on disk and validation during training."""

from __future__ import annotations

import json
import logging
import math
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
    from preresq.data.benchmarks import card_from_config, load_card, read_benchmark

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
    limit = cfg.validation.get("max_items")
    return (records[: int(limit)] if limit else records), card


class ValidationCallback(TrainerCallback):
    """SRCC/PLCC on held-out items every N steps, with the evaluation code.

    Prompts, parsing and greedy decoding are those of ``scripts/eval.py``;
    ``validation.readout=expected`` scores one-digit answers by their expected value
    (``preresq.evaluation.held_out.held_out_metrics``). Results go to
    the trainer's log (``val/srcc``...) and ``validation.jsonl``; with
    ``validation.keep_best`` the weights with the best SRCC are saved to ``<stage>/best``.
    Every rank runs the same generation (DeepSpeed ZeRO-3 needs all ranks in ``generate``);
    rank 0 writes.
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
        self.trainer = None

    def attach(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            self._validate(state)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0:
            self._validate(state)

    def on_train_end(self, args, state, control, **kwargs):
        if state.global_step % self.every != 0:
            self._validate(state)

    def _validate(self, state) -> None:
        from preresq.data.rows import item_images
        from preresq.decoding import Decoding
        from preresq.evaluation.held_out import held_out_metrics
        from preresq.evaluation.hf_predictor import HFPredictor
        from preresq.evaluation.requests import ItemPrompt

        trainer = self.trainer
        model = trainer.accelerator.unwrap_model(trainer.model)
        was_training = model.training
        predictor = HFPredictor(model, trainer.processing_class,
                                Decoding(max_new_tokens=self.max_new_tokens))
        video_cfg = OmegaConf.to_container(self.cfg.video, resolve=True) if self.cfg.get("video") else None

        def load_images(record):
            return item_images(record, self.card.media_root, int(self.cfg.model.min_pixels),
                               int(self.cfg.model.max_pixels), video_cfg)

        result = held_out_metrics(predictor, self.records, ItemPrompt.from_cfg(self.prompt),
                                  load_images, self.batch_size, self.readout)
        model.train(was_training)
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
