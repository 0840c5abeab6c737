"""The one record type for a dataset item, its JSONL manifest, and the row a label file gives.

``LabelRow`` (one item as a reader reads it) lives here, beside ``Record``, so that every
data source (the readers of ``preresq.data.readers`` and the demo sets alike) imports it
from here and imports run one way: records <- readers <- benchmarks.

A manifest is one JSON object per line with exactly the field names of ``Record``. It is
written to a temporary file and renamed into place, so a manifest on disk is always whole;
reading checks every line and names the file and line number of the first bad one.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

MODALITIES = ("image", "video")


@dataclass
class Record:
    """One rated item of a benchmark or training set.

    Attributes:
        id: unique within its benchmark (usually the relative path of the media file).
        paths: media path(s) relative to the benchmark's media root.
        mos: the raw score exactly as in the label file (MOS or DMOS, its own scale).
        score: the score rescaled to [1, 5], higher is better (flipped for DMOS sets).
        benchmark: the benchmark (or training set) name.
        modality: ``"image"`` or ``"video"``.
        split: ``"train"``, ``"val"``, ``"test"`` or None when the set is not split.
        std: standard deviation of the ratings (label file's scale), if known.
        ref: name of the reference (pristine) item for synthetic-distortion sets.
    """

    id: str
    paths: list[str]
    mos: float
    score: float
    benchmark: str
    modality: str = "image"
    split: str | None = None
    std: float | None = None
    ref: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.paths, str):
            self.paths = [self.paths]
        if not self.paths:
            raise ValueError(f"record {self.id!r} has no media paths")
        if self.modality not in MODALITIES:
            raise ValueError(f"record {self.id!r}: modality {self.modality!r} not in {MODALITIES}")
        if not 1.0 - 1e-6 <= self.score <= 5.0 + 1e-6:
            raise ValueError(f"record {self.id!r}: score {self.score} outside [1, 5]")

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass
class LabelRow:
    """One item as read from a label file, before rescaling.

    Attributes:
        name: media path relative to the benchmark's media root (also the item's id).
        mos: the raw score exactly as in the file (MOS, DMOS or Elo, its own scale).
        line: where the item came from (line number or spreadsheet row), for messages.
        std: standard deviation of the ratings, if the format has it.
        ref: name of the reference (pristine) image, for synthetic-distortion sets.
        id: the item's id when it differs from ``name`` (repeated items of a balanced set).
        split: the split the label file itself assigns, if any (the demo set's manifests).
        extra: anything else worth keeping (e.g. the demo's distortion kind and level).
    """

    name: str
    mos: float
    line: int
    std: float | None = None
    ref: str | None = None
    id: str | None = None
    split: str | None = None
    extra: dict = field(default_factory=dict)


_FIELDS = {f.name for f in fields(Record)}
_REQUIRED = {"id", "paths", "mos", "score", "benchmark"}


def normalise_path(name: str, where: str) -> str:
    """One spelling for a media path relative to the media root, so that ``a.png``,
    ``./a.png`` and ``a//b/../a.png`` are one item: backslashes (lists made on Windows)
    become ``/``, then ``posixpath.normpath``. Case is kept (file systems differ in it, and
    TID2013 names differ only in case). A path that leaves the media root is refused.

    >>> normalise_path(".\\Video//A001.mp4", "list:1")
    'Video/A001.mp4'
    """
    text = name.strip().replace("\\", "/")
    norm = posixpath.normpath(text) if text else ""
    if norm in ("", ".") or norm.startswith("/") or norm == ".." or norm.startswith("../"):
        raise ValueError(f"{where}: media path {name!r} is empty or leaves the media root")
    return norm


def rescale(values: Iterable[float], higher_is_better: bool = True,
            lo: float | None = None, hi: float | None = None) -> list[float]:
    """Min-max rescale to [1, 5] over the whole set (as the paper's labels are made).

    ``lo``/``hi`` default to the set's own min and max. Lower-is-better scales (DMOS) are
    flipped so that 5 is always the best quality.
    """
    values = [float(v) for v in values]
    lo = min(values) if lo is None else lo
    hi = max(values) if hi is None else hi
    if hi <= lo:
        raise ValueError(f"cannot rescale: all scores equal ({lo})")
    unit = [(v - lo) / (hi - lo) for v in values]
    if not higher_is_better:
        unit = [1.0 - u for u in unit]
    return [1.0 + 4.0 * u for u in unit]


def write_manifest(path: str | os.PathLike, records: Iterable[Record]) -> int:
    """Write records atomically as JSONL; return how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for record in records:
                f.write(record.to_json() + "\n")
                count += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def read_manifest(path: str | os.PathLike) -> list[Record]:
    """Read a JSONL manifest; a malformed line raises an error naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    records = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if not line.endswith("\n"):
                raise ValueError(f"{path}:{lineno}: truncated last line (manifest not written whole)")
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object")
            missing = _REQUIRED - obj.keys()
            unknown = obj.keys() - _FIELDS
            if missing or unknown:
                raise ValueError(f"{path}:{lineno}: missing fields {sorted(missing)}, "
                                 f"unknown fields {sorted(unknown)}")
            try:
                records.append(Record(**obj))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}:{lineno}: {e}") from None
    return records
