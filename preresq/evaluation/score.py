"""Score images and videos with a model: ``preresq-score photo.jpg photos/ clips/ [--csv FILE]``.

Arguments are files and folders. A folder is walked recursively for image and video files
(by extension; others are listed on stderr, not scored) in sorted order of their path
relative to the folder, which is also their ``name`` (``preresq.evaluation.media_files``);
a file given directly is named as given. With ``--csv FILE`` one row per file,
``name,score,valid,error``, is appended and flushed as scored; rerunning the same command
skips the names already in the CSV and scores the rest, and a CSV written with another
model, prompt or setting (``FILE.identity.json`` beside it) or not by this command is
refused, never overwritten (``preresq.evaluation.score_csv``).

The model is the released PreResQ-R1 checkpoint asked with the release's prompt
(``model=preresq_r1``) unless ``model=<preset>`` says otherwise; ``--model PATH_OR_ID``
points at its weights (a local copy). Arguments that contain ``=`` (and are not existing
files) are Hydra overrides of ``configs/eval.yaml``, so the model, prompt and decoding are
chosen exactly as for ``scripts/eval.py``::

    preresq-score photos/ --csv scores.csv
    preresq-score photo.jpg --model /models/PreResIQA-R1
    preresq-score a.png clip.mp4 model=qwen2_5_vl_7b --model /runs/iqa/final
    preresq-score a.png b.png model=tiny prompt=demo_digit --json

A file is a video when its extension is one of ``VIDEO_EXTENSIONS`` (then the model's video
prompt and the video views are used), else an image. Scoring goes through
``preresq.Scorer``, the Python API. The output gives, per file, the score (the mean of the
sub-scores, or null when the answer held no valid score), the sub-scores and the reasoning
(the ``<think>`` block), as text (printed as scored) or as JSON. The exit status is 1 when
a file could not be read, 2 when the command cannot run (weights not there, a CSV that
cannot be resumed), else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from preresq.evaluation.scorer import VIDEO_EXTENSIONS, Scorer, modality_of, reasoning_of

__all__ = ["main", "score_files", "score_items", "format_text", "printable", "split_arguments", "modality_of",
           "reasoning_of", "with_default_model", "VIDEO_EXTENSIONS"]

def split_arguments(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(files, Hydra overrides): an argument with ``=`` that is not a file is an override."""
    files, overrides = [], []
    for arg in args:
        (overrides if "=" in arg and not Path(arg).exists() else files).append(arg)
    return files, overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preresq-score",
        description="Score image/video quality with a PreResQ model (by default the released "
                    "PreResQ-R1): the score and the reasoning, per file or into a CSV.",
        epilog="Arguments with '=' are overrides of configs/eval.yaml, e.g. "
               "model.name_or_path=/path/to/checkpoint model=tiny prompt=demo_digit "
               "decoding.do_sample=true decoding.num_samples=8")
    parser.add_argument("inputs", nargs="+", metavar="PATH_OR_OVERRIDE",
                        help="image or video files, folders (walked recursively for images and "
                             "videos), and key=value config overrides")
    parser.add_argument("--model", metavar="PATH_OR_ID",
                        help="the model's weights: a checkpoint folder or hub id (the same as "
                             "model.name_or_path=...); the model preset stays preresq_r1 unless "
                             "model=<preset> is given")
    parser.add_argument("--csv", metavar="FILE",
                        help="append name,score,valid,error rows as files are scored; rerun to "
                             "resume (names already there are skipped)")
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


def printable(text) -> str:
    """``text`` on one line, safe for a terminal: runs of whitespace become one space and
    every other character that is not printable (escape sequences, NUL, DEL, C1 controls,
    bidirectional overrides) is written as ``repr`` writes it (``\\x1b``, ``\\u202e``), so
    a model's completion or a file name cannot move the cursor, recolour or hide text."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in " ".join(str(text).split()))


def format_text(results: Sequence[dict]) -> str:
    """Human-readable lines: path, score and sub-scores, then the reasoning indented
    (model text and file names through ``printable``)."""
    lines = []
    for r in results:
        path = printable(r["path"])
        if r.get("error"):
            lines.append(f"{path}: error: {printable(r['error'])}")
            continue
        if r["score"] is None:
            lines.append(f"{path}: no score (the answer held no valid rating)")
        else:
            subs = " ".join(f"{s:.2f}" for s in r["subscores"] or [])
            lines.append(f"{path}: {r['score']:.2f}" + (f"  [{subs}]" if subs else ""))
        text = r["reasoning"] if r["reasoning"] is not None else r["completion"]
        label = "reasoning" if r["reasoning"] is not None else "completion"
        lines.append(f"  {label}: {printable(text)}")
    return "\n".join(lines)


DEFAULT_MODEL = "preresq_r1"  # configs/model/preresq_r1.yaml: the released checkpoint and prompt


def with_default_model(overrides: Sequence[str]) -> list[str]:
    """``model=preresq_r1`` first, unless the overrides choose a model preset."""
    if any(o.split("=", 1)[0].lstrip("+~") == "model" for o in overrides):
        return list(overrides)
    return [f"model={DEFAULT_MODEL}", *overrides]


def training_run_refusal(model: str | None, overrides: Sequence[str]) -> str | None:
    """Why ``--model`` cannot be asked with the default prompt: it is a checkpoint of a
    PreResQ training run (``run_info.json``, or the trainer's ``trainer_state.json``),
    trained with another question, and neither a model preset nor a prompt was named.
    None when fine."""
    chosen = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    trained = any((Path(model or "") / f).is_file() for f in ("run_info.json", "trainer_state.json"))
    if not model or not trained or chosen & {"model", "prompt"}:
        return None
    return (f"{model} is a checkpoint of a PreResQ training run, but preresq-score asks the "
            f"released PreResQ-R1's question by default (prompt=preresq_r1_release). Name the "
            f"prompt it was trained with: prompt=default (the training default), or a model "
            f"preset: model=qwen2_5_vl_7b.")


def weights_hint(cfg) -> str:
    """How to give preresq-score the weights: --model, or the preset's variable."""
    import re

    from omegaconf import OmegaConf

    node = OmegaConf.to_container(cfg.model, resolve=False).get("name_or_path")
    env = re.search(r"oc\.env:(\w+)", str(node))
    via = f", or set {env.group(1)}=/models/<name>" if env else ""
    return (f"\nWith preresq-score: download it on a machine with internet, copy the folder here "
            f"and pass --model /models/<name>{via}.")


def no_prompt_message(modality: str, items) -> str:
    """The model's prompt has no question for this modality (the release is images only)."""
    files = [str(i.path) for i in items if modality_of(i.path) == modality]
    shown = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
    return (f"{len(files)} {modality} files ({shown}), but this model's prompt has no {modality} "
            f"question (prompt.{modality} is null; the default model, the released PreResQ-R1, "
            f"rates images only). Score "
            f"the other files alone, or choose a model and prompt that have one, e.g. "
            f"model=qwen2_5_vl_7b --model /path/to/a/{modality}/checkpoint.")


def score_identity(cfg, weights: dict | None) -> dict:
    """What decides a CSV's scores: the evaluation identity without the benchmarks, with the
    prompts of every modality the config has (a later run adding videos matches)."""
    from preresq.decoding import Decoding
    from preresq.evaluation.evaluate import identity_of
    from preresq.evaluation.requests import ItemPrompt

    prompts = {m: ItemPrompt.from_cfg(cfg.prompt[m], m) for m in ("image", "video") if cfg.prompt.get(m)}
    identity = identity_of(cfg, [], Decoding.from_cfg(cfg), prompts, weights)
    for key in ("benchmarks", "label_source"):
        identity.pop(key)
    return identity


def _stop(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None, predictor=None) -> int:
    """Command-line entry point; returns the exit status. ``predictor``: tests' stand-in."""
    from preresq.config import compose
    from preresq.evaluation.media_files import media_files
    from preresq.evaluation.score_csv import CsvMismatchError, open_for_resume
    from preresq.models import ModelNotFoundError

    parser = build_parser()
    args = parser.parse_intermixed_args(argv)  # files, options, overrides in any order
    inputs, overrides = split_arguments(args.inputs)
    if not inputs:
        parser.error("no input files or folders")
    try:
        items, others = media_files(inputs)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    if others:
        shown = ", ".join(str(p) for p in others[:5]) + (", ..." if len(others) > 5 else "")
        print(f"not scored: {len(others)} files in the folders are neither images nor videos "
              f"by extension ({shown})", file=sys.stderr)
    if not items:
        parser.error(f"no image or video files in {', '.join(inputs)}")
    refusal = training_run_refusal(args.model, overrides)
    if refusal:
        return _stop(refusal)
    overrides = with_default_model(overrides)
    if args.model:
        overrides.append(f"model.name_or_path={args.model}")
    stdout = sys.stdout
    cfg = None
    try:
        # Libraries print notices on stdout when first imported (DeepSpeed's accelerator
        # line): send them to stderr, so that stdout holds the results only (--json parses).
        with contextlib.redirect_stdout(sys.stderr):
            cfg = compose("eval", overrides)
            for modality in sorted({modality_of(i.path) for i in items}):
                if not cfg.prompt.get(modality):
                    return _stop(no_prompt_message(modality, items))
            todo = items
            if args.csv:
                weights = None
                if predictor is None:
                    from preresq.evaluation.evaluate import locate_model

                    weights = locate_model(cfg)[1]
                done = open_for_resume(args.csv, score_identity(cfg, weights))
                todo = [i for i in items if i.name not in done]
                print(f"{args.csv}: {len(items) - len(todo)} of {len(items)} files already scored, "
                      f"{len(todo)} to score", file=sys.stderr)
            scorer = Scorer(cfg, predictor) if todo else None
        results = score_items(todo, scorer, int(cfg.batch_size), args.csv,
                              None if args.json else stdout)
    except ModelNotFoundError as err:  # a one-line reason, not a stack trace
        return _stop(f"{err}{weights_hint(cfg) if cfg is not None else ''}")
    except CsvMismatchError as err:
        return _stop(str(err))
    except KeyboardInterrupt:
        if args.csv and Path(args.csv).is_file():
            print(f"\ninterrupted: the rows scored so far are in {args.csv}; run the same "
                  f"command again to score the rest", file=sys.stderr)
        else:
            print("\ninterrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False), file=stdout)
    return 1 if any(r.get("error") for r in results) else 0


def score_items(items, scorer, batch_size: int, csv_path=None, text_out=None) -> list[dict]:
    """Score ``MediaFile``s a batch at a time; each batch's rows are appended to the CSV
    (and printed as text) before the next is asked. Returns one dict per file, with its
    ``name``."""
    from preresq.evaluation.score_csv import CsvAppender, csv_row

    appender = CsvAppender(csv_path) if csv_path else None
    results: list[dict] = []
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            scored = [{"name": item.name, **r.to_dict()}
                      for item, r in zip(chunk, scorer.score([i.path for i in chunk]), strict=True)]
            if appender is not None:
                appender.append([csv_row(r["name"], r) for r in scored])
            if text_out is not None:
                print(format_text(scored), file=text_out, flush=True)
            results += scored
    finally:
        if appender is not None:
            appender.close()
    return results


if __name__ == "__main__":
    sys.exit(main())
