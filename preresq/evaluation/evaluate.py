"""``evaluate(cfg)``: a model and a suite of benchmarks in, an output folder out.

The output folder (``cfg.output_dir``, default ``<paths.output_root>/eval/<model>/<suite>``)::

    predictions/<benchmark>.jsonl   one line per item: id, gt, pred (float|null), subscores,
                                    completion, and error when the media could not be read
    results.json                    per-benchmark counts and metrics, the mean, the setup
    results.md                      the same as a markdown table (also printed)
    plots/<benchmark>.png           prediction vs MOS with the logistic fit
    setup.json                      what produced the predictions (checked on resume)

Running the same command again skips items already predicted (an interrupted run resumes)
and recomputes the metrics over all items. Under ``torchrun --nproc_per_node=N`` each
benchmark's remaining items are split across the processes and rank 0 merges the partial
predictions, computes metrics and writes the report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from preresq.data.benchmarks import SUITE_DIR, Card, load_suite, read_benchmark
from preresq.evaluation.cache import PredictionCache
from preresq.evaluation.predict import (
    Decoding,
    ItemPrompt,
    Predictor,
    pending_records,
    predict_records,
    shard,
)
from preresq.evaluation.report import (
    benchmark_result,
    markdown_table,
    mean_row,
    scatter_plot,
    write_json,
)

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- processes

@dataclass
class Processes:
    """This process's place in a (possibly) distributed run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @classmethod
    def setup(cls) -> Processes:
        """Join the process group torchrun describes (gloo on CPU, nccl on GPU), if any."""
        import torch
        import torch.distributed as dist

        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        owns = False
        if world_size > 1 and not dist.is_initialized():
            cuda = torch.cuda.is_available()
            if cuda:
                torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl" if cuda else "gloo")
            owns = True
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), local_rank, owns)
        return cls()

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def first_then_others(self, fn: Callable[[], object]) -> object:
        """Run ``fn`` on rank 0 first (e.g. to build a cache), then on the other ranks."""
        if self.rank == 0:
            value = fn()
            self.barrier()
        else:
            self.barrier()
            value = fn()
        return value

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()

    def device(self):
        import torch

        return torch.device(f"cuda:{self.local_rank}") if torch.cuda.is_available() else torch.device("cpu")


# ----------------------------------------------------------------------------- config

def benchmark_names(cfg: DictConfig) -> list[str]:
    """``cfg.benchmarks`` (a list) when set, else the suite's list."""
    names = cfg.get("benchmarks") or cfg.suite.benchmarks
    if isinstance(names, str):
        names = [names]
    return [str(n) for n in names]


def suite_tag(names: Sequence[str]) -> str:
    """The name of the suite file listing exactly ``names``, else a short stable tag."""
    for path in sorted(SUITE_DIR.glob("*.yaml")):
        if [str(n) for n in (OmegaConf.load(path).get("benchmarks") or [])] == list(names):
            return path.stem
    if len(names) == 1:
        return names[0]
    return "custom-" + hashlib.sha1(",".join(names).encode()).hexdigest()[:8]


def model_tag(model_cfg) -> str:
    """A folder name for a model: the last two parts of its id or path, or ``tiny``."""
    name = model_cfg.get("name_or_path")
    if not name:
        return "tiny"
    return "--".join(Path(str(name).rstrip("/")).parts[-2:])


def output_dir(cfg: DictConfig, names: Sequence[str]) -> Path:
    if cfg.get("output_dir"):
        return Path(cfg.output_dir)
    return Path(cfg.paths.output_root) / "eval" / model_tag(cfg.model) / suite_tag(names)


def setup_of(cfg: DictConfig, cards: Sequence[Card], decoding: Decoding) -> dict:
    """What determines the predictions (model, prompts, views, decoding, labels).

    Batch size, process count and ``limit`` are left out: they change speed or how many
    items are asked, not what is asked.
    """
    modalities = sorted({c.modality for c in cards})
    model = OmegaConf.to_container(cfg.model, resolve=True)
    setup = {
        "model": {k: model.get(k) for k in ("name_or_path", "tiny", "min_pixels", "max_pixels", "dtype")},
        "prompt": {m: OmegaConf.to_container(cfg.prompt[m], resolve=True) for m in modalities},
        "decoding": asdict(decoding),
        "predictor": str(cfg.predictor.name),
        "label_source": cfg.get("label_source"),
    }
    if "video" in modalities:
        setup["video"] = OmegaConf.to_container(cfg.video, resolve=True)
    return setup


def check_setup(folder: Path, setup: dict) -> None:
    """Refuse to mix predictions of two setups in one output folder."""
    path = folder / "setup.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != setup:
            keys = sorted(k for k in setup.keys() | old.keys() if old.get(k) != setup.get(k))
            raise ValueError(
                f"{folder} holds predictions made with another setup (differs in {keys}: "
                f"{ {k: old.get(k) for k in keys} } vs { {k: setup.get(k) for k in keys} }). "
                f"Use another output_dir, or delete {folder / 'predictions'} to start over.")
        return
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(setup, indent=2) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- predictor

def build_predictor(cfg: DictConfig, model_path: str, decoding: Decoding, device) -> Predictor:
    """The configured generation backend (``cfg.predictor.name``: hf or vllm)."""
    from preresq.models import load_model, load_processor

    name = str(cfg.predictor.name)
    if name == "hf":
        from preresq.evaluation.predict import HFPredictor

        model = load_model(cfg.model, training=False, path=model_path).to(device)
        return HFPredictor(model, load_processor(cfg.model, path=model_path), decoding, device=device)
    if name == "vllm":
        from preresq.evaluation.vllm_backend import VLLMPredictor

        options = OmegaConf.to_container(cfg.predictor, resolve=True)
        options.pop("name")
        return VLLMPredictor(model_path, load_processor(cfg.model, path=model_path), decoding,
                             cfg.model, **options)
    raise ValueError(f"unknown predictor {name!r}; expected hf or vllm (configs/predictor/)")


def media_loader(cfg: DictConfig, card: Card) -> Callable:
    """Record -> its images (the loader training uses), opened when called."""
    from preresq.data.rows import item_images

    video_cfg = OmegaConf.to_container(cfg.video, resolve=True) if card.modality == "video" else None
    min_pixels, max_pixels = int(cfg.model.min_pixels), int(cfg.model.max_pixels)
    return lambda record: item_images(record, card.media_root, min_pixels, max_pixels, video_cfg)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_or_skip(card: Card) -> tuple[str | None, list]:
    """(None, records), or (why the benchmark cannot be evaluated here, in one line, [])."""
    try:
        records = read_benchmark(card)
    except FileNotFoundError as e:
        return f"labels not found ({_first_line(e)})", []
    if not Path(card.media_root).is_dir():
        return f"media folder not found: {card.media_root}", []
    if not records:
        return "no items", []
    return None, records


# ----------------------------------------------------------------------------- evaluate

def evaluate(cfg: DictConfig, predictor: Predictor | None = None) -> dict | None:
    """Evaluate ``cfg.model`` on ``cfg.suite`` (or ``cfg.benchmarks``); see the module doc.

    Args:
        cfg: a composed ``configs/eval.yaml``.
        predictor: use this instead of building the configured one (tests, notebooks).

    Returns:
        The contents of ``results.json`` on rank 0; None on the other ranks.
    """
    procs = Processes.setup()
    try:
        return _evaluate(cfg, predictor, procs)
    finally:
        procs.close()


def _evaluate(cfg: DictConfig, predictor: Predictor | None, procs: Processes) -> dict | None:
    from tqdm.auto import tqdm

    from preresq.models import resolve_model_path

    names = benchmark_names(cfg)
    cards = load_suite(names, paths=cfg.paths, source=cfg.get("label_source"))
    out = output_dir(cfg, names)
    decoding = Decoding.from_cfg(cfg)
    setup = setup_of(cfg, cards, decoding)
    if procs.rank == 0:
        check_setup(out, setup)
    procs.barrier()

    if predictor is None and str(cfg.predictor.name) == "vllm":
        from preresq.evaluation.vllm_backend import import_vllm

        import_vllm()  # without vllm, fail now rather than after reading benchmarks
    model_path = None
    if predictor is None:  # rank 0 first: it may build the tiny model into the cache
        model_path = procs.first_then_others(lambda: resolve_model_path(cfg.model, cfg.paths.cache_dir))

    benchmarks: dict[str, dict] = {}
    for card in cards:
        # rank 0 first: reading the demo set builds it into the cache on first use
        reason, records = procs.first_then_others(lambda c=card: read_or_skip(c))
        if reason is not None:
            logger.warning("skipping %s: %s", card.name, reason)
            benchmarks[card.name] = {"skipped": reason}
            continue
        if cfg.get("limit"):
            records = records[: int(cfg.limit)]
        cache = PredictionCache(out / "predictions", card.name, procs.rank)
        todo = pending_records(records, cache.done_ids())
        mine = shard(todo, procs.rank, procs.world_size)
        procs.barrier()  # every rank has read the cache before anyone writes to it
        if mine:
            if predictor is None:
                predictor = build_predictor(cfg, model_path, decoding, procs.device())
            bar = tqdm(total=len(records), initial=len(records) - len(todo), desc=card.name,
                       unit="item", disable=procs.rank != 0 or not cfg.get("progress", True))
            try:
                predict_records(mine, predictor, ItemPrompt.from_cfg(cfg.prompt[card.modality]),
                                media_loader(cfg, card), cache, int(cfg.batch_size),
                                progress=lambda k, bar=bar: bar.update(k * procs.world_size))
            finally:
                bar.close()
                cache.close()
        procs.barrier()  # every rank has finished its share
        if procs.rank == 0:
            rows = cache.merge([r.id for r in records])
            result = benchmark_result(rows, int(cfg.bootstrap_samples), int(cfg.seed))
            benchmarks[card.name] = result
            if cfg.get("plots", True):
                scatter_plot(out / "plots" / f"{card.name}.png", rows, result, card.name)

    if procs.rank != 0:
        return None
    results = {"benchmarks": benchmarks, "mean": mean_row(benchmarks), "setup": setup}
    write_json(out / "results.json", results)
    table = markdown_table(results)
    (out / "results.md").write_text(f"# {suite_tag(names)}: {model_tag(cfg.model)}\n\n{table}",
                                    encoding="utf-8")
    print(table)
    print(f"predictions, results.json, results.md and plots in {out}")
    return results
