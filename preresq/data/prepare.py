"""Turn a benchmark card (or an official label file) into a checked manifest.

Every media file goes through the loader training and evaluation use
(``preresq.data.rows.item_images``: images decoded as displayed and resized, videos' views
decoded and resized), all bad files are reported together with their label-file lines, and
the item count is compared with the card. Nothing is written when anything is wrong, unless the
caller asks to drop the bad files; the manifest is written atomically either way.
``scripts/prepare_data.py`` is the command-line face of ``prepare_manifest``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from preresq.data.benchmarks import (
    Card,
    load_card,
    load_data_card,
    read_benchmark,
    require_media_root,
)
from preresq.data.records import Record, write_manifest


class DataCheckError(ValueError):
    """Some media files are missing or unreadable, or the item count is wrong."""


@dataclass(frozen=True)
class BadFile:
    """A media file that failed the check, with where its item came from."""

    item: str
    path: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.item}: {self.reason} ({self.path})"


@dataclass
class PrepareResult:
    """What ``prepare_manifest`` did."""

    output: Path | None
    written: int
    read: int
    dropped: list[BadFile] = field(default_factory=list)

    def summary(self) -> str:
        text = f"wrote {self.written} items to {self.output}"
        if self.dropped:
            text += f" (dropped {len(self.dropped)} bad files of {self.read})"
        return text


@dataclass(frozen=True)
class LoaderSettings:
    """What the training and evaluation loaders are given besides the file: the model's pixel
    bounds (``configs/model``) and the video views (``configs/video``). The check runs the
    loader itself (``preresq.data.rows.item_images``) with these."""

    min_pixels: int
    max_pixels: int
    video: dict = field(default_factory=dict)

    @classmethod
    def from_configs(cls, model: str = "qwen2_5_vl_7b", video: dict | None = None) -> LoaderSettings:
        """The settings of ``configs/model/<model>.yaml`` and ``configs/video/default.yaml``
        (with ``video`` laid over it)."""
        from omegaconf import OmegaConf

        from preresq.data.video import ViewSpec, default_config
        from preresq.paths import CONFIG_DIR

        path = CONFIG_DIR / "model" / f"{model}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in path.parent.glob("*.yaml"))
            raise FileNotFoundError(f"no model config {path}; known: {known}")
        cfg = OmegaConf.load(path)
        views = {**default_config(), **(video or {})}
        ViewSpec.from_cfg(**views)  # bad view settings fail here, before any file is opened
        return cls(int(cfg.min_pixels), int(cfg.max_pixels), views)


def check_file(path: Path, modality: str, settings: LoaderSettings | None = None) -> str | None:
    """Why the media file at ``path`` is unusable, or None when it is fine.

    The file goes through the loader training and evaluation use (``item_images``: the
    image decoded as displayed and resized, or the video's views decoded and resized), so
    what passes here loads there.
    """
    from preresq.data.rows import MediaError, item_images

    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "empty file"
    settings = settings or LoaderSettings.from_configs()
    probe = Record(id=path.name, paths=[path.name], mos=1.0, score=1.0, benchmark="check",
                   modality=modality)
    try:
        item_images(probe, path.parent, settings.min_pixels, settings.max_pixels, settings.video)
    except MediaError as e:
        return f"cannot be decoded: {e.__cause__ or e}"
    return None


def check_media(records: Sequence[Record], media_root: str | os.PathLike, progress: bool = False,
                workers: int = 1, settings: LoaderSettings | None = None) -> list[BadFile]:
    """Check every file of every record as the loader opens it; return all the bad ones
    (in record order)."""
    root = Path(media_root)
    jobs = [(record, p) for record in records for p in record.paths]
    settings = settings or LoaderSettings.from_configs()

    def one(job: tuple[Record, str]) -> BadFile | None:
        record, rel = job
        reason = check_file(root / rel, record.modality, settings)
        if reason is None:
            return None
        return BadFile(item=record.id, path=str(root / rel), line=record.extra.get("label_line"),
                       reason=reason)

    results: Iterable[BadFile | None]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(one, jobs)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(jobs), desc=f"checking {root}", unit="file")
        return [bad for bad in results if bad is not None]


def prepare_manifest(card: Card, output: str | os.PathLike, drop_bad: bool = False,
                     check_count: bool = True, progress: bool = False,
                     workers: int = 1, settings: LoaderSettings | None = None) -> PrepareResult:
    """Read a card's items, check their media and count, and write a manifest.

    Args:
        card: the benchmark card (``load_card``) or one built from an official file.
        output: the manifest path (JSONL); written only when everything is fine, or
            when ``drop_bad`` and the only problems were bad files.
        drop_bad: leave bad files out (and say how many) instead of failing.
        check_count: compare the number of items read with ``card.expected_count``.
        progress: show a progress bar while checking files.
        workers: threads that open files (decoding releases the GIL).
        settings: the loader's pixel bounds and video views (default: the 7B model's config
            and ``configs/video/default.yaml``).

    Raises:
        DataMissingError: the label file or the media folder is not there.
        DataCheckError: listing every bad file with its label-file line, and/or the count
        mismatch, in one message.
    """
    records = read_benchmark(card)
    require_media_root(card)  # one line, not one "missing" per item
    problems = []
    if check_count and card.expected_count is not None and len(records) != card.expected_count:
        problems.append(f"{len(records)} items read from {card.labels}, but the card expects "
                        f"{card.expected_count}")
    bad = check_media(records, card.media_root, progress=progress, workers=workers, settings=settings)
    if bad and not drop_bad:
        listing = "\n  ".join(str(b) for b in bad)
        problems.append(f"{len(bad)} of {len(records)} media files are bad (lines of "
                        f"{card.labels}):\n  {listing}")
    if problems:
        hint = "" if drop_bad or not bad else "; or pass drop_bad (--drop-bad) to leave bad files out"
        raise DataCheckError(f"{card.name}: " + "\n".join(problems)
                             + f"\nNothing was written to {output}{hint}.")
    bad_ids = {b.item for b in bad}
    kept = [r for r in records if r.id not in bad_ids]
    written = write_manifest(output, kept)
    return PrepareResult(output=Path(output), written=written, read=len(records), dropped=bad)


# --------------------------------------------------------------------------- command line


def _parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Write a checked manifest for a benchmark (by card name) or an official label file.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--benchmark", help="card name in configs/benchmark/ (e.g. koniq10k)")
    what.add_argument("--data", help="training set name in configs/data/ (e.g. kadid_6k)")
    what.add_argument("--labels", help="an official label file (needs --reader, --name, --modality)")
    parser.add_argument("--reader", help="reader name (with --labels or to override a card's)")
    parser.add_argument("--name", help="benchmark name for the records (with --labels)")
    parser.add_argument("--modality", choices=("image", "video"), help="with --labels")
    parser.add_argument("--lower-is-better", action="store_true", help="DMOS scale (with --labels)")
    parser.add_argument("--media-root", help="folder the media paths are relative to")
    parser.add_argument("--output", required=True, help="manifest to write (.jsonl)")
    parser.add_argument("--source", choices=("official", "authors"), help="which label file of the card")
    parser.add_argument("--split", help="keep one split (e.g. train, val, test)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a card field (YAML value), e.g. --set reader_args.subset=test")
    parser.add_argument("--drop-bad", action="store_true", help="leave bad files out instead of failing")
    parser.add_argument("--no-count-check", action="store_true", help="skip the expected-count check")
    parser.add_argument("--workers", type=int, default=4, help="threads that open files")
    parser.add_argument("--model", default="qwen2_5_vl_7b",
                        help="model config (configs/model) whose min/max_pixels the check resizes with")
    parser.add_argument("--video", action="append", default=[], metavar="KEY=VALUE",
                        help="video view setting (configs/video keys, YAML value), e.g. --video backend=pyav")
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    overrides: dict = {}
    for item in args.set:
        if "=" not in item:
            raise SystemExit(f"--set expects FIELD=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        if key.startswith("reader_args."):
            overrides.setdefault("reader_args", {})[key.split(".", 1)[1]] = _parse_value(value)
        else:
            overrides[key] = _parse_value(value)
    if args.media_root:
        overrides["media_root"] = args.media_root
    if args.reader:
        overrides["reader"] = args.reader
    if args.split:
        overrides["split"] = args.split
    return overrides


def card_from_args(args: argparse.Namespace) -> Card:
    """The card the command line describes (a named card with overrides, or a new one)."""
    overrides = _overrides(args)
    if args.labels:
        missing = [f"--{k}" for k in ("reader", "name", "modality", "media_root")
                   if not getattr(args, k)]
        if missing:
            raise SystemExit(f"--labels needs {', '.join(missing)}")
        overrides.pop("reader", None)
        overrides.pop("media_root", None)
        extra_args = overrides.pop("reader_args", {})
        return replace(Card(name=args.name, modality=args.modality, media_root=args.media_root,
                            labels=args.labels, reader=args.reader,
                            higher_is_better=not args.lower_is_better, reader_args=extra_args),
                       **overrides)
    if args.benchmark:
        card = load_card(args.benchmark, source=args.source)
    else:
        card = load_data_card(args.data, source=args.source)
    reader_args = {**card.reader_args, **overrides.pop("reader_args", {})}
    return replace(card, reader_args=reader_args, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scripts/prepare_data.py``; returns the exit status. When the labels
    or the media folder are not there it says so without a traceback and exits with 2."""
    from preresq.user_errors import stop_on_user_errors

    args = build_parser().parse_args(argv)
    with stop_on_user_errors():
        return _prepare(args)


def _prepare(args: argparse.Namespace) -> int:
    card = card_from_args(args)
    video = {}
    for item in args.video:
        if "=" not in item:
            raise SystemExit(f"--video expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        video[key] = _parse_value(value)
    settings = LoaderSettings.from_configs(args.model, video)
    try:
        result = prepare_manifest(card, args.output, drop_bad=args.drop_bad,
                                  check_count=not args.no_count_check, progress=True,
                                  workers=args.workers, settings=settings)
    except DataCheckError as e:
        print(f"error: {e}")
        return 1
    print(result.summary())
    for bad in result.dropped:
        print(f"  dropped {bad}")
    return 0
