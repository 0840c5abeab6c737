"""Benchmark cards: where a benchmark's labels and media live and how to read them.

One YAML file per benchmark in ``configs/benchmark/`` (as pyiqa does), one generic reader
path for all of them. A card's top-level fields describe the official release; an optional
``authors:`` block overrides them for the label lists the paper's authors released (already
rescaled to [1, 5]). ``source: official | authors`` in the card, or ``load_card(...,
source=...)``, chooses between the two. ``${paths.*}`` in a card resolves against
``configs/paths`` (``preresq.config.load_paths``), overridable per call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from preresq.config import load_paths
from preresq.data.missing import DataMissingError, Missing
from preresq.data.readers import get_reader
from preresq.data.records import (
    MODALITIES,
    LabelRow,
    Record,
    normalise_path,
    read_manifest,
    rescale,
)
from preresq.paths import CONFIG_DIR

BENCHMARK_DIR = CONFIG_DIR / "benchmark"
SUITE_DIR = CONFIG_DIR / "suite"
DATA_DIR = CONFIG_DIR / "data"
SOURCES = ("official", "authors")
SPLITTERS = (None, "kadid_reference", "labels")


@dataclass(frozen=True)
class Card:
    """Everything needed to turn one benchmark's label file into records.

    Attributes:
        name: the benchmark's name (also ``Record.benchmark``).
        modality: ``"image"`` or ``"video"``.
        media_root: folder that record paths are relative to.
        labels: the label file (or folder, for PIPAL) the reader reads.
        reader: name of a reader in ``preresq.data.readers.READERS``.
        higher_is_better: False for DMOS scales (rescaling flips them).
        expected_count: number of items in the benchmark (after the split), or None.
        score_range: ``(lo, hi)`` mapped to [1, 5]; None means the min and max of the
            whole label file (before any split), as the paper's labels were made.
        reader_args: keyword arguments for the reader.
        split: keep only this split (``"test"`` for KADID-10k's test part), or None.
        splitter: how splits are assigned: ``"kadid_reference"`` (by reference image, see
            ``preresq.data.kadid``), ``"labels"`` (the reader's own, e.g. the demo set)
            or None.
        val_split: for a training set, the split used to choose checkpoints.
        manifest: a manifest made by ``scripts/prepare_data.py`` to read instead of the
            label file (checked media, fixed scores), or None.
        source: ``"official"`` or ``"authors"``: which block of the card this is.
        description: one line for reports.
        max_image_pixels: the largest image's width x height, when the set states it: the
            memory plan (``preresq.training.memory_plan``) counts visual tokens from it
            instead of the model's pixel budget. Nothing else reads it.
    """

    name: str
    modality: str
    media_root: str
    labels: str
    reader: str
    higher_is_better: bool = True
    expected_count: int | None = None
    score_range: tuple[float, float] | None = None
    reader_args: dict = field(default_factory=dict)
    split: str | None = None
    splitter: str | None = None
    val_split: str | None = None
    manifest: str | None = None
    source: str = "official"
    description: str = ""
    max_image_pixels: int | None = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"card {self.name!r}: modality {self.modality!r} not in {MODALITIES}")
        if self.source not in SOURCES:
            raise ValueError(f"card {self.name!r}: source {self.source!r} not in {SOURCES}")
        if self.score_range is not None:
            lo, hi = (float(v) for v in self.score_range)
            if hi <= lo:
                raise ValueError(f"card {self.name!r}: score_range {self.score_range} is empty")
            object.__setattr__(self, "score_range", (lo, hi))
        if self.split is not None and self.splitter is None and self.manifest is None:
            raise ValueError(f"card {self.name!r}: split {self.split!r} needs a splitter")
        if self.splitter not in SPLITTERS:
            raise ValueError(f"card {self.name!r}: splitter {self.splitter!r} not in {SPLITTERS}")


_CARD_FIELDS = {f.name for f in fields(Card)}


def _paths_config(paths: Mapping | DictConfig | None) -> DictConfig:
    """The paths group: the defaults of ``configs/paths`` with ``paths`` laid over them."""
    if paths is None:
        return load_paths()
    if isinstance(paths, DictConfig):
        paths = OmegaConf.to_container(paths, resolve=True)
    return load_paths(overrides=dict(paths))


def card_from_config(cfg: Mapping | DictConfig, source: str | None = None,
                     overrides: Mapping | None = None) -> Card:
    """A ``Card`` from an already-resolved card config (e.g. a Hydra ``benchmark`` node).

    ``source`` (default: the card's own ``source``, else ``"official"``) picks the
    ``authors`` block's overrides or none; ``overrides`` replaces fields last.
    """
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    cfg = dict(cfg)
    name = cfg.get("name", "<unnamed>")
    source = source or cfg.get("source") or "official"
    if source not in SOURCES:
        raise ValueError(f"card {name!r}: source {source!r} not in {SOURCES}")
    authors = cfg.pop("authors", None)
    if source == "authors":
        if not authors:
            raise ValueError(f"card {name!r} has no `authors:` block (no authors' label list)")
        cfg.update(authors)
    cfg["source"] = source
    cfg.update(overrides or {})
    unknown = cfg.keys() - _CARD_FIELDS
    if unknown:
        raise ValueError(f"card {name!r}: unknown fields {sorted(unknown)}; known: {sorted(_CARD_FIELDS)}")
    missing = {"name", "modality", "media_root", "labels", "reader"} - cfg.keys()
    if missing:
        raise ValueError(f"card {name!r}: missing fields {sorted(missing)}")
    if cfg.get("score_range") is not None:
        cfg["score_range"] = tuple(cfg["score_range"])
    cfg["reader_args"] = dict(cfg.get("reader_args") or {})
    return Card(**cfg)


def _load_card_file(path: Path, paths, source, overrides) -> Card:
    raw = OmegaConf.load(path)
    cfg = OmegaConf.merge({"paths": _paths_config(paths)}, raw)
    OmegaConf.resolve(cfg)
    cfg = OmegaConf.to_container(cfg)
    cfg.pop("paths")
    try:
        return card_from_config(cfg, source=source, overrides=overrides)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None


def load_card(name: str, paths: Mapping | DictConfig | None = None, source: str | None = None,
              overrides: Mapping | None = None) -> Card:
    """Read ``configs/benchmark/<name>.yaml`` with ``${paths.*}`` resolved.

    Args:
        name: the card's file stem, e.g. ``"koniq10k"``.
        paths: values laid over ``configs/paths/default.yaml`` (e.g. ``{"data_root": ...}``
            or a composed ``cfg.paths``); None uses the defaults.
        source: ``"official"`` or ``"authors"``; None keeps the card's ``source``.
        overrides: card fields to replace after the source is chosen (e.g. ``labels``).
    """
    path = BENCHMARK_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in BENCHMARK_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no benchmark card {path}; known: {known}")
    card = _load_card_file(path, paths, source, overrides)
    if card.name != name:
        raise ValueError(f"{path}: name is {card.name!r}, expected {name!r}")
    return card


def load_data_card(name: str, paths: Mapping | DictConfig | None = None,
                   source: str | None = None, split: str | None = None,
                   overrides: Mapping | None = None) -> Card:
    """Read a training set's card, ``configs/data/<name>.yaml`` (e.g. ``kadid_6k``, ``demo``).

    ``split`` replaces the card's ``split`` (e.g. its ``val_split`` for checkpoint choice).
    """
    path = DATA_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in DATA_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no data config {path}; known: {known}")
    overrides = dict(overrides or {})
    if split is not None:
        overrides["split"] = split
    return _load_card_file(path, paths, source, overrides)


def suite_names(name: str) -> list[str]:
    """Benchmark names listed in ``configs/suite/<name>.yaml``."""
    path = SUITE_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no suite {path}; known: {known}")
    names = OmegaConf.load(path).get("benchmarks")
    if not names:
        raise ValueError(f"{path}: expected a non-empty `benchmarks:` list")
    return [str(n) for n in names]


def load_suite(name_or_list: str | Sequence[str], paths: Mapping | DictConfig | None = None,
               source: str | None = None) -> list[Card]:
    """The cards of a suite (``"iqa10"``, ``"vqa5"``, ``"iqa_demo"``) or of a list of names."""
    names = suite_names(name_or_list) if isinstance(name_or_list, str) else list(name_or_list)
    return [load_card(n, paths=paths, source=source) for n in names]


def _scores(card: Card, rows: list[LabelRow]) -> list[float]:
    lo, hi = card.score_range if card.score_range is not None else (None, None)
    scores = rescale([r.mos for r in rows], card.higher_is_better, lo, hi)
    for row, score in zip(rows, scores, strict=True):
        if not 1.0 - 1e-6 <= score <= 5.0 + 1e-6:
            raise ValueError(f"{_where(card, row)}: score {row.mos} is outside the card's "
                             f"score_range {card.score_range} ({card.name})")
    return [min(5.0, max(1.0, s)) for s in scores]


def _splits(card: Card, rows: list[LabelRow]) -> list[str | None]:
    if card.splitter == "kadid_reference":
        from preresq.data.kadid import split_by_reference

        return split_by_reference(rows)
    if card.splitter == "labels":
        return [r.split for r in rows]
    return [r.split for r in rows] if any(r.split for r in rows) else [None] * len(rows)


def _where(card: Card, row: LabelRow) -> str:
    """``file:line`` of a row (PIPAL's folder of files names the file itself)."""
    if "label_file" in row.extra and "label_line" in row.extra:
        return f"{Path(card.labels) / row.extra['label_file']}:{row.extra['label_line']}"
    return f"{card.labels}:{row.line}"


def _normalised(card: Card, rows: list[LabelRow]) -> list[LabelRow]:
    """Rows with one spelling per media path (``records.normalise_path``)."""
    for row in rows:
        where = _where(card, row)
        row.name = normalise_path(row.name, where)
        row.id = normalise_path(row.id, where) if row.id else None
        row.ref = normalise_path(row.ref, where) if row.ref else None
    return rows


def _check_unique(card: Card, rows: list[LabelRow]) -> None:
    """An item named twice (in any spelling) is an error naming both lines."""
    lines: dict[str, list[str]] = {}
    for row in rows:
        lines.setdefault(row.id or row.name, []).append(_where(card, row))
    repeated = {name: where for name, where in lines.items() if len(where) > 1}
    if repeated:
        shown = "; ".join(f"{name} at {', '.join(where)}" for name, where in list(repeated.items())[:5])
        raise ValueError(f"{card.labels}: {len(repeated)} items appear more than once ({card.name}): "
                         f"{shown}")


def _read_manifest(card: Card) -> list[Record]:
    if not Path(card.manifest).is_file():
        raise DataMissingError([Missing(card.name, "manifest", str(card.manifest))])
    records = read_manifest(card.manifest)
    if card.split is not None:
        records = [r for r in records if r.split == card.split]
    return records


def read_benchmark(card: Card) -> list[Record]:
    """Read a card's items as records: rescaled over the whole label file, then split.

    With ``card.manifest`` set, the manifest is read instead (and filtered by split).
    Raises ``DataMissingError`` when a label file (or the manifest) is not there, and
    ``ValueError`` if the file repeats an item; the expected count is checked by
    ``preresq.data.prepare`` (where a mismatch can be reported with the media check).
    Media files are not opened (``require_media_root`` checks their folder).
    """
    if card.manifest:
        return _read_manifest(card)
    try:
        rows = get_reader(card.reader)(card.labels, **card.reader_args)
    except DataMissingError:
        raise
    except FileNotFoundError as e:  # the readers name the file they looked for (filename)
        raise DataMissingError([Missing(card.name, "labels", str(e.filename or card.labels))]) from None
    rows = _normalised(card, rows)
    _check_unique(card, rows)
    scores = _scores(card, rows)
    splits = _splits(card, rows)
    records = []
    for row, score, split in zip(rows, scores, splits, strict=True):
        if card.split is not None and split != card.split:
            continue
        extra = dict(row.extra)
        extra["label_line"] = extra.get("label_line", row.line)
        records.append(Record(id=row.id or row.name, paths=[row.name], mos=row.mos, score=score,
                              benchmark=card.name, modality=card.modality, split=split,
                              std=row.std, ref=row.ref, extra=extra))
    return records



def require_media_root(card: Card) -> None:
    """Stop (``DataMissingError``) when the card's media folder is not there: before a
    model is loaded, rather than one missing file per item later."""
    if not Path(card.media_root).is_dir():
        raise DataMissingError([Missing(card.name, "media_root", str(card.media_root))])
