"""``train(cfg)``: build policy, data and rewards, and run TRL's GRPOTrainer per stage.

The trainer is TRL's own (no fork; ``trainer.PreresqGRPOTrainer`` only hands its completions
table prompts as text, which wandb can log). What this module adds is the wiring: the schedule
(``preresq.training.schedule``: a global batch in items, the same steps on any number of
processes), configs to ``GRPOConfig``, the stage schedule, resume, the run record (config
+ git commit) and a few callbacks (metrics file, validation). Reward components and the
invalid-answer rate are logged by the reward adapter, which also adds each item's MOS and
parsed score to TRL's completions table (``log_completions``).

Every stage is built in the same order: rewards, processor, ``GRPOConfig`` (which installs
the DeepSpeed config), then the model, so ZeRO-3 partitions the weights while loading in
every stage. The KL reference of every stage is the run's initial model unless
``reference: previous`` (then it is the stage's starting weights, TRL's default).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from preresq.training import checkpoints, vllm
from preresq.training.deepspeed_config import deepspeed_config_path
from preresq.training.memory_plan import run_memory
from preresq.training.process_group import join_deepspeed, setup_one_process
from preresq.training.schedule import (
    ScheduleError,
    StagePlan,
    plan_from_config,
    plan_lines,
    plan_summary,
)
from preresq.training.stages import (
    DONE_MARKER,
    FINAL,
    stage_configs,
    stage_dir,
    stage_done,
)
from preresq.training.stop_signal import (
    StopOnSignal,
    StoppedBySignal,
    StopSignals,
    stop_before_stage,
    stop_message,
)

log = logging.getLogger("preresq.train")

REFERENCES = ("initial", "previous")


def _container(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})


def check_vllm(cfg: DictConfig) -> None:
    """Fail at start, not at the first rollout, when vLLM is asked for but absent."""
    vllm.check_vllm(bool(cfg.trainer.args.get("use_vllm")))


def vllm_model_length(cfg: DictConfig, processor, modality: str, images: int = 1) -> int:
    """The longest rollout sequence: visual tokens of the pixel budget + prompt + completion.

    ``images`` is the most image files an item has (a video's views are counted from
    ``cfg.video``).
    """
    from preresq.prompts import build_messages

    video_cfg = _container(cfg.get("video")) if modality == "video" else None
    visual = vllm.visual_tokens(modality, int(cfg.model.max_pixels), images, video_cfg)
    templates = list(cfg.prompt[modality].templates)
    prompt_tokens = max(
        len(processor.tokenizer(processor.apply_chat_template(
            build_messages(t, images), add_generation_prompt=True, tokenize=False))["input_ids"])
        for t in templates)
    return vllm.max_model_length(visual, prompt_tokens, int(cfg.trainer.args.max_completion_length))


def grpo_args(cfg: DictConfig, output_dir: Path, reward_weights: list[float], stage: str,
              plan: StagePlan | None = None, vllm_length: int | None = None):
    """A ``trl.GRPOConfig`` from ``cfg.trainer``, the stage's plan and the model's switches.

    Creating it with ``deepspeed`` set installs transformers' DeepSpeed config, which is
    what makes ``from_pretrained`` partition ZeRO-3 weights while loading: build it before
    the model and keep it alive while the model loads.
    """
    from trl import GRPOConfig

    args = _container(cfg.trainer.args)
    ds = deepspeed_config_path(cfg)
    if ds:
        args["deepspeed"] = ds
    if plan is not None:
        args.update(plan.grpo_args())
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
    # Only colocated vLLM shares the GPU; only TRL versions with the field can take it.
    # TRL collects every completion's images for its table when log_multimodal is on (its
    # default): only when images are asked for (trainer.log_images, see trainer.py).
    if "log_multimodal" in args:
        raise ValueError("trainer.args.log_multimodal is set by trainer.log_images (images per "
                         "log, 0: none); set that instead")
    args["log_multimodal"] = int(cfg.trainer.get("log_images") or 0) > 0
    colocate = bool(args.get("use_vllm")) and args.get("vllm_mode", "colocate") == "colocate"
    if (vllm_length and colocate and "vllm_max_model_length" in fields
            and args.get("vllm_max_model_length") is None):
        args["vllm_max_model_length"] = int(vllm_length)
    # Colocated vLLM sleeps (weights and KV cache off the GPU) while the policy trains, so the
    # backward pass gets the memory back; null: on exactly when vLLM shares the GPUs.
    if args.get("vllm_enable_sleep_mode") is None:
        args["vllm_enable_sleep_mode"] = colocate
    return GRPOConfig(**args)


def build_dataset(cfg: DictConfig, split: str | None = None, plan: StagePlan | None = None):
    """Training rows (and their records) for ``cfg.data``, one split of it.

    The row loader's decode cache holds ``trainer.decode_cache_items`` items; by default
    (null) the items one process reads per optimizer step: TRL's sampler repeats each of
    them K times, and again for every accumulation step of the generation batch.
    """
    from preresq.data.benchmarks import require_media_root
    from preresq.data.rows import DECODE_CACHE_ITEMS, build_train_dataset

    records, card = training_records(cfg, split)
    require_media_root(card)  # before the model loads (plan_run has read the labels)
    prompt_cfg = _container(cfg.prompt[card.modality])
    cache = cfg.trainer.get("decode_cache_items")
    if cache is None:
        cache = plan.items_per_device if plan is not None else DECODE_CACHE_ITEMS
    dataset = build_train_dataset(records, card.media_root, prompt_cfg, int(cfg.model.min_pixels),
                                  int(cfg.model.max_pixels), _container(cfg.get("video")),
                                  cache_items=int(cache))
    return dataset, records, card


def training_records(cfg: DictConfig, split: str | None = None):
    """The records of ``cfg.data`` (labels only: no media is opened)."""
    from preresq.data.benchmarks import card_from_config, read_benchmark

    card = card_from_config(cfg.data, overrides={"split": split} if split else None)
    records = read_benchmark(card)
    if not records:
        raise ValueError(f"data {card.name!r} (split {card.split!r}) has no items: {card.labels}")
    return records, card


def build_trainer(cfg: DictConfig, init_path: str, output_dir: Path, stage: str,
                  plan: StagePlan | None = None, initial_path: str | None = None):
    """A ready ``GRPOTrainer`` for one stage, starting from the weights at ``init_path``.

    ``initial_path`` is the run's first weights: with ``reference: initial`` (the default)
    the KL reference is built from them, not from ``init_path``.
    """
    from preresq.models import is_lora_checkpoint, load_model, load_processor, lora_config
    from preresq.rewards import build_reward_funcs
    from preresq.training.callbacks import MetricsFileCallback, ValidationCallback
    from preresq.training.trainer import PreresqGRPOTrainer

    if plan is None:
        plan = plan_from_config(stage, cfg, len(training_records(cfg)[0]), _world_size(cfg))
    dataset, records, card = build_dataset(cfg, plan=plan)
    prompt_cfg = cfg.prompt[card.modality]
    reward_funcs, weights = build_reward_funcs(cfg.reward, int(prompt_cfg.num_scores),
                                               str(prompt_cfg.answer_format))
    if cfg.get("record_rewards"):
        from preresq.training.recording import RecordedReward

        reward_funcs = [RecordedReward(f, output_dir) for f in reward_funcs]
    validation = None
    if cfg.validation.get("enabled"):  # its labels and media are checked before any weights load
        validation = ValidationCallback(cfg, output_dir)
    processor = load_processor(cfg.model, path=init_path)
    length = None
    if cfg.trainer.args.get("use_vllm"):
        length = vllm_model_length(cfg, processor, card.modality, max(len(r.paths) for r in records))
    args = grpo_args(cfg, output_dir, weights, stage, plan, length)  # before the model: zero.Init
    model = load_model(cfg.model, training=True, path=init_path)
    continued_adapter = is_lora_checkpoint(init_path)
    peft_config = None if continued_adapter else lora_config(cfg.model)
    reference = _reference(cfg)
    initial_path = initial_path or init_path
    new_reference = reference == "initial" and str(initial_path) != str(init_path)
    if new_reference and peft_config is not None:
        raise ValueError(f"stage {stage!r}: new LoRA adapters on {init_path} would make those "
                         f"weights the KL reference, not the run's initial model {initial_path}; "
                         f"set reference=previous, or train every stage with LoRA")
    if new_reference and not continued_adapter:
        # TRL builds the reference from the policy's config._name_or_path (the folder it was
        # loaded from): point it at the run's first weights.
        model.config._name_or_path = str(initial_path)
    callbacks = [MetricsFileCallback(output_dir)] + ([validation] if validation is not None else [])
    trainer = PreresqGRPOTrainer(model=model, processing_class=processor, reward_funcs=reward_funcs,
                                 args=args, train_dataset=dataset, callbacks=callbacks,
                                 peft_config=peft_config,
                                 log_images=int(cfg.trainer.get("log_images") or 0))
    if new_reference and continued_adapter and "ref" in getattr(trainer.model, "peft_config", {}):
        # A continued adapter gets a frozen "ref" copy of itself from TRL (the previous
        # stage's policy). Without it TRL's reference is the model with adapters disabled:
        # the base model the first stage started from.
        trainer.model.delete_adapter("ref")
    if validation is not None:
        validation.attach(trainer)
    return trainer


def _reference(cfg: DictConfig) -> str:
    reference = str(cfg.get("reference") or "initial")
    if reference not in REFERENCES:
        raise ValueError(f"reference={reference!r}: choose one of {list(REFERENCES)}")
    return reference


def _process_state(cfg: DictConfig):
    """accelerate's process state; joins the process group under torchrun / accelerate launch.

    ``cpu`` must be passed on a CPU run: without it accelerate treats a torchrun launch on a
    machine without CUDA as N separate single-process runs (and the state is a singleton,
    so the trainer cannot correct it later).
    """
    from accelerate import PartialState

    return PartialState(cpu=bool(cfg.trainer.args.get("use_cpu")))


def _cuda_devices(cfg: DictConfig) -> int:
    """CUDA GPUs visible (NVML's count: CUDA is not initialised by asking)."""
    import torch

    return 0 if cfg.trainer.args.get("use_cpu") else torch.cuda.device_count()


def _cuda_initialized() -> bool:
    import torch

    return torch.cuda.is_initialized()


def _world_size(cfg: DictConfig) -> int:
    return _process_state(cfg).num_processes


def _configure_logging_env(cfg: DictConfig) -> None:
    # wandb reads these at init; offline by default so a run never blocks on a login.
    os.environ.setdefault("WANDB_MODE", str(cfg.wandb.get("mode", "offline")))
    os.environ.setdefault("WANDB_PROJECT", str(cfg.wandb.get("project", "preresq")))


def plan_run(cfg: DictConfig, world_size: int) -> list[StagePlan]:
    """Every stage's schedule, from the label lists alone (no weights, no media)."""
    counts: dict[str, int] = {}
    plans = []
    for name, scfg in stage_configs(cfg):
        key = json.dumps(_container(scfg.data), sort_keys=True, default=str)
        if key not in counts:
            counts[key] = len(training_records(scfg)[0])
        plans.append(plan_from_config(name, scfg, counts[key], world_size))
    return plans


def train(cfg: DictConfig) -> Path | None:
    """Run every stage of ``cfg`` in order; return the folder of the final weights.

    Each stage trains in ``output_dir/<stage>`` from the previous stage's ``final``
    weights (the first from ``cfg.model``). With ``resume=true`` a finished stage is
    skipped and an unfinished one continues from its newest complete ``checkpoint-*``. With
    ``plan_only=true`` the schedule is printed (last line: one JSON object) for
    ``world_size`` processes, nothing is loaded, and None is returned.

    A signal of ``trainer.stop_signals`` (SIGTERM, SIGUSR1) saves the step reached and
    raises ``StoppedBySignal`` (a ``SystemExit``, status 75): see ``stop_signal``.
    """
    with StopSignals(cfg.trainer.get("stop_signals") or []) as signals:
        return _train(cfg, signals)


def _train(cfg: DictConfig, signals: StopSignals) -> Path | None:
    from preresq.model_card import write_training_card
    from preresq.models import resolve_model_path
    from preresq.training.memory import collect, deepspeed_module_stack, release_trainer
    from preresq.training.memory_report import MemoryReport
    from preresq.training.run_info import write_run_info
    from preresq.training.wandb_runs import stage_run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if cfg.get("plan_only"):
        plans = plan_run(cfg, int(cfg.get("world_size") or _world_size(cfg)))
        memory = run_memory(cfg, plans, real_run=False)
        print("\n".join(plan_lines(plans) + memory.lines()))
        print(json.dumps(memory.add_to(plan_summary(plans))), flush=True)
        memory.check()  # after the plan is printed: a plan that does not fit exits non-zero
        return None

    check_vllm(cfg)
    _reference(cfg)
    _configure_logging_env(cfg)
    stages = stage_configs(cfg)
    deepspeed = any(deepspeed_config_path(scfg) for _, scfg in stages)
    setup_one_process(deepspeed, _cuda_devices(cfg), cuda_initialized=_cuda_initialized())
    state = _process_state(cfg)
    if deepspeed:
        join_deepspeed()
    if cfg.get("world_size") and int(cfg.world_size) != state.num_processes:
        raise ScheduleError(f"world_size={cfg.world_size} but this run has {state.num_processes} "
                            f"processes; world_size is for plan_only=true")
    out = Path(cfg.output_dir)
    if len(stages) > 1 and deepspeed:
        deepspeed_module_stack()  # fail now, not after stage 1, if stages cannot be released
    plans = plan_run(cfg, state.num_processes)
    memory = run_memory(cfg, plans, real_run=True)
    if state.is_main_process:
        for line in plan_lines(plans) + memory.lines():
            log.info(line)
    memory.check()  # before any weights load

    with state.main_process_first():  # the tiny model is built once, by rank 0
        init_path = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    initial_path = init_path
    if state.is_main_process:
        write_run_info(out, cfg, {"stages": [name for name, _ in stages],
                                  "world_size": state.num_processes, "initial": initial_path,
                                  "plan": memory.add_to(plan_summary(plans))})

    for index, ((name, scfg), plan) in enumerate(zip(stages, plans, strict=True), start=1):
        sdir = stage_dir(cfg, name)
        if stage_done(sdir):
            if not cfg.resume:
                raise FileExistsError(f"stage {name!r} already finished in {sdir}; pass resume=true "
                                      f"to continue the run, or choose another run_name/output_dir")
            log.info("stage %d/%d %r already finished: continuing from %s", index, len(stages), name,
                     sdir / FINAL)
            init_path = str(sdir / FINAL)
            continue
        found = checkpoints.checkpoints(sdir)
        if found and not cfg.resume:
            raise FileExistsError(f"{sdir} already holds {found[-1].name}; pass resume=true to "
                                  f"continue from it, or choose another run_name/output_dir")
        with state.main_process_first():  # rank 0 moves cut-short saves aside, then all look
            if state.is_main_process:
                checkpoints.set_aside_incomplete(sdir)
            checkpoint = checkpoints.newest_complete(sdir)
        resumed_at = checkpoints.checkpoint_step(checkpoint) if checkpoint else 0
        stop_before_stage(signals, name, resumed_at)
        if resumed_at >= plan.steps:
            init_path = _finish_from_checkpoint(scfg, sdir, name, checkpoint, init_path, state)
            continue
        log.info("stage %d/%d %r starts from %s (output %s)%s", index, len(stages), name, init_path,
                 sdir, f"; resuming from {checkpoint.name}" if checkpoint else "")
        report = MemoryReport(name, sdir, memory.estimates[index - 1].per_device_gib)  # before loading
        trainer = build_trainer(scfg, init_path, sdir, name, plan, initial_path)
        trainer.add_callback(report)
        stop = StopOnSignal(signals)
        trainer.add_callback(stop)
        if state.is_main_process:
            write_run_info(sdir, scfg, {"stage": name, "init": init_path, "plan": plan.to_json(),
                                        "reference": _reference_path(scfg, init_path, initial_path)})
        with stage_run(trainer.args.report_to, cfg.run_name, name, state.is_main_process):
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        if stop.stopped_at is not None:  # saved at that step; no final/, no STAGE_DONE
            message = stop_message(stop.signal_name, stop.stopped_at, name)
            log.warning(message)
            raise StoppedBySignal(message)

        final = sdir / FINAL
        if state.is_main_process and checkpoints.final_incomplete(sdir, FINAL, DONE_MARKER):
            log.warning("%s has no %s (its save was cut short): renamed %s", final, DONE_MARKER,
                        checkpoints.set_aside(final).name)
        state.wait_for_everyone()
        trainer.save_model(str(final))
        step = trainer.state.global_step
        if state.is_main_process:
            trainer.processing_class.save_pretrained(str(final))
            write_run_info(final, scfg, {"stage": name, "init": init_path, "global_step": step})
            write_training_card(final)  # README.md: the Hub's metadata, training, prompt
        state.wait_for_everyone()  # every rank's part of final/ is written: now it counts
        if state.is_main_process:
            checkpoints.write_done_marker(sdir / DONE_MARKER, step)
        state.wait_for_everyone()
        init_path = str(final)
        release_trainer(trainer)
        del trainer
        collect()  # after the last reference is gone: nothing of this stage may reach the next
    log.info("training finished: %s", init_path)
    return Path(init_path)


def _finish_from_checkpoint(cfg: DictConfig, sdir: Path, stage: str, checkpoint: Path,
                            init_path: str, state) -> str:
    """A stage whose last step is checkpointed gets its ``final/`` from that checkpoint.

    Resuming there would train one step more (``checkpoints.weights_from_checkpoint``).
    """
    from preresq.model_card import write_training_card
    from preresq.training.run_info import write_run_info

    final, step = sdir / FINAL, checkpoints.checkpoint_step(checkpoint)
    if state.is_main_process:
        if checkpoints.final_incomplete(sdir, FINAL, DONE_MARKER):
            log.warning("%s has no %s (its save was cut short): renamed %s", final, DONE_MARKER,
                        checkpoints.set_aside(final).name)
        checkpoints.weights_from_checkpoint(checkpoint, final)
        write_run_info(final, cfg, {"stage": stage, "init": init_path, "global_step": step,
                                    "from_checkpoint": checkpoint.name})
        write_training_card(final)
        checkpoints.write_done_marker(sdir / DONE_MARKER, step)
    state.wait_for_everyone()
    log.info("stage %r: its last step (%d) was checkpointed; final weights from %s", stage, step,
             checkpoint)
    return str(final)


def _reference_path(cfg: DictConfig, init_path: str, initial_path: str) -> str | None:
    """The weights the stage's KL term is anchored to (None when beta is 0)."""
    if float(cfg.trainer.args.get("beta", 0.0)) == 0.0:
        return None
    return str(initial_path if _reference(cfg) == "initial" else init_path)
