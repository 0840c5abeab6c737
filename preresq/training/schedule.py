"""The training schedule: a global batch in items, turned into TRL's per-device numbers.

An experiment states what the paper states: how many items (images or videos) one
optimizer step sees across all processes (``trainer.items_per_step``), how many responses
each gets (``trainer.args.num_generations``) and how long to train (``trainer.epochs``, or
``trainer.max_steps`` when set: it takes precedence, as in transformers). The per-device
numbers follow from the world size:

- items per device = items_per_step / world_size (must divide);
- completions per device per optimizer step = items per device x num_generations;
- ``per_device_train_batch_size`` (the micro-batch of one forward/backward) is the largest
  divisor of that count not above ``trainer.max_completions_per_device`` (the memory
  knob), and ``gradient_accumulation_steps`` makes up the rest;
- ``steps_per_generation`` = ``gradient_accumulation_steps``: one generation batch (every
  completion of the step) per optimizer step, so the reward sees the whole global batch.

Steps per epoch are ``floor(items / items_per_step) * num_iterations`` (TRL's sampler drops
an incomplete last batch), the same on any number of processes. The trainer gets the
resulting ``max_steps``, so the plan printed at start is what runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# GRPOConfig fields the schedule derives; setting them in trainer.args would fight the plan.
DERIVED_ARGS = ("per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs",
                "max_steps", "generation_batch_size", "steps_per_generation")


class ScheduleError(ValueError):
    """The schedule's numbers do not divide, or contradict each other."""


@dataclass(frozen=True)
class StagePlan:
    """One stage's schedule, global and per device."""

    name: str
    world_size: int
    num_items: int                     # training items in the data split
    items_per_step: int                # global, per optimizer step
    items_per_device: int
    num_generations: int
    completions_per_step: int          # global, per optimizer step
    completions_per_device: int        # per optimizer step
    per_device_train_batch_size: int   # completions per forward/backward
    gradient_accumulation_steps: int
    steps_per_epoch: int
    epochs: float | None               # None when max_steps sets the length
    steps: int

    def grpo_args(self) -> dict:
        """The GRPOConfig fields this plan sets."""
        return {"per_device_train_batch_size": self.per_device_train_batch_size,
                "gradient_accumulation_steps": self.gradient_accumulation_steps,
                "steps_per_generation": self.gradient_accumulation_steps,
                "max_steps": self.steps}

    def to_json(self) -> dict:
        return asdict(self)


def micro_batch(completions: int, cap: int) -> tuple[int, int]:
    """(per-device micro-batch, accumulation steps): the largest divisor of ``completions`` <= cap."""
    if cap < 1:
        raise ScheduleError(f"trainer.max_completions_per_device must be >= 1, got {cap}")
    for steps in range(math.ceil(completions / cap), completions + 1):
        if completions % steps == 0:
            return completions // steps, steps
    raise AssertionError("unreachable: steps = completions always divides")


def plan_stage(name: str, *, num_items: int, world_size: int, items_per_step: int,
               num_generations: int, max_completions_per_device: int, epochs: float | None = None,
               max_steps: int | None = None, num_iterations: int = 1) -> StagePlan:
    """The schedule of one stage; raises ``ScheduleError`` naming the key when it cannot hold."""
    where = f"stage {name!r}"
    if world_size < 1:
        raise ScheduleError(f"{where}: world size must be >= 1, got {world_size}")
    if items_per_step < 1:
        raise ScheduleError(f"{where}: trainer.items_per_step must be >= 1, got {items_per_step}")
    if items_per_step % world_size:
        fits = [n for n in range(1, 65) if items_per_step % n == 0]
        raise ScheduleError(
            f"{where}: trainer.items_per_step={items_per_step} cannot be split over {world_size} "
            f"processes (it must be a multiple of the world size). Launch on one of {fits} "
            f"processes, or set trainer.items_per_step to a multiple of {world_size}.")
    if num_generations < 2:
        raise ScheduleError(f"{where}: trainer.args.num_generations must be >= 2 for GRPO, "
                            f"got {num_generations}")
    if num_items < items_per_step:
        raise ScheduleError(f"{where}: the data has {num_items} items, fewer than "
                            f"trainer.items_per_step={items_per_step}: not one full step")
    per_device_items = items_per_step // world_size
    completions = per_device_items * num_generations
    batch, accumulation = micro_batch(completions, int(max_completions_per_device))
    steps_per_epoch = (num_items // items_per_step) * int(num_iterations)
    if max_steps is not None and int(max_steps) > 0:
        steps, epochs = int(max_steps), None
    elif epochs is not None and float(epochs) > 0:
        steps = int(float(epochs) * steps_per_epoch)
    else:
        raise ScheduleError(f"{where}: set trainer.epochs (> 0) or trainer.max_steps (> 0)")
    if steps < 1:
        raise ScheduleError(f"{where}: trainer.epochs={epochs} gives no optimizer step "
                            f"({steps_per_epoch} per epoch)")
    return StagePlan(name=name, world_size=world_size, num_items=num_items,
                     items_per_step=items_per_step, items_per_device=per_device_items,
                     num_generations=num_generations, completions_per_step=completions * world_size,
                     completions_per_device=completions, per_device_train_batch_size=batch,
                     gradient_accumulation_steps=accumulation, steps_per_epoch=steps_per_epoch,
                     epochs=None if epochs is None else float(epochs), steps=steps)


def plan_from_config(name: str, cfg, num_items: int, world_size: int) -> StagePlan:
    """``plan_stage`` with the numbers of one stage's config (``cfg.trainer``)."""
    trainer = cfg.trainer
    set_in_args = [k for k in DERIVED_ARGS if trainer.args.get(k) is not None]
    if set_in_args:
        raise ScheduleError(
            f"stage {name!r}: trainer.args sets {set_in_args}, which the schedule derives from the "
            f"world size. State the global batch instead: trainer.items_per_step (items per "
            f"optimizer step over all processes), trainer.epochs or trainer.max_steps, and "
            f"trainer.max_completions_per_device (the per-device memory cap).")
    for key in ("items_per_step", "max_completions_per_device"):
        if trainer.get(key) is None:
            raise ScheduleError(f"stage {name!r}: trainer.{key} is not set")
    return plan_stage(name, num_items=num_items, world_size=world_size,
                      items_per_step=int(trainer.items_per_step),
                      num_generations=int(trainer.args.num_generations),
                      max_completions_per_device=int(trainer.max_completions_per_device),
                      epochs=trainer.get("epochs"), max_steps=trainer.get("max_steps"),
                      num_iterations=int(trainer.args.get("num_iterations") or 1))


def plan_summary(plans: list[StagePlan]) -> dict:
    """The plan as one JSON-able dict (the last line ``plan_only`` prints)."""
    first = plans[0]
    return {"world_size": first.world_size, "items_per_step": first.items_per_step,
            "num_items": first.num_items,
            "stages": [{**p.to_json()} for p in plans],
            "total_steps": sum(p.steps for p in plans)}


def plan_lines(plans: list[StagePlan]) -> list[str]:
    """The plan for people: one line per stage, global then per device."""
    first = plans[0]
    lines = [f"training plan: world size {first.world_size}, {first.num_items} items, "
             f"{sum(p.steps for p in plans)} optimizer steps in {len(plans)} stage(s)"]
    for p in plans:
        length = f"{p.epochs:g} epochs" if p.epochs is not None else "max_steps"
        lines.append(
            f"  {p.name}: {p.items_per_step} items x {p.num_generations} responses = "
            f"{p.completions_per_step} completions per step (per device: {p.items_per_device} "
            f"items, {p.completions_per_device} completions = {p.per_device_train_batch_size} "
            f"x {p.gradient_accumulation_steps} accumulation); {p.steps_per_epoch} steps per "
            f"epoch, {p.steps} steps ({length})")
    return lines
