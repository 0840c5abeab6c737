"""Score image or video files with a model: ``preresq-score photo.jpg clip.mp4 [--json]``.

Arguments that contain ``=`` (and are not existing files) are Hydra overrides of
``configs/eval.yaml``, so the model, prompt and decoding are chosen exactly as for
``scripts/eval.py``::

    preresq-score photo.jpg model.name_or_path=/runs/iqa/checkpoint-1560
    preresq-score a.png b.png model=tiny prompt=demo_digit --json

A file is a video when its extension is one of ``VIDEO_EXTENSIONS`` (then the video prompt
and the video views are used), else an image. Scoring goes through ``preresq.Scorer``, the
Python API. The output gives, per file, the score (the
mean of the sub-scores, or null when the answer held no valid score), the sub-scores and the
reasoning (the ``<think>`` block), as text or as JSON. The exit status is 1 when a file
could not be read, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from preresq.evaluation.scorer import VIDEO_EXTENSIONS, Scorer, modality_of, reasoning_of

__all__ = ["main", "score_files", "format_text", "split_arguments", "modality_of", "reasoning_of",
           "VIDEO_EXTENSIONS"]

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
    """Score files with the model of an eval config (``preresq.Scorer``); one dict per file.

    Args:
        paths: image or video files.
        cfg: a composed ``configs/eval.yaml`` (model, prompt, video, decoding, batch_size).
        predictor: use this instead of building ``cfg.predictor`` (tests).
    """
    return [r.to_dict() for r in Scorer(cfg, predictor).score([Path(p) for p in paths])]


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
    try:
        # Libraries print notices on stdout when first imported (DeepSpeed's accelerator
        # line): send them to stderr, so that stdout holds the results only (--json parses).
        with contextlib.redirect_stdout(sys.stderr):
            cfg = compose("eval", overrides)
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
