"""Speed of our own evaluation path on a GPU: ``evaluate()`` on a synthetic benchmark.

Writes a synthetic benchmark on the fly through the real benchmark cards (``kadid10k_test``
and ``spaq`` with authors'-style label lists in a temporary folder): ``--kadid`` KADID-size
512 x 384 PNGs and ``--spaq`` SPAQ-size 4000 x 3000 JPEGs (noise, so every item differs),
builds Qwen2.5-VL with the real 3B sizes and random weights directly on the GPU (bf16,
SDPA), and runs ``preresq.evaluation.evaluate`` on it, so batching by tokens, media loading,
the processor (with ``mm_token_type_ids``: images at their real positions), generation,
parsing and the prediction files are all timed.

Runs, in this order (``--out`` is rewritten after each, so a timeout keeps what was done):

0. ``dynamic`` and ``static`` of the comparison below (no compiling: cheap);
1. ``default``: the configuration as shipped (``configs/eval.yaml``, ``predictor=hf``) on
   the whole synthetic suite, ``--new-tokens`` per item: items/s, new tokens/s, ms per
   decode step and its ratio to the bandwidth floor (the text weights read once per step at
   ``--bandwidth-gbs``), peak GPU memory (target: < 80 GiB with KADID- and SPAQ-size
   images mixed), and the first generate call apart (it includes compiling).
2. each decode path (``dynamic``: today's path; ``static``: static cache; ``compiled``:
   static cache + torch.compile; ``default`` again; the compiling ones after step 1) on the
   first ``--compare-items`` KADID items, ``--compare-tokens`` new tokens: the same
   figures, and whether each path's greedy tokens equal the dynamic path's, item by item
   (bf16 on random weights has near-ties, so this is a figure to read, not an assertion).

A JSON summary is printed at the end. The tokenizer is the tiny model's
(``preresq.models.tiny``); the 3B keeps its 151,936-row embedding and LM head, so ids beyond
the tokenizer decode to nothing: the completions are not readable, the token counts and
timings are real. The GPU run has not been made yet (no GPU was lent to issue 20's work);
its length (meant to fit the 240 s ``scripts/gpu_checks.sh`` gives it) is an estimate.

    python scripts/gpu_eval_check.py --out gpu_eval.json     # 3B sizes on cuda
    python scripts/gpu_eval_check.py --tiny --device cpu     # tiny model: checks the script

Needs the project's dependencies: besides torch and transformers, omegaconf + hydra-core
(configs), qwen-vl-utils (resize rule), trl (the chat template of the tiny tokenizer),
scipy and pillow.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout without installing

import numpy as np  # noqa: E402
import torch  # noqa: E402

# Qwen/Qwen2.5-VL-3B-Instruct config.json, the fields that set sizes and behaviour.
QWEN25_VL_3B = {
    "text": {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008,
             "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2,
             "max_position_embeddings": 128000, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
             "mrope_section": [16, 24, 24], "tie_word_embeddings": True},
    "vision": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
               "out_hidden_size": 2048, "patch_size": 14, "spatial_merge_size": 2,
               "temporal_patch_size": 2, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
               "tokens_per_second": 2, "hidden_act": "silu", "in_channels": 3},
}

PATHS = {  # decode paths compared (predictor overrides)
    "dynamic": ["predictor.cache_implementation=null", "predictor.compile=false"],
    "static": ["predictor.cache_implementation=static", "predictor.compile=false"],
    "compiled": ["predictor.cache_implementation=static", "predictor.compile=true"],
    "default": [],
}


# ----------------------------------------------------------------------------- the benchmark

def write_benchmark(root: Path, kadid: int, spaq: int, spaq_size: tuple[int, int], seed: int) -> dict:
    """Images and authors'-style label lists where the kadid10k_test and spaq cards look."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    labels, data = root / "labels", root / "data"
    folders = {"kadid10k_test": data / "kadid10k" / "images", "spaq": data / "spaq" / "TestImage"}
    files = {"kadid10k_test": labels / "KADID-10K_test_set.txt", "spaq": labels / "GT_SPAQ.txt"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    plan = {"kadid10k_test": (kadid, (512, 384), "png"), "spaq": (spaq, spaq_size, "jpg")}
    for name, (count, (width, height), ext) in plan.items():
        lines = []
        for i in range(count):
            # Coarse noise upscaled: every image differs, and encoding stays fast.
            small = rng.integers(0, 255, (max(height // 16, 1), max(width // 16, 1), 3), dtype=np.uint8)
            image = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
            image.save(folders[name] / f"{name}_{i:04d}.{ext}", quality=90)
            lines.append(f"{name}_{i:04d}.{ext} {1 + 4 * rng.random():.3f}")
        files[name].write_text("\n".join(lines) + "\n")
    return {"paths.data_root": str(data), "paths.labels_root": str(labels)}


# ----------------------------------------------------------------------------- the model

def build_model(args, tiny_dir: Path, processor, model_cfg):
    """The tiny model from its folder, or the 3B sizes with random weights built on the GPU
    (the tiny tokenizer's special-token ids)."""
    from preresq.models import load_model

    device = torch.device(args.device)
    if args.tiny:
        return load_model(model_cfg, path=str(tiny_dir), device=device)
    from transformers import Qwen2_5_VLForConditionalGeneration

    config = model_config(QWEN25_VL_3B, processor.tokenizer)
    config._attn_implementation = "sdpa"
    torch.manual_seed(args.seed)
    with device:  # random weights initialised on the GPU: no host copy
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config.update(**{k: getattr(config.text_config, k)
                                      for k in ("bos_token_id", "eos_token_id", "pad_token_id")})
    return model.eval()


def model_config(sizes: dict, tokenizer):
    """A ``Qwen2_5_VLConfig`` of ``sizes`` with ``tokenizer``'s special-token ids."""
    from transformers import Qwen2_5_VLConfig

    ids = {key: tokenizer.convert_tokens_to_ids(token) for key, token in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    text = dict(sizes["text"])
    section = text.pop("mrope_section")
    text["rope_scaling"] = {"rope_type": "default", "type": "mrope", "mrope_section": section,
                            "rope_theta": text["rope_theta"]}
    text.update(bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
                eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                pad_token_id=tokenizer.pad_token_id)
    return Qwen2_5_VLConfig(text_config=text, vision_config=dict(sizes["vision"]), **ids,
                            tie_word_embeddings=text["tie_word_embeddings"])


def text_weight_bytes(model) -> int:
    """Bytes of the weights one decode step reads: all but the vision tower."""
    visual = {id(p) for name, p in model.named_parameters() if ".visual." in f".{name}"}
    return sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in visual)


def measured_predictor(base):
    """``HFPredictor`` that also times each generate call and keeps each item's tokens."""
    import hashlib

    class Measured(base):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.calls: list[dict] = []
            self.tokens: dict[str, list[int]] = {}

        def new_token_ids(self, requests):
            cuda = self.model.device.type == "cuda"
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            ids = super().new_token_ids(requests)
            if cuda:
                torch.cuda.synchronize()
            pad = self.generation_config.pad_token_id
            self.calls.append({"items": len(requests), "seconds": time.perf_counter() - start,
                               "steps": int(ids.shape[1]), "new_tokens": int((ids != pad).sum())})
            for request, row in zip(requests, ids.tolist(), strict=True):
                key = hashlib.md5(request.images[0].tobytes()).hexdigest()
                self.tokens[key] = row
            return ids

    return Measured


# ----------------------------------------------------------------------------- one run

def run_once(name: str, args, model, processor, overrides: list[str], out: Path,
             floor_s: float | None) -> tuple[dict, dict]:
    from omegaconf import OmegaConf

    from preresq.config import compose
    from preresq.decoding import Decoding
    from preresq.evaluation import evaluate
    from preresq.evaluation.hf_predictor import HFPredictor

    cfg = compose("eval", args.base_overrides + overrides + [f"output_dir={out / name}"])
    options = OmegaConf.to_container(cfg.predictor, resolve=True)
    options.pop("name")
    predictor = measured_predictor(HFPredictor)(model, processor, Decoding.from_cfg(cfg),
                                                device=torch.device(args.device), **options)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    evaluate(cfg, predictor=predictor)
    seconds = time.perf_counter() - start
    calls = predictor.calls
    items = sum(c["items"] for c in calls)
    new_tokens = sum(c["new_tokens"] for c in calls)
    generate_s = sum(c["seconds"] for c in calls)
    steps = sum(c["steps"] for c in calls)
    row = {
        "run": name, "cache_implementation": predictor.cache_implementation,
        "compile": predictor.compile, "batch_size": int(cfg.batch_size),
        "batch_tokens": cfg.get("batch_tokens"), "max_new_tokens": int(cfg.max_new_tokens),
        "items": items, "generate_calls": len(calls), "batch_sizes": sorted({c["items"] for c in calls}),
        "seconds": round(seconds, 2), "generate_seconds": round(generate_s, 2),
        "items_per_s": round(items / seconds, 3), "new_tokens_per_s": round(new_tokens / seconds, 1),
        "ms_per_decode_step": round(1000 * generate_s / max(steps, 1), 2),
        "first_call_seconds": round(calls[0]["seconds"], 2) if calls else None,
    }
    if len(calls) > 1:  # without the first call (compiling, warm-up)
        rest_s = sum(c["seconds"] for c in calls[1:])
        row["after_first_call_new_tokens_per_generate_s"] = round(
            sum(c["new_tokens"] for c in calls[1:]) / rest_s, 1)
    if floor_s:
        row["x_bandwidth_floor"] = round(generate_s / max(steps, 1) / floor_s, 1)
    if cuda:
        row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row, predictor.tokens


def same_tokens(mine: dict, reference: dict) -> dict:
    """How many items' greedy tokens equal the reference's, and the mean common prefix."""
    keys = sorted(set(mine) & set(reference))
    prefix = []
    for key in keys:
        a, b = mine[key], reference[key]
        n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        prefix.append(n)
    equal = sum(mine[k] == reference[k] for k in keys)
    return {"items_compared": len(keys), "items_identical": equal,
            "mean_common_prefix_tokens": round(sum(prefix) / len(prefix), 1) if prefix else None}


# ----------------------------------------------------------------------------- main

def run(args) -> dict:
    import transformers

    from preresq.config import compose
    from preresq.models import load_processor
    from preresq.models.tiny import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="gpu_eval_"))
    start = time.perf_counter()
    paths = write_benchmark(work, args.kadid, args.spaq, tuple(args.spaq_size), args.seed)
    write_s = time.perf_counter() - start
    tiny_dir = build_tiny_model(work / "tiny")
    model_name = "tiny" if args.tiny else "qwen2_5_vl_3b"
    args.base_overrides = [f"model={model_name}", "benchmarks=[kadid10k_test,spaq]",
                           "label_source=authors", "plots=false", "progress=false",
                           "bootstrap_samples=0", f"paths.cache_dir={work / 'cache'}",
                           f"max_new_tokens={args.new_tokens}",
                           *[f"{k}={v}" for k, v in paths.items()], *args.override]
    model_cfg = compose("eval", args.base_overrides).model
    processor = load_processor(model_cfg, path=str(tiny_dir))
    start = time.perf_counter()
    model = build_model(args, tiny_dir, processor, model_cfg)
    build_s = time.perf_counter() - start
    cuda = args.device.startswith("cuda")
    weight_bytes = text_weight_bytes(model)
    floor_s = weight_bytes / (args.bandwidth_gbs * 1e9) if cuda else None
    summary = {
        "model": "Qwen2.5-VL tiny (random)" if args.tiny else "Qwen2.5-VL-3B architecture (random weights)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(next(model.parameters()).dtype), "device": args.device,
        "gpu": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "benchmark": {"kadid_512x384": args.kadid, "spaq": args.spaq, "spaq_size": args.spaq_size,
                      "write_seconds": round(write_s, 1)},
        "build_seconds": round(build_s, 2), "text_weights_gib": round(weight_bytes / 2**30, 2),
        "bandwidth_floor_ms_per_step": round(1000 * floor_s, 3) if floor_s else None,
        "bandwidth_gbs": args.bandwidth_gbs if cuda else None,
        "runs": [], "comparison": {},
    }

    def save() -> None:
        if args.out:
            Path(args.out).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    out = work / "out"
    compare = [f"limit={args.compare_items}", "benchmarks=[kadid10k_test]",
               f"max_new_tokens={args.compare_tokens}"]
    tokens = {}

    def compare_run(name: str) -> None:
        row, tokens[name] = run_once(f"{name}-compare", args, model, processor,
                                     compare + PATHS[name], out, floor_s)
        summary["runs"].append(row)
        if "dynamic" in tokens and name != "dynamic":
            summary["comparison"][f"{name}_vs_dynamic"] = same_tokens(tokens[name], tokens["dynamic"])
        save()

    # The paths that do not compile first (cheap), then the full default run, which pays
    # the compiling on CUDA, then the compiled paths (graphs already made): a timeout
    # leaves the baseline and the default figures written.
    for name in [p for p in args.paths if p in ("dynamic", "static")]:
        compare_run(name)
    row, _ = run_once("default", args, model, processor, [], out, floor_s)
    summary["runs"].append(row)
    save()
    for name in [p for p in args.paths if p not in ("dynamic", "static")]:
        compare_run(name)
    return summary


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny model (CPU check of the script)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--kadid", type=int, default=None, help="KADID-size images (default 256; tiny 6)")
    parser.add_argument("--spaq", type=int, default=None, help="SPAQ-size photos (default 16; tiny 2)")
    parser.add_argument("--spaq-size", type=int, nargs=2, default=[4000, 3000], metavar=("W", "H"))
    parser.add_argument("--new-tokens", type=int, default=None, help="max_new_tokens (default 256; tiny 8)")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS),
                        help="decode paths compared on the KADID items (against dynamic)")
    parser.add_argument("--compare-items", type=int, default=None, help="default 64; tiny 4")
    parser.add_argument("--compare-tokens", type=int, default=None, help="default 32; tiny 8")
    parser.add_argument("--bandwidth-gbs", type=float, default=4800.0,
                        help="GPU memory bandwidth for the floor (H200: 4,800 GB/s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--override", nargs="*", default=[],
                        help="more eval config overrides, e.g. batch_size=64 batch_tokens=32768")
    parser.add_argument("--out", default=None, help="also write the JSON summary here")
    args = parser.parse_args(argv)
    small = args.tiny
    args.kadid = args.kadid if args.kadid is not None else (6 if small else 256)
    args.spaq = args.spaq if args.spaq is not None else (2 if small else 16)
    args.new_tokens = args.new_tokens or (8 if small else 256)
    args.compare_items = args.compare_items or (4 if small else 64)
    args.compare_tokens = args.compare_tokens or (8 if small else 32)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    summary = run(args)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
