"""Turn a benchmark card (or an official label file) into a checked manifest.

Every media file is opened (images fully decoded, videos opened and their first frame
decoded), all bad files are reported together with their label-file lines, and the item
count is compared with the card. Nothing is written when anything is wrong, unless the
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

from preresq.data.benchmarks import Card, load_card, load_data_card, read_benchmark
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


def _check_image(path: Path) -> str | None:
    from PIL import Image, ImageFile

    # A truncated file must fail here, never be padded with grey.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        return f"cannot be decoded: {e}"
    return None


def _check_video(path: Path) -> str | None:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "has no video stream"
            for _ in container.decode(video=0):
                return None
    except (av.error.FFmpegError, OSError, ValueError) as e:
        return f"cannot be decoded: {e}"
    return "has no decodable frame"


def check_file(path: Path, modality: str) -> str | None:
    """Why the media file at ``path`` is unusable, or None when it is fine."""
    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "empty file"
    return _check_image(path) if modality == "image" else _check_video(path)


def check_media(records: Sequence[Record], media_root: str | os.PathLike, progress: bool = False,
                workers: int = 1) -> list[BadFile]:
    """Check every file of every record; return all the bad ones (in record order)."""
    root = Path(media_root)
    jobs = [(record, p) for record in records for p in record.paths]

    def one(job: tuple[Record, str]) -> BadFile | None:
        record, rel = job
        reason = check_file(root / rel, record.modality)
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
                     workers: int = 1) -> PrepareResult:
    """Read a card's items, check their media and count, and write a manifest.

    Args:
        card: the benchmark card (``load_card``) or one built from an official file.
        output: the manifest path (JSONL); written only when everything is fine, or
            when ``drop_bad`` and the only problems were bad files.
        drop_bad: leave bad files out (and say how many) instead of failing.
        check_count: compare the number of items read with ``card.expected_count``.
        progress: show a progress bar while checking files.
        workers: threads that open files (decoding releases the GIL).

    Raises:
        DataCheckError: listing every bad file with its label-file line, and/or the count
        mismatch, in one message.
    """
    records = read_benchmark(card)
    problems = []
    if check_count and card.expected_count is not None and len(records) != card.expected_count:
        problems.append(f"{len(records)} items read from {card.labels}, but the card expects "
                        f"{card.expected_count}")
    bad = check_media(records, card.media_root, progress=progress, workers=workers)
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
    """Entry point of ``scripts/prepare_data.py``; returns the exit status."""
    args = build_parser().parse_args(argv)
    card = card_from_args(args)
    try:
        result = prepare_manifest(card, args.output, drop_bad=args.drop_bad,
                                  check_count=not args.no_count_check, progress=True,
                                  workers=args.workers)
    except DataCheckError as e:
        print(f"error: {e}")
        return 1
    print(result.summary())
    for bad in result.dropped:
        print(f"  dropped {bad}")
    return 0
