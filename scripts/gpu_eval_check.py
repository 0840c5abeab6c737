"""Generation speed on a GPU, each figure apart: compile, first call, steady state, per step.

Writes a synthetic benchmark (``kadid10k_test`` and ``spaq`` cards with authors'-style
label lists in a temporary folder: ``--kadid`` KADID-size 512 x 384 PNGs, ``--spaq``
SPAQ-size JPEGs of noise), builds Qwen2.5-VL with the real 3B sizes and random weights on
the device (bf16, SDPA; ``--tiny``: the tiny model), then runs these variants, each
recorded in ``--out`` when it starts and when it ends (a kill keeps what finished; a
failing variant records its error and the next one runs; ``--deadline-s``: no variant
starts after that many seconds):

* ``profile_vision``: one vision-tower forward on ``--batch`` KADID images, timed and
  profiled (top operations by device time; CPU time without a GPU): how much the
  per-window attention loop costs (issue 25, point 11);
* ``path:<name>`` for each ``--paths`` decode path (``dynamic``: dynamic cache;
  ``static``: static cache; ``compiled``: static cache + torch.compile; ``default``: the
  shipped ``configs/predictor/hf.yaml``) on the same ``--batch`` KADID items: processor
  seconds; a prefill-only call (1 new token) twice; a ``--step-tokens`` call three times:
  the first call (compiling, CUDA-graph recording, warm-up) apart from the steady calls
  (the best of the later two), ``compile_seconds`` = first - steady; ``ms_per_decode_step``
  = (steady long - steady prefill-only) / (step tokens - 1), so the processor, the vision
  tower and the prefill cancel out; the bandwidth floor of one step (text weights + every
  row's KV cache at its mean length, at the bandwidth of the device found) and the step's
  ratio to it; whether the greedy tokens equal the dynamic path's;
* ``profile_decode:<name>`` for each ``--profile-paths`` path: the operations of one
  decode step, as (profile of the long call - profile of the prefill-only call) / steps:
  whether ``repeat_kv`` (K/V copied to every head over the static cache) dominates;
* ``evaluate``: ``preresq.evaluation.evaluate`` end to end with the shipped settings on the
  whole synthetic suite (batching, media loading, parsing, files): items/s, the first
  call of each shape apart from the later ones.

Random weights never stop early, and every timed call forces ``min_new_tokens`` too: new
tokens per second here count every row to its last token; a trained model stops at its
answer. Memory after each variant: allocated, reserved, their peaks and
``torch.cuda.mem_get_info``. A summary table is printed at the end.

    python scripts/gpu_eval_check.py --out gpu_eval.json --deadline-s 200   # 3B sizes, cuda
    python scripts/gpu_eval_check.py --device cpu --tiny --out /tmp/e.json  # checks the script

The tokenizer is the tiny model's (``preresq.models.tiny``); the 3B keeps its 151,936-row
embedding, so ids beyond the tokenizer decode to nothing: completions are not readable,
token counts and timings are real. Needs the project's dependencies (omegaconf, hydra-core,
qwen-vl-utils, trl for the tiny tokenizer's template, scipy, pillow).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout without installing

import torch  # noqa: E402

from preresq.evaluation import gpu_figures as fig  # noqa: E402
from preresq.evaluation import synthetic  # noqa: E402

PATHS = {  # decode paths compared (predictor overrides)
    "dynamic": ["predictor.cache_implementation=null", "predictor.compile=false"],
    "static": ["predictor.cache_implementation=static", "predictor.compile=false"],
    "compiled": ["predictor.cache_implementation=static", "predictor.compile=true"],
    "default": [],
}


def build_model(args, tiny_dir: Path, processor, model_cfg):
    """The tiny model from its folder, or the 3B sizes with random weights on the device."""
    from preresq.models import load_model

    if args.tiny:
        return load_model(model_cfg, path=str(tiny_dir), device=torch.device(args.device))
    return synthetic.random_model(synthetic.QWEN25_VL_3B, processor.tokenizer, args.device, args.seed)


# ----------------------------------------------------------------------------- timing

class Check:
    """What every variant shares: the model, its processor, the KADID requests, the device."""

    def __init__(self, args, work: Path, model, processor, base_overrides: list[str]) -> None:
        from PIL import Image

        from preresq.config import compose
        from preresq.data.rows import resize_image
        from preresq.evaluation.requests import ItemPrompt

        self.args, self.work, self.model, self.processor = args, work, model, processor
        self.base_overrides = base_overrides
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        cfg = compose("eval", base_overrides)
        self.min_pixels, self.max_pixels = int(cfg.model.min_pixels), int(cfg.model.max_pixels)
        prompt = ItemPrompt.from_cfg(cfg.prompt.image)
        folder = work / "data" / "kadid10k" / "images"
        files = sorted(folder.glob("*.png"))[: args.batch]
        self.requests = [prompt.request([resize_image(Image.open(f).convert("RGB"), self.min_pixels,
                                                      self.max_pixels)], f.stem) for f in files]
        self.tokens: dict[str, list[list[int]]] = {}

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def predictor(self, path: str):
        from omegaconf import OmegaConf

        from preresq.config import compose
        from preresq.decoding import Decoding
        from preresq.evaluation.hf_predictor import HFPredictor

        cfg = compose("eval", self.base_overrides + PATHS[path])
        options = OmegaConf.to_container(cfg.predictor, resolve=True)
        options.pop("name")
        return HFPredictor(self.model, self.processor, Decoding(max_new_tokens=self.args.step_tokens),
                           device=self.device, **options)

    def timed(self, predictor, new_tokens: int, profile: bool = False):
        """(seconds, token ids, profile or None) of one generate call of exactly
        ``new_tokens`` tokens per row on the KADID requests."""
        config = predictor.generation_config
        config.max_new_tokens = config.min_new_tokens = new_tokens
        self.sync()
        prof = self.profiler() if profile else None
        start = time.perf_counter()
        if prof is not None:
            with prof:
                ids = predictor.new_token_ids(self.requests)
                self.sync()
        else:
            ids = predictor.new_token_ids(self.requests)
            self.sync()
        return time.perf_counter() - start, ids, prof

    def profiler(self):
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
        return profile(activities=activities)

    def prompt_tokens(self, predictor) -> int:
        return int(predictor.inputs(self.requests[:1])["input_ids"].shape[1])


def decode_path(check: Check, name: str, floor) -> dict:
    """Variant ``path:<name>``: the figures of the module docstring for one decode path."""
    predictor = check.predictor(name)
    rows, steps = len(check.requests), check.args.step_tokens
    check.sync()
    start = time.perf_counter()
    predictor.inputs(check.requests)
    check.sync()
    processor_s = time.perf_counter() - start
    prefill = [check.timed(predictor, 1)[0] for _ in range(2)]
    long, ids = [], None
    for _ in range(3):
        seconds, ids, _ = check.timed(predictor, steps)
        long.append(seconds)
    check.tokens[name] = ids.tolist()
    step_ms = fig.ms_per_step(fig.steady(prefill), fig.steady(long), 1, steps)
    prompt = check.prompt_tokens(predictor)
    floor_ms = floor(rows, prompt + steps / 2)
    row = {
        "cache_implementation": predictor.cache_implementation, "compile": predictor.compile,
        "rows": rows, "prompt_tokens_padded": prompt, "new_tokens_per_row": steps,
        "processor_seconds": round(processor_s, 3),
        "prefill_only_call_seconds": [round(s, 3) for s in prefill],
        "long_call_seconds": [round(s, 3) for s in long],
        "first_call_seconds": round(long[0], 3),
        "steady_call_seconds": round(fig.steady(long), 3),
        "compile_seconds": round(long[0] - fig.steady(long), 3),
        "ms_per_decode_step": round(step_ms, 3),
        "steady_new_tokens_per_s": round(rows * steps / fig.steady(long), 1),
        "new_tokens_note": "every row runs to its last token (min_new_tokens, random weights)",
        "bandwidth_floor_ms_per_step": None if floor_ms is None else round(floor_ms, 3),
        "x_bandwidth_floor": None if floor_ms is None else round(step_ms / floor_ms, 1),
    }
    if name != "dynamic" and "dynamic" in check.tokens:
        row["same_tokens_as_dynamic"] = fig.same_tokens(check.tokens[name], check.tokens["dynamic"])
    return row


def profile_decode(check: Check, name: str) -> dict:
    """Variant ``profile_decode:<name>``: one decode step's operations (warmed up first)."""
    predictor = check.predictor(name)
    steps = check.args.step_tokens
    check.timed(predictor, 1)
    check.timed(predictor, steps)  # compiling and recording happen here, not in the profile
    short_s, _, short = check.timed(predictor, 1, profile=True)
    long_s, _, long = check.timed(predictor, steps, profile=True)
    table = fig.per_step_operations(long, short, steps - 1, on_device=check.cuda)
    return {"cache_implementation": predictor.cache_implementation, "compile": predictor.compile,
            "rows": len(check.requests), "profiled_ms_per_decode_step": round(
                fig.ms_per_step(short_s, long_s, 1, steps), 3), **table}


def profile_vision(check: Check) -> dict:
    """Variant ``profile_vision``: one vision-tower forward on the KADID batch."""
    from preresq.decoding import Decoding
    from preresq.evaluation.hf_predictor import HFPredictor

    predictor = HFPredictor(check.model, check.processor, Decoding(max_new_tokens=1), device=check.device)
    inputs = predictor.inputs(check.requests)
    pixels, grid = inputs["pixel_values"], inputs["image_grid_thw"]

    def forward():
        with torch.inference_mode():
            check.model.get_image_features(pixels, grid)
        check.sync()

    forward()  # warm-up
    start = time.perf_counter()
    forward()
    seconds = time.perf_counter() - start
    prof = check.profiler()
    with prof:
        forward()
    attention = sum(e.count for e in prof.key_averages() if "scaled_dot_product_attention" in e.key)
    return {"images": len(check.requests), "patches": int(pixels.shape[0]),
            "forward_seconds": round(seconds, 4), "attention_calls": attention,
            "time": "device" if check.cuda else "cpu",
            "top": fig.top_operations(prof, on_device=check.cuda)}


def measured_predictor(base):
    """``HFPredictor`` that also times each generate call (rows, steps, seconds)."""

    class Measured(base):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.calls: list[dict] = []

        def new_token_ids(self, requests):
            cuda = self.model.device.type == "cuda"
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            ids = super().new_token_ids(requests)
            if cuda:
                torch.cuda.synchronize()
            self.calls.append({"rows": int(ids.shape[0]), "steps": int(ids.shape[1]),
                               "seconds": time.perf_counter() - start})
            return ids

    return Measured


def evaluate_suite(check: Check) -> dict:
    """Variant ``evaluate``: the shipped settings end to end on the whole synthetic suite."""
    from omegaconf import OmegaConf

    from preresq.config import compose
    from preresq.decoding import Decoding
    from preresq.evaluation import evaluate
    from preresq.evaluation.hf_predictor import HFPredictor

    cfg = compose("eval", check.base_overrides + [f"output_dir={check.work / 'out' / 'evaluate'}"])
    options = OmegaConf.to_container(cfg.predictor, resolve=True)
    options.pop("name")
    predictor = measured_predictor(HFPredictor)(check.model, check.processor, Decoding.from_cfg(cfg),
                                                device=check.device, **options)
    start = time.perf_counter()
    evaluate(cfg, predictor=predictor)
    seconds = time.perf_counter() - start
    calls, seen, later = predictor.calls, set(), []
    for call in calls:  # the first call of each shape compiles / records; the later ones are steady
        shape = (call["rows"], call["steps"])
        call["first_of_its_shape"] = shape not in seen
        seen.add(shape)
        if not call["first_of_its_shape"]:
            later.append(call)
    rows = sum(c["rows"] for c in calls)
    new_tokens = sum(c["rows"] * c["steps"] for c in calls)
    later_s = sum(c["seconds"] for c in later)
    return {
        "cache_implementation": predictor.cache_implementation, "compile": predictor.compile,
        "batch_size": int(cfg.batch_size), "batch_tokens": cfg.get("batch_tokens"),
        "max_new_tokens": int(cfg.max_new_tokens), "generate_calls": len(calls),
        "rows_generated": rows, "shapes": len(seen), "wall_seconds": round(seconds, 2),
        "items": check.args.kadid + check.args.spaq,
        "items_per_s": round((check.args.kadid + check.args.spaq) / seconds, 3),
        "generate_seconds": round(sum(c["seconds"] for c in calls), 2),
        "first_call_seconds": round(calls[0]["seconds"], 2) if calls else None,
        "later_calls": len(later),
        "later_calls_new_tokens_per_s": round(sum(c["rows"] * c["steps"] for c in later) / later_s, 1)
        if later_s else None,
        "new_tokens_per_wall_s": round(new_tokens / seconds, 1),
        "new_tokens_note": "random weights never stop: every row runs max_new_tokens",
        "calls": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in c.items()}
                  for c in calls],
    }


# ----------------------------------------------------------------------------- main

def run(args) -> dict:
    import transformers

    from preresq.config import compose
    from preresq.models import load_processor
    from preresq.models.tiny import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="gpu_eval_"))
    start = time.perf_counter()
    paths = synthetic.write_benchmark(work, args.kadid, args.spaq, tuple(args.spaq_size), args.seed)
    write_s = time.perf_counter() - start
    tiny_dir = build_tiny_model(work / "tiny")
    base = [f"model={'tiny' if args.tiny else 'qwen2_5_vl_3b'}", "benchmarks=[kadid10k_test,spaq]",
            "label_source=authors", "plots=false", "progress=false", "bootstrap_samples=0",
            f"paths.cache_dir={work / 'cache'}", f"max_new_tokens={args.new_tokens}",
            *[f"{k}={v}" for k, v in paths.items()], *args.override]
    model_cfg = compose("eval", base).model
    processor = load_processor(model_cfg, path=str(tiny_dir))
    start = time.perf_counter()
    model = build_model(args, tiny_dir, processor, model_cfg)
    build_s = time.perf_counter() - start
    cuda = torch.device(args.device).type == "cuda"
    name = torch.cuda.get_device_name(torch.device(args.device)) if cuda else (platform.processor() or "cpu")
    gbs, gbs_note = (args.bandwidth_gbs, "--bandwidth-gbs") if args.bandwidth_gbs else \
        fig.bandwidth_gbs(name if cuda else None)
    if not cuda:
        gbs, gbs_note = None, "no GPU: no bandwidth floor"
    weights = synthetic.text_weight_bytes(model)
    dtype = next(model.parameters()).dtype
    kv = fig.kv_bytes_per_token(model.config.text_config, torch.empty((), dtype=dtype).element_size())
    summary = {
        "model": "Qwen2.5-VL tiny (random)" if args.tiny else "Qwen2.5-VL-3B architecture (random weights)",
        "parameters": sum(p.numel() for p in model.parameters()), "dtype": str(dtype),
        "device": args.device, "device_name": name, "torch": torch.__version__,
        "transformers": transformers.__version__,
        "benchmark": {"kadid_512x384": args.kadid, "spaq": args.spaq, "spaq_size": args.spaq_size,
                      "write_seconds": round(write_s, 1)},
        "batch": args.batch, "step_tokens": args.step_tokens, "build_seconds": round(build_s, 2),
        "text_weights_gib": round(weights / fig.GIB, 3), "kv_bytes_per_token": kv,
        "bandwidth_gbs": gbs, "bandwidth_note": gbs_note,
        "floor_note": "one decode step reads the text weights once and each row's KV cache "
                      "(mean length: prompt + half the new tokens); a static cache attends its "
                      "whole length, so its own floor is higher",
        "memory_after_build": fig.memory(args.device),
    }
    record = fig.Record(args.out, summary, args.deadline_s,
                        after=lambda: fig.memory(args.device))

    def floor(rows, context):
        return fig.decode_floor_ms(weights, kv, rows, context, gbs)

    check = Check(args, work, model, processor, base)

    def reset():
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(torch.device(args.device))

    def variant(key, fn):
        reset()
        record.run(key, fn)

    variant("profile_vision", lambda: profile_vision(check))
    cheap = [p for p in args.paths if p in ("dynamic", "static")]
    for name_ in cheap + [p for p in args.paths if p not in cheap]:  # compiling ones last
        variant(f"path:{name_}", lambda n=name_: decode_path(check, n, floor))
    for name_ in args.profile_paths:
        variant(f"profile_decode:{name_}", lambda n=name_: profile_decode(check, n))
    if not args.skip_evaluate:
        variant("evaluate", lambda: evaluate_suite(check))
    return record.data


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny model (CPU check of the script)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--kadid", type=int, default=None, help="KADID-size images (default 128; tiny 6)")
    parser.add_argument("--spaq", type=int, default=None, help="SPAQ-size photos (default 8; tiny 2)")
    parser.add_argument("--spaq-size", type=int, nargs=2, default=[4000, 3000], metavar=("W", "H"))
    parser.add_argument("--new-tokens", type=int, default=None,
                        help="max_new_tokens of the evaluate variant (default 128; tiny 8)")
    parser.add_argument("--batch", type=int, default=None,
                        help="KADID items per timed call (default 64; tiny 4)")
    parser.add_argument("--step-tokens", type=int, default=None,
                        help="new tokens of the long timed call (default 64; tiny 8)")
    parser.add_argument("--paths", nargs="*", default=list(PATHS), choices=list(PATHS),
                        help="decode paths timed")
    parser.add_argument("--profile-paths", nargs="*", default=["static", "default"], choices=list(PATHS),
                        help="decode paths whose decode step is profiled")
    parser.add_argument("--skip-evaluate", action="store_true", help="no end-to-end evaluate variant")
    parser.add_argument("--bandwidth-gbs", type=float, default=None,
                        help="memory bandwidth for the floor (default: by device name)")
    parser.add_argument("--deadline-s", type=float, default=None,
                        help="start no variant after this many seconds (the JSON says which were skipped)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--override", nargs="*", default=[],
                        help="more eval config overrides, e.g. batch_size=64 batch_tokens=32768")
    parser.add_argument("--out", default=None, help="the JSON record (written after every variant)")
    args = parser.parse_args(argv)
    tiny = args.tiny
    args.kadid = args.kadid if args.kadid is not None else (6 if tiny else 128)
    args.spaq = args.spaq if args.spaq is not None else (2 if tiny else 8)
    args.new_tokens = args.new_tokens or (8 if tiny else 128)
    args.batch = args.batch or (4 if tiny else 64)
    args.step_tokens = args.step_tokens or (8 if tiny else 64)
    if args.step_tokens < 2:
        parser.error("--step-tokens must be at least 2 (one decode step after the prefill)")
    if args.batch > args.kadid:
        parser.error(f"--batch {args.batch} needs at least as many --kadid images")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    data = run(args)
    print(fig.summary_table(data))
    return 0 if all(v["status"] == "ok" for v in data["variants"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
