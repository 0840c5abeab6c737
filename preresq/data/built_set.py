"""A generated data set kept in a cache folder: the demo images and the demo clips.

Both demo sets are made on first use from a frozen dataclass of parameters, into
``<root>/<name>-<hash of the parameters>/`` with one manifest per split and ``info.json``.
What they share lives here: reading the parameters from a config mapping (unknown keys are
an error), the folder's hash, the build in a temporary folder renamed into place (a
half-built set is never used, and two processes building the same set at once both end with
the same folder), and the label rows a benchmark card reads from such a folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import ClassVar

from preresq.data.records import LabelRow, Record, read_manifest

SPLITS = ("train", "val", "test")


class SetParams:
    """Mixin for a frozen dataclass of set parameters with an ``extra`` field (unknown keys).

    ``build_version`` is bumped when the build code changes what it writes, so the hash,
    and with it the folder, changes too.
    """

    build_version: ClassVar[int]

    @classmethod
    def from_mapping(cls, values: Mapping | None):
        """Build from a config mapping; unknown keys are an error, not ignored."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)} - {"extra"}
        extra = {k: values.pop(k) for k in list(values) if k not in known}
        return cls(**values, extra=extra)

    def params(self) -> dict:
        params = asdict(self)
        params.pop("extra")
        return params

    def digest(self) -> str:
        blob = json.dumps({**self.params(), "build_version": self.build_version},
                          sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def folder(self, root: str | os.PathLike) -> Path:
        """Where the set with these parameters lives: ``<root>/<name>-<hash>``."""
        return Path(root) / f"{self.name}-{self.digest()}"


def build_once(target: Path, build: Callable[[Path], dict], params: dict,
               force: bool = False) -> Path:
    """Make ``target`` with ``build(tmp) -> info`` unless its ``info.json`` exists; return it.

    ``info.json`` holds ``{"params": params, **info}`` and is written last, in a temporary
    folder that is then renamed into place.
    """
    if (target / "info.json").is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        info = build(tmp)
        (tmp / "info.json").write_text(json.dumps({"params": params, **info}, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process finished the same build first; its result is identical.
            if not (target / "info.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def check_split(split: str, what: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"{what} split must be one of {SPLITS}, got {split!r}")


def split_records(folder: Path, split: str) -> list[Record]:
    """The records of one split of a built set (paths relative to ``folder``)."""
    return read_manifest(folder / f"{split}.jsonl")


def label_rows(root: Path, folder: Path) -> list[LabelRow]:
    """Label rows of every split of the set in ``folder``, named relative to ``root``.

    For a benchmark card reading the set (``splitter: labels``): each row carries its split
    and the manifest it came from.
    """
    prefix = folder.relative_to(root).as_posix()
    rows = []
    for split in SPLITS:
        for lineno, record in enumerate(read_manifest(folder / f"{split}.jsonl"), start=1):
            rows.append(LabelRow(name=f"{prefix}/{record.paths[0]}", mos=record.mos, line=lineno,
                                 ref=f"{prefix}/{record.ref}" if record.ref else None,
                                 id=f"{prefix}/{record.id}", split=split,
                                 extra={**record.extra, "label_file": f"{split}.jsonl"}))
    return rows
