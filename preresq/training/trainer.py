"""TRL's GRPOTrainer with its completions log made fit for wandb and for real runs.

Two things of TRL 1.16's completions table (``log_completions``), handled in ``log``:

- each prompt is logged as its chat messages, whose content mixes ``{"type": "image"}``
  and ``{"type": "text", ...}`` blocks; ``wandb.Table`` refuses such a column ("{'type':
  String} not assignable to ..."), so a run with ``report_to: [wandb]`` stopped at its
  first log. The prompts are handed to TRL as text (``<image>`` per image).
- with ``log_multimodal`` every row carries its images: one per completion, hundreds per
  log at the paper's batch (and wandb 0.31 stores a list of images in a cell as the string
  "Image" anyway). Images are off unless ``trainer.log_images`` > 0; then the first that
  many distinct images of the logged batch go to wandb as ``completions/images``, and the
  table keeps text only.

Checkpoints are TRL's own, made complete-or-absent (``preresq.training.checkpoints``):
``_save_checkpoint`` lets TRL write the folder, waits for every rank, then rank 0 writes the
completion marker and rotates; a write that fails for lack of space ends the run with a
``DiskFullError`` naming the folder and the space a checkpoint needs.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer

from preresq.training import checkpoints

log = logging.getLogger("preresq.train")


def prompt_text(prompt) -> str:
    """A chat prompt as one string: its text blocks, ``<image>`` for each image block."""
    if isinstance(prompt, str):
        return prompt
    parts = []
    for message in prompt:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
            continue
        for block in content or []:
            parts.append(block.get("text", "") if block.get("type") == "text" else f"<{block.get('type')}>")
    return "\n".join(parts)


def first_images(rows, limit: int) -> list:
    """Up to ``limit`` distinct images of the logged rows (an item's K rows share theirs)."""
    seen, out = set(), []
    for images in rows:
        for image in images or []:
            if id(image) not in seen and len(out) < limit:
                seen.add(id(image))
                out.append(image)
    return out


class PreresqGRPOTrainer(GRPOTrainer):
    """``trl.GRPOTrainer`` whose completions table carries text, and at most ``log_images`` images."""

    def __init__(self, *args, log_images: int = 0, **kwargs):
        self.log_images = int(log_images)
        super().__init__(*args, **kwargs)
        # Rotation is ours, once a checkpoint is complete: transformers rotates inside
        # _save_checkpoint, before the marker exists, and could remove the newest complete one.
        self.keep_checkpoints = self.args.save_total_limit
        self.args.save_total_limit = None

    def _save_checkpoint(self, model, trial):
        run_dir = Path(self._get_output_dir(trial))
        folder = run_dir / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        previous = checkpoints.newest_complete(run_dir)
        started = time.perf_counter()
        if self.args.should_save:
            checkpoints.unmark(folder)  # a folder being (re)written is not complete
        try:
            super()._save_checkpoint(model, trial)
        except Exception as err:
            full = checkpoints.disk_full(err, folder, previous if previous != folder else None)
            if full is not None:
                raise full from err
            raise
        self.accelerator.wait_for_everyone()  # every rank's files (optimizer shards, RNG) are written
        if self.args.should_save:
            info = checkpoints.mark_complete(folder, self.state.global_step,
                                             self.accelerator.num_processes, time.perf_counter() - started)
            log.info("%s complete: %.1f MB written by %d process(es) in %.2f s", folder.name,
                     info["bytes"] / 1e6, info["world_size"], info["seconds"])
            checkpoints.rotate(run_dir, self.keep_checkpoints)

    def log(self, logs, start_time=None):
        store = getattr(self, "_logs", None)
        if store is not None:
            prompts = store["prompt"]
            store["prompt"] = deque((prompt_text(p) for p in prompts), maxlen=prompts.maxlen)
            images = first_images(store["images"], self.log_images)
            store["images"].clear()
            if images and self.log_completions and self.accelerator.is_main_process:
                self._log_images(images)
        return super().log(logs, start_time)

    def _log_images(self, images) -> None:
        import wandb

        if self.args.report_to and "wandb" in self.args.report_to and wandb.run is not None:
            wandb.log({"completions/images": [wandb.Image(im) for im in images],
                       "train/global_step": self.state.global_step})
