"""GPU check of ``train(cfg)``: two stages per variant, memory and step times against the plan.

No download: random Qwen2.5-VL policies are built on the device with the tiny model's
tokenizer/processor (same special tokens and chat template), saved once (a ``COMPLETE``
marker is written last: a folder without it, from a killed build, is built again), then
trained by ``preresq.training.train`` itself with the ``smoke_two_stage`` stages on the demo
images: 8 images per step, K=12 then K=6.

Variants (``--variants``, in this order by default; the most telling first):

- ``small_full``: Qwen2.5-VL-3B widths with 4 text and 4 vision layers (0.74B parameters),
  full fine-tune, ZeRO-3, 64 completion tokens: stage 2's memory against stage 1's;
- ``small_validation``: the same with validation every step on the data's val split (16
  items, scored over the ranks, ``ValidationCallback``) and one wandb run per stage (offline,
  when wandb is importable): the plan's ``validation`` phase, and two run folders;
- ``small_vllm``: the same with colocated vLLM in sleep mode (skipped, and said so, where
  vllm is not importable): stage 2 must build its engine after stage 1's was shut down;
- ``small_lora``: ``iqa_6k_lora``'s LoRA, frozen vision and ZeRO-2;
- ``3b_full``: the real 3B sizes (3.75B), full fine-tune, ZeRO-3, one step per stage
  (~260-300 s: two stages, four ZeRO-3 loads, two saves; usually a sitting of its own).

Per stage (from the run's own record, ``preresq.training.memory_report``): step times,
memory allocated and reserved at the stage's start, their peaks, ``torch.cuda.mem_get_info``
at start and end, the plan's estimate and its ratio to the peak, allocator retries and
trainable parameters; per variant stage 2 over stage 1. The JSON (``--out``) is written when
a variant starts and when it ends: a kill keeps every finished variant (the one running
shows ``running``); a failing variant records its error and the next one runs. With
``--deadline-s`` a variant starts only when its expected time still fits (the others are
listed as skipped, never silently). One process: the DeepSpeed process group is a
one-process one unless torchrun made it.

    python scripts/gpu_train_check.py --out gpu_train.json          # on one GPU
    python scripts/gpu_train_check.py --device cpu --tiny --out t.json   # CPU check of this script
    python scripts/gpu_train_check.py --summary OUT_DIR             # one screen: OUT_DIR/gpu_*.json
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout without installing

from preresq.atomic_write import write_text_atomically  # noqa: E402

GIB = 2**30
QWEN2_5_VL_3B = dict(
    text_hidden_size=2048, text_layers=36, text_heads=16, text_kv_heads=2,
    text_intermediate_size=11008, vision_hidden_size=1280, vision_depth=32, vision_heads=16,
    vision_intermediate_size=3420, initializer_range=0.02,
)
SMALL_LAYERS = dict(text_layers=4, vision_depth=4)
COMPLETE = "COMPLETE"
# name -> (model, extra, steps per stage, completion tokens, seconds expected on one H100/H200:
# the first GPU run's step times (0.74B: 17.6 s + 8.0 s at 64 tokens; 3B: 50.4 s at 256 tokens,
# 137 s for stage 1 alone) plus set-up, ZeRO-3 loads and saves; guesses until measured)
VARIANTS = {
    "small_full": ("small", "", 1, 64, 100),
    "small_validation": ("small", "validation", 1, 64, 130),
    "small_vllm": ("small", "vllm", 1, 64, 150),
    "small_lora": ("small", "lora", 1, 64, 90),
    "3b_full": ("3b", "", 1, 128, 300),
}


def policy_ready(folder: Path) -> bool:
    return (folder / COMPLETE).is_file()


def random_policy(size: str, device: str, processor):
    """A random bf16 Qwen2.5-VL of the given size (``small``: 3B widths, 4 + 4 layers)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from preresq.models.tiny import DEFAULTS, _model_config

    dims = {**DEFAULTS, **QWEN2_5_VL_3B, **(SMALL_LAYERS if size == "small" else {})}
    config = _model_config("qwen2_5_vl", processor.tokenizer, dims)
    depth = dims["vision_depth"]
    config.vision_config.fullatt_block_indexes = [i for i in (7, 15, 23, 31) if i < depth] or [depth - 1]
    config.text_config.vocab_size = 151936
    config.tie_word_embeddings = True
    config.text_config.rope_parameters["mrope_section"] = [16, 24, 24]  # head_dim 128
    with torch.device(device):
        return AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)


def save_policy(folder: Path, size: str, device: str) -> Path:
    """A random policy of the given size, built on ``device`` and saved to ``folder`` (into a
    temporary folder first, renamed when whole, with a ``COMPLETE`` marker)."""
    from transformers import AutoProcessor

    from preresq.models.tiny import build_tiny_model, default_tiny_dir

    source = build_tiny_model(default_tiny_dir())
    if size == "tiny":
        return source
    if policy_ready(folder):
        return folder
    if folder.exists():   # this script's own half-written build (no COMPLETE marker)
        print(f"rebuilding {folder}: it has no {COMPLETE} marker (an earlier build was cut off)")
        shutil.rmtree(folder)
    processor = AutoProcessor.from_pretrained(source)
    model = random_policy(size, device, processor)
    partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
    model.save_pretrained(partial)
    processor.save_pretrained(partial)
    (partial / COMPLETE).write_text("whole\n")
    del model
    partial.rename(folder)
    return folder


def overrides(policy: Path, out: Path, cpu: bool, tokens: int, steps: int, extra: str,
              tiny: bool = False) -> list[str]:
    # The tiny CPU check runs the same path at smoke sizes: 2 images x 4 then 2 responses.
    items, k1, k2 = (2, 4, 2) if tiny else (8, 12, 6)
    device = (["trainer.args.use_cpu=true", "trainer.args.bf16=false", "model.dtype=float32"] if cpu else
              ["trainer.args.use_cpu=false", "trainer.args.bf16=true", "model.dtype=bfloat16",
               f"trainer.deepspeed={'zero2' if extra == 'lora' else 'zero3'}",
               "model.gradient_checkpointing=true"])
    cfg = ["+experiment=smoke_two_stage", f"model.name_or_path={policy}", f"output_dir={out}",
           *device, f"trainer.items_per_step={items}", "trainer.max_completions_per_device=48",
           f"stages.exploration.trainer.max_steps={steps}", f"stages.stability.trainer.max_steps={steps}",
           f"stages.exploration.trainer.args.num_generations={k1}",
           f"stages.stability.trainer.args.num_generations={k2}",
           f"trainer.args.max_completion_length={tokens}", "trainer.args.logging_steps=1",
           "trainer.args.save_steps=100000", "model.max_pixels=200704"]
    if extra == "validation":
        report = "[wandb]" if importlib.util.find_spec("wandb") else "[]"
        cfg += ["validation.enabled=true", "validation.every_n_steps=1",
                f"validation.max_items={4 if tiny else 16}", f"validation.batch_size={4 if tiny else 16}",
                f"trainer.args.report_to={report}"]
    else:
        cfg += ["validation.enabled=false", "trainer.args.report_to=[]"]
    if extra == "vllm":
        cfg += ["trainer.args.use_vllm=true", "trainer.args.vllm_mode=colocate",
                "trainer.args.vllm_gpu_memory_utilization=0.3"]
    return cfg


def skip_reason(name: str, tiny: bool, cpu: bool) -> str | None:
    size, extra = VARIANTS[name][:2]
    if tiny and size == "3b":
        return "--tiny"
    if extra == "vllm" and (cpu or importlib.util.find_spec("vllm") is None):
        return "vllm is not importable here" if importlib.util.find_spec("vllm") is None else "vLLM needs CUDA"
    return None


def stage_records(out: Path, stages: list[str]) -> dict:
    """Each stage's ``memory`` record (written by the run) with the estimate's ratio."""
    records = {}
    for stage in stages:
        info = json.loads((out / stage / "run_info.json").read_text())
        record = info["memory"]
        peak, estimate = record["peak_gib"], record["estimate_gib"]
        record["estimate_over_peak"] = round(estimate / peak, 3) if peak and estimate else None
        records[stage] = record
    return records


def stage_two_over_one(records: dict) -> dict:
    """Stage 2's figures over stage 1's (None where a figure is missing: CPU)."""
    (_, one), (_, two) = list(records.items())[:2]
    ratio = {}
    for key in ("allocated_at_start_gib", "reserved_at_start_gib", "peak_gib", "peak_reserved_gib"):
        a, b = one.get(key), two.get(key)
        ratio[key] = round(b / a, 3) if a and b is not None else None
    return ratio


def wandb_runs(folder: Path) -> list[str]:
    """The offline wandb run folders a variant left (one per stage expected)."""
    return sorted(p.name for p in (folder / "wandb").glob("offline-run-*")) if folder.is_dir() else []


def run_variant(name: str, cfg, out: Path) -> dict:
    training = importlib.import_module("preresq.training.train")  # the module: the package exports train()
    started = time.perf_counter()
    training.train(cfg)
    stages = [s for s, _ in training.stage_configs(cfg)]
    records = stage_records(out, stages)
    result = {"seconds": round(time.perf_counter() - started, 1), "stages": records,
              "stage2_over_stage1": stage_two_over_one(records)}
    if cfg.validation.enabled:
        result["validation_rows"] = {s: len((out / s / "validation.jsonl").read_text().splitlines())
                                     for s in stages}
    if "wandb" in (cfg.trainer.args.report_to or []):
        result["wandb_runs"] = wandb_runs(out / "wandb_dir")
    return result


def write_json(path: Path | None, data: dict) -> None:
    """Whole or not at all: a temporary file renamed over the old one."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(data, indent=2))


def line(name: str, stage: str, r: dict) -> str:
    def gib(v):
        return "n/a" if v is None else f"{v:.2f}"

    steps = ", ".join(f"{s:.1f}" for s in r["step_s"])
    return (f"{name}/{stage}: steps [{steps}] s; GiB at start alloc {gib(r['allocated_at_start_gib'])} "
            f"res {gib(r.get('reserved_at_start_gib'))}; peak alloc {gib(r['peak_gib'])} res "
            f"{gib(r.get('peak_reserved_gib'))}; plan {gib(r['estimate_gib'])} (estimate/peak "
            f"{r['estimate_over_peak']}); retries {r['alloc_retries']}; trainable "
            f"{r['trainable_parameters'] or 0:,} of {r['parameters'] or 0:,}")


def summary(folder: Path) -> str:
    """One screen from ``folder/gpu_eval.json`` and ``folder/gpu_train.json``."""
    lines = []
    for check in ("gpu_eval", "gpu_train"):
        path = folder / f"{check}.json"
        if not path.is_file():
            lines.append(f"{check}: no {path.name} (the check did not start or wrote nothing)")
            continue
        data = json.loads(path.read_text())
        head = data.get("device_name") or data.get("device") or "?"
        lines.append(f"{check} on {head}:")
        for name, v in (data.get("variants") or {}).items():
            status = v.get("status", "?")
            figures = []
            for key in ("seconds", "steady_new_tokens_per_s", "ms_per_decode_step"):
                if v.get(key) is not None:
                    figures.append(f"{key} {v[key]}")
            for stage, r in (v.get("stages") or {}).items():
                figures.append(f"{stage}: peak {r.get('peak_gib')} / plan {r.get('estimate_gib')} GiB, "
                               f"steps {r.get('step_s')}")
            ratio = v.get("stage2_over_stage1")
            if ratio:
                figures.append(f"stage2/stage1 alloc at start {ratio.get('allocated_at_start_gib')}, "
                               f"peak {ratio.get('peak_gib')}")
            if v.get("wandb_runs") is not None:
                figures.append(f"wandb runs {len(v['wandb_runs'])}")
            lines.append(f"  {name:<20} {status:<8} " + "; ".join(figures))
            if v.get("error"):
                lines.append(f"      {str(v['error']).strip().splitlines()[-1][:160]}")
            if v.get("why"):
                lines.append(f"      {v['why']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="the tiny model instead (a CPU check of this script)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per stage (default: per variant)")
    parser.add_argument("--deadline-s", type=float, default=None,
                        help="seconds from start by which the check must end: skip variants that would not")
    parser.add_argument("--out", type=Path, default=None, help="the JSON record (written after every variant)")
    parser.add_argument("--work", type=Path, default=Path("outputs/gpu_train_check"))
    parser.add_argument("--summary", type=Path, default=None, metavar="DIR",
                        help="only print one screen from DIR/gpu_eval.json and DIR/gpu_train.json")
    args = parser.parse_args(argv)
    if args.summary is not None:
        print(summary(args.summary))
        return 0

    import torch

    from preresq.config import compose

    cpu = args.device == "cpu"
    if not cpu and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but CUDA is not available (use --device cpu --tiny)")
    lora = compose("train", ["+experiment=iqa_6k_lora"]).model.lora
    results: dict = {"device": "cpu" if cpu else torch.cuda.get_device_name(), "pid": os.getpid(),
                     "torch": torch.__version__, "variants": {}}
    started = time.perf_counter()
    runs = args.work / time.strftime("run-%Y%m%d-%H%M%S")   # a fresh folder: stages never resume
    failed = False
    for name in args.variants:
        size, extra, steps, tokens, expected_s = VARIANTS[name]
        record = results["variants"][name] = {"status": "running", "expected_s": expected_s}
        reason = skip_reason(name, args.tiny, cpu)
        elapsed = time.perf_counter() - started
        if reason is None and args.deadline_s is not None and elapsed + expected_s > args.deadline_s:
            reason = f"expected {expected_s} s, {args.deadline_s - elapsed:.0f} s left of --deadline-s {args.deadline_s:g}"
        if reason is not None:
            record.update(status="skipped", why=reason)
            write_json(args.out, results)
            continue
        write_json(args.out, results)
        out = runs / name
        t0 = time.perf_counter()
        try:
            policy = save_policy(args.work / f"policy_{size}", "tiny" if args.tiny else size, args.device)
            cfg = compose("train", overrides(policy, out, cpu, 8 if args.tiny else tokens,
                                             args.steps or steps, extra, args.tiny))
            if extra == "lora":
                cfg.model.lora = lora
                cfg.model.freeze_vision = True
            os.environ["WANDB_DIR"] = str(out / "wandb_dir")
            (out / "wandb_dir").mkdir(parents=True, exist_ok=True)
            record.update(run_variant(name, cfg, out), status="ok")
            for stage, stage_record in record["stages"].items():
                print(line(name, stage, stage_record), flush=True)
        except Exception:  # recorded, and the next variant runs
            failed = True
            record.update(status="error", seconds=round(time.perf_counter() - t0, 1),
                          error=traceback.format_exc()[-3000:])
            print(f"{name}: error\n{record['error']}", flush=True)
        finally:
            if not cpu:
                free, total = torch.cuda.mem_get_info()
                record["free_after_gib"] = round(free / GIB, 2)
                torch.cuda.empty_cache()
        write_json(args.out, results)
    if args.out:
        print(summary(args.out.parent) if args.out.name == "gpu_train.json" else json.dumps(results, indent=2))
    else:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
