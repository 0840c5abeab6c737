"""Score image or video files with a model: ``preresq-score photo.jpg clip.mp4 [--json]``.

Arguments that contain ``=`` (and are not existing files) are Hydra overrides of
``configs/eval.yaml``, so the model, prompt and decoding are chosen exactly as for
``scripts/eval.py``::

    preresq-score photo.jpg model.name_or_path=/runs/iqa/checkpoint-1560
    preresq-score a.png b.png model=tiny prompt=demo_digit --json

A file is a video when its extension is one of ``VIDEO_EXTENSIONS`` (then the video prompt
and the video views are used), else an image. The output gives, per file, the score (the
mean of the sub-scores, or null when the answer held no valid score), the sub-scores and the
reasoning (the ``<think>`` block), as text or as JSON. The exit status is 1 when a file
could not be read, else 0.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg",
                              ".wmv", ".flv", ".3gp", ".ts"})
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def modality_of(path: str | Path) -> str:
    """``"video"`` for a video file extension, else ``"image"``."""
    return "video" if Path(path).suffix.lower() in VIDEO_EXTENSIONS else "image"


def reasoning_of(completion: str | None) -> str | None:
    """The text of the last ``<think>`` block, or None when there is none."""
    if not completion:
        return None
    blocks = _THINK.findall(completion)
    return blocks[-1].strip() if blocks else None


def split_arguments(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(files, Hydra overrides): an argument with ``=`` that is not a file is an override."""
    files, overrides = [], []
    for arg in args:
        (overrides if "=" in arg and not Path(arg).exists() else files).append(arg)
    return files, overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preresq-score",
        description="Score image/video quality with a PreResQ model: the score and the reasoning.",
        epilog="Arguments with '=' are overrides of configs/eval.yaml, e.g. "
               "model.name_or_path=/path/to/checkpoint model=tiny prompt=demo_digit "
               "decoding.do_sample=true decoding.num_samples=8")
    parser.add_argument("inputs", nargs="+", metavar="PATH_OR_OVERRIDE",
                        help="image or video files, and key=value config overrides")
    parser.add_argument("--model", metavar="PATH_OR_ID",
                        help="a checkpoint folder or hub id (the same as model.name_or_path=...)")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of text")
    return parser


def score_files(paths: Sequence[str | Path], cfg, predictor=None) -> list[dict]:
    """Score files with the model of an eval config; one dict per file, in order.

    Args:
        paths: image or video files.
        cfg: a composed ``configs/eval.yaml`` (model, prompt, video, decoding, batch_size).
        predictor: use this instead of building ``cfg.predictor`` (tests).
    """
    from omegaconf import OmegaConf

    from preresq.evaluation.evaluate import Processes, build_predictor
    from preresq.evaluation.predict import Decoding, ItemPrompt, load_ahead, predict_batch
    from preresq.models import resolve_model_path

    paths = [Path(p) for p in paths]
    if predictor is None:
        model_path = resolve_model_path(cfg.model, cfg.paths.cache_dir)
        predictor = build_predictor(cfg, model_path, Decoding.from_cfg(cfg), Processes().device())
    video_cfg = OmegaConf.to_container(cfg.video, resolve=True)
    min_pixels, max_pixels = int(cfg.model.min_pixels), int(cfg.model.max_pixels)
    results: dict[int, dict] = {}
    for modality in ("image", "video"):
        index = [i for i, p in enumerate(paths) if modality_of(p) == modality]
        if not index:
            continue
        prompt = ItemPrompt.from_cfg(cfg.prompt[modality])
        items = [_FileItem(str(paths[i]), i) for i in index]

        def load(item, modality=modality):
            return file_images(item.path, modality, min_pixels, max_pixels, video_cfg)

        for batch in load_ahead(items, int(cfg.batch_size), load):
            for loaded, row in zip(batch, predict_batch(batch, predictor, prompt), strict=True):
                results[loaded.record.index] = _output(loaded, row, modality)
    return [results[i] for i in range(len(paths))]


def file_images(path: str | Path, modality: str, min_pixels: int, max_pixels: int,
                video_cfg: dict | None = None) -> list:
    """The images the model sees for one file, by the loaders evaluation uses."""
    from preresq.data.image import open_image
    from preresq.data.rows import resize_image

    if modality == "image":
        views = [open_image(path)]
    else:
        from preresq.data.video import load_views

        views = [view.convert("RGB") for view in load_views(path, **dict(video_cfg or {}))]
    return [resize_image(view, min_pixels, max_pixels) for view in views]


class _FileItem:
    """A file to score, shaped like a record for the prediction helpers (no MOS)."""

    def __init__(self, path: str, index: int) -> None:
        self.id = path
        self.path = path
        self.index = index
        self.score = None


def _output(loaded, row: dict, modality: str) -> dict:
    out = {"path": loaded.record.path, "modality": modality, "score": row["pred"],
           "subscores": row["subscores"], "reasoning": reasoning_of(row["completion"]),
           "completion": row["completion"]}
    if "sample_preds" in row:
        out["sample_scores"] = row["sample_preds"]
    if row.get("error"):
        out["error"] = row["error"]
    return out


def format_text(results: Sequence[dict]) -> str:
    """Human-readable lines: path, score and sub-scores, then the reasoning indented."""
    lines = []
    for r in results:
        if r.get("error"):
            lines.append(f"{r['path']}: error: {r['error']}")
            continue
        if r["score"] is None:
            lines.append(f"{r['path']}: no score (the answer held no valid rating)")
        else:
            subs = " ".join(f"{s:.2f}" for s in r["subscores"] or [])
            lines.append(f"{r['path']}: {r['score']:.2f}" + (f"  [{subs}]" if subs else ""))
        text = r["reasoning"] if r["reasoning"] is not None else r["completion"]
        label = "reasoning" if r["reasoning"] is not None else "completion"
        lines.append(f"  {label}: {' '.join(str(text).split())}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from preresq.config import compose
    from preresq.models import ModelNotFoundError

    args = build_parser().parse_intermixed_args(argv)  # files, options, overrides in any order
    files, overrides = split_arguments(args.inputs)
    if not files:
        build_parser().error("no input files")
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        build_parser().error(f"not a file: {', '.join(missing)}")
    if args.model:
        overrides.append(f"model.name_or_path={args.model}")
    cfg = compose("eval", overrides)
    try:
        results = score_files(files, cfg)
    except ModelNotFoundError as err:  # a one-line reason, not a stack trace
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        print(format_text(results))
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
