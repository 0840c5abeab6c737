"""``evaluate(cfg)``: a model and a suite of benchmarks in, an output folder out.

The output folder (``cfg.output_dir``, default
``<paths.output_root>/eval/<model>-<8 hex digits of its weights>/<suite>``)::

    identity.json                   what produced the predictions (checked on every run)
    predictions/<benchmark>.jsonl   one line per item: id, gt, pred (float|null), subscores,
                                    completion, and error when the media could not be read
    results.json                    per-benchmark counts and metrics, the mean, the identity
    results.md                      the same as a markdown table (also printed)
    plots/<benchmark>.png           prediction vs MOS with the logistic fit

Predictions are only ever added: running again skips the items already predicted (an
interrupted run resumes), ``limit=N`` asks the first N items and reports on those N, and
the rows of every other item stay on disk. A run whose model, prompts, parser, decoding,
pixel budgets, video views or labels differ from the folder's ``identity.json`` stops with
a message naming what changed (``preresq.evaluation.identity``). Under ``torchrun
--nproc_per_node=N`` each benchmark's remaining items are split across the processes and
rank 0 merges the partial predictions, computes metrics and writes the report.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from preresq.data.benchmarks import SUITE_DIR, Card, load_suite, read_benchmark, require_media_root
from preresq.data.missing import DataMissingError
from preresq.decoding import Decoding
from preresq.evaluation.batching import MediaTokens, PromptLengths
from preresq.evaluation.cache import PredictionCache
from preresq.evaluation.identity import (
    check_identity,
    local_model_dir,
    short_fingerprint,
    weights_fingerprint,
)
from preresq.evaluation.predict import (
    Predictor,
    batch_limits,
    pending_records,
    predict_records,
    shard,
    text_counter,
)
from preresq.evaluation.processes import Processes
from preresq.evaluation.report import benchmark_result, scatter_plot, write_report
from preresq.evaluation.requests import ItemPrompt

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- evaluate

def evaluate(cfg: DictConfig, predictor: Predictor | None = None) -> dict | None:
    """Evaluate ``cfg.model`` on ``cfg.suite`` (or ``cfg.benchmarks``); see the module doc.

    Args:
        cfg: a composed ``configs/eval.yaml``.
        predictor: use this instead of building the configured one (tests, notebooks);
            the folder's identity then has no weights fingerprint.

    Returns:
        The contents of ``results.json`` on rank 0; None on the other ranks.
    """
    from tqdm.auto import tqdm

    procs = Processes.setup()
    try:
        # 1. setup: what is asked, of which model, into which folder
        names = benchmark_names(cfg)
        cards = load_suite(names, paths=cfg.paths, source=cfg.get("label_source"))
        decoding = Decoding.from_cfg(cfg)
        prompts = {m: ItemPrompt.from_cfg(cfg.prompt.get(m), m) for m in sorted({c.modality for c in cards})}
        if predictor is None:
            check_backend(cfg)
        benchmarks: dict[str, dict] = {}
        readable: dict[str, list] = {}
        problems: dict[str, DataMissingError | str] = {}
        for card in cards:
            # rank 0 first: reading the demo set builds it into the cache on first use
            problem, records = procs.first_then_others(lambda c=card: read_or_skip(c))
            if problem is not None:
                reason = problem.short() if isinstance(problem, DataMissingError) else problem
                logger.warning("skipping %s: %s (see data/README.md)", card.name, reason)
                benchmarks[card.name] = {"skipped": reason}
                problems[card.name] = problem
            else:
                readable[card.name] = records
        if not readable:  # an empty table would look like a finished run
            raise nothing_to_evaluate(names, problems, cfg.paths)
        model_path = weights = None
        if predictor is None:  # after the labels: missing data stops before any download
            model_path, weights = procs.first_then_others(lambda: locate_model(cfg))
        identity = identity_of(cfg, [c for c in cards if c.name in readable], decoding, prompts,
                               weights)
        out = output_dir(cfg, names, identity)
        if procs.rank == 0:
            check_identity(out, identity, overwrite=bool(cfg.get("overwrite", False)))
        procs.barrier()

        for card in (c for c in cards if c.name in readable):
            records = readable[card.name]
            asked = records[: int(cfg.limit)] if cfg.get("limit") else records

            # 2. pending items: the asked ones not on disk yet, this process's share
            cache = PredictionCache(out / "predictions", card.name, procs.rank)
            todo = pending_records(asked, cache.done_ids())
            mine = shard(todo, procs.rank, procs.world_size)
            procs.barrier()  # every rank has read the cache before anyone writes to it

            # 3-4. predict, appending each row to disk as it is made. Every rank builds the
            # predictor once any rank has items (``todo`` is the same on every rank), even
            # with an empty share: vLLM's engine runs collectives while it is built.
            if todo and predictor is None:
                predictor = build_predictor(cfg, model_path, decoding, procs.device(),
                                            images_per_prompt(cfg, prompts))
            if mine:
                bar = tqdm(total=len(asked), initial=len(asked) - len(todo), desc=card.name,
                           unit="item", disable=procs.rank != 0 or not cfg.get("progress", True))
                prompt = prompts[card.modality]
                lengths = PromptLengths(media_tokens(cfg, card), text_counter(predictor, prompt),
                                        decoding.num_samples)
                limits = batch_limits(int(cfg.batch_size), cfg.get("batch_tokens"), predictor)
                try:
                    predict_records(mine, predictor, prompt, media_loader(cfg, card), cache, limits,
                                    lengths,
                                    progress=lambda k, bar=bar: bar.update(k * procs.world_size))
                finally:
                    bar.close()
                    cache.close()
            procs.barrier()  # every rank has finished its share

            # 5. metrics over the asked items, from the rows on disk (all rows are kept)
            if procs.rank == 0:
                on_disk = {row["id"]: row for row in cache.merge([r.id for r in records])}
                rows = [on_disk[r.id] for r in asked if r.id in on_disk]
                result = benchmark_result(rows, int(cfg.bootstrap_samples), int(cfg.seed))
                benchmarks[card.name] = result
                if cfg.get("plots", True):
                    scatter_plot(out / "plots" / f"{card.name}.png", rows, result, card.name)

        # 6. report
        if procs.rank != 0:
            return None
        return write_report(out, benchmarks, identity,
                            title=f"{suite_tag(names)}: {model_tag(cfg.model)}",
                            model_path=model_path, plots=bool(cfg.get("plots", True)))
    finally:
        procs.close()


# ----------------------------------------------------------------------------- setup

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
    """A readable name for a model: the last two parts of its id or path, or ``tiny``."""
    name = model_cfg.get("name_or_path")
    if not name:
        return "tiny"
    return "--".join(Path(str(name).rstrip("/")).parts[-2:])


def output_dir(cfg: DictConfig, names: Sequence[str], identity: dict) -> Path:
    """``cfg.output_dir``, else a folder unique per model: its tag plus 8 hex digits of its
    weights' fingerprint (two runs both ending in ``.../final`` get two folders)."""
    if cfg.get("output_dir"):
        return Path(cfg.output_dir)
    tag = model_tag(cfg.model)
    fingerprint = short_fingerprint(identity)
    if fingerprint:
        tag = f"{tag}-{fingerprint}"
    return Path(cfg.paths.output_root) / "eval" / tag / suite_tag(names)


def check_backend(cfg: DictConfig) -> None:
    """Without vllm installed, ``predictor=vllm`` fails now, not after reading benchmarks."""
    if str(cfg.predictor.name) == "vllm":
        from preresq.evaluation.vllm_backend import import_vllm

        import_vllm()


def model_folder(cfg: DictConfig) -> str:
    """The local folder the weights are read from (a hub id is fetched into the hub cache;
    the tiny model is built if asked); a missing folder stops here with the remedies."""
    from preresq.models import ModelNotFoundError, resolve_model_path

    path = local_model_dir(resolve_model_path(cfg.model, cfg.paths.cache_dir),
                           cfg.model.get("subfolder"))
    if not Path(path).is_dir():
        raise ModelNotFoundError(
            f"Model not available: the local folder {path!r} is missing.\nSet "
            f"model.name_or_path=<folder> to a folder holding config.json, the weights and the "
            f"processor files (a hub download or a training run's checkpoint).")
    return path


def locate_model(cfg: DictConfig) -> tuple[str, dict]:
    """(the local folder to load, its weights fingerprint)."""
    path = model_folder(cfg)
    return path, weights_fingerprint(path, Path(cfg.paths.cache_dir) / "fingerprints.json")


def identity_of(cfg: DictConfig, cards: Sequence[Card], decoding: Decoding,
                prompts: dict[str, ItemPrompt], weights: dict | None) -> dict:
    """Everything that decides the predictions (``identity.json``; see ``identity``).

    ``cards``: the benchmarks whose labels were read. Batch size and tokens, the cache and
    compile settings, process count and ``limit`` are left out: they change speed or how
    many items are asked, not what is asked. Paths are left out too: the same weights or labels
    moved elsewhere are the same.
    """
    from preresq.data import image, video_decode
    from preresq.evaluation.identity import labels_identity

    model = OmegaConf.to_container(cfg.model, resolve=True)
    identity = {
        "model": {"weights": weights, **{k: model.get(k) for k in ("dtype", "min_pixels", "max_pixels",
                                                                   "subfolder")}},
        "prompt": {m: {**asdict(p), **p.texts()} for m, p in prompts.items()},
        "decoding": asdict(decoding),
        "predictor": str(cfg.predictor.name),
        "label_source": cfg.get("label_source"),
        "benchmarks": {c.name: labels_identity(c) for c in cards},
    }
    # How files become pixels: old predictions came from other pixels.
    rules = {"image": image.DISPLAY_RULES, "video": video_decode.DISPLAY_RULES}
    if media := {kind: rules[kind] for kind in rules if kind in prompts}:
        identity["media"] = media
    if "video" in prompts:
        video = OmegaConf.to_container(cfg.video, resolve=True)
        video.pop("num_threads", None)  # speed only: the frames are the same
        identity["video"] = video
    return identity


def read_or_skip(card: Card) -> tuple[DataMissingError | str | None, list]:
    """(None, records), or (why the benchmark cannot be evaluated here: the missing data,
    or a one-line reason, []). The labels are read before the media folder is looked at,
    because reading the demo set builds it."""
    try:
        records = read_benchmark(card)
        require_media_root(card)
    except DataMissingError as e:
        return e, []
    if not records:
        return "no items", []
    return None, records


def nothing_to_evaluate(names: Sequence[str], problems: dict, paths) -> DataMissingError:
    """The error of a run in which no benchmark could be evaluated: each one's reason."""
    missing = [m for p in problems.values() if isinstance(p, DataMissingError) for m in p.missing]
    others = [f"{name}: {p}" for name, p in problems.items() if not isinstance(p, DataMissingError)]
    return DataMissingError(missing, paths=paths, others=others,
                            headline=f"no benchmark could be evaluated: all {len(names)} of "
                                     f"{suite_tag(names)} were skipped, nothing was written")


# ----------------------------------------------------------------------------- predictor

def build_predictor(cfg: DictConfig, model_path: str, decoding: Decoding, device,
                    max_images: int = 1) -> Predictor:
    """The configured generation backend (``cfg.predictor.name``: hf or vllm) on ``device``,
    this process's GPU under torchrun (vLLM's engine finds it from ``LOCAL_RANK``).
    ``max_images``: the most images one prompt holds (vLLM reserves room for them)."""
    from preresq.models import load_model, load_processor

    name = str(cfg.predictor.name)
    options = OmegaConf.to_container(cfg.predictor, resolve=True)
    options.pop("name")
    if name == "hf":
        from preresq.evaluation.hf_predictor import HFPredictor

        # Straight onto the device (no whole copy in host memory per process).
        model = load_model(cfg.model, training=False, path=model_path, device=device)
        return HFPredictor(model, load_processor(cfg.model, path=model_path), decoding,
                           device=device, **options)
    if name == "vllm":
        from preresq.evaluation.vllm_backend import VLLMPredictor

        return VLLMPredictor(model_path, load_processor(cfg.model, path=model_path), decoding,
                             cfg.model, max_images=max_images, **options)
    raise ValueError(f"unknown predictor {name!r}; expected hf or vllm (configs/predictor/)")


def images_per_prompt(cfg: DictConfig, modalities) -> int:
    """The most images one prompt of these modalities holds: 1 per image, a video's views."""
    from preresq.evaluation.batching import views_per_video

    video = OmegaConf.to_container(cfg.video, resolve=True) if "video" in modalities else None
    return max(views_per_video(video) if m == "video" else 1 for m in modalities)


def media_tokens(cfg: DictConfig, card: Card) -> MediaTokens:
    """Record -> the visual tokens of its images, from the files' headers (for batching)."""
    video_cfg = OmegaConf.to_container(cfg.video, resolve=True) if card.modality == "video" else None
    return MediaTokens(card.media_root, int(cfg.model.min_pixels), int(cfg.model.max_pixels), video_cfg)


def media_loader(cfg: DictConfig, card: Card) -> Callable:
    """Record -> its images (the loader training uses), opened when called."""
    from preresq.data.rows import item_images

    video_cfg = OmegaConf.to_container(cfg.video, resolve=True) if card.modality == "video" else None
    min_pixels, max_pixels = int(cfg.model.min_pixels), int(cfg.model.max_pixels)
    return lambda record: item_images(record, card.media_root, min_pixels, max_pixels, video_cfg)
