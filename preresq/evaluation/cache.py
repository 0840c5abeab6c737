"""The predictions of one benchmark on disk, appended as they are made, merged at the end.

Each process appends rows to ``predictions/partial/<benchmark>.rank<r>.jsonl`` and flushes
after every row, so an interrupted run loses at most the batch in flight. The next run
reads the merged file and every partial file and skips the ids found there. When all
processes are done, one of them merges everything into ``predictions/<benchmark>.jsonl``
in the benchmark's item order (so 1 or N processes, resumed or not, give the same file).
Rows are never dropped: a run asked for fewer items (``limit``) keeps every row on disk.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path


def _read_jsonl(path: Path) -> Iterator[dict]:
    """Rows of a predictions file; an unfinished last line (interrupted write) is skipped."""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.endswith("\n"):
                warnings.warn(f"{path}:{lineno}: unfinished last line (interrupted run); "
                              "that item is predicted again", RuntimeWarning, stacklevel=2)
                return
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg}); delete the line "
                                 "or the file to predict those items again") from None
            if not isinstance(row, dict) or "id" not in row:
                raise ValueError(f"{path}:{lineno}: expected a JSON object with an 'id'")
            yield row


def _cut_unfinished_line(path: Path) -> None:
    """Drop a partial last line so that appending starts on a fresh line."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


class PredictionCache:
    """The predictions of one benchmark on disk: merged file plus per-rank partial files.

    ``predictions/<name>.jsonl`` is the merged result (one line per item, item order);
    ``predictions/partial/<name>.rank<r>.jsonl`` collect lines as they are made. A row with
    an ``error`` (media could not be read) does not count as done: the next run tries it
    again. When an id appears more than once, the newest row wins.
    """

    def __init__(self, folder: str | os.PathLike, name: str, rank: int = 0) -> None:
        self.path = Path(folder) / f"{name}.jsonl"
        self.partial_dir = Path(folder) / "partial"
        self.name = name
        self.rank = rank
        self._file = None

    def _sources(self) -> list[Path]:
        parts = sorted(self.partial_dir.glob(f"{self.name}.rank*.jsonl"))
        return [p for p in [self.path, *parts] if p.is_file()]

    def rows(self) -> dict[str, dict]:
        """The newest row per id over the merged and partial files."""
        latest: dict[str, dict] = {}
        for path in self._sources():
            for row in _read_jsonl(path):
                latest[row["id"]] = row
        return latest

    def done_ids(self) -> set[str]:
        """Ids already predicted (rows without an ``error``)."""
        return {i for i, row in self.rows().items() if "error" not in row}

    @property
    def partial_path(self) -> Path:
        return self.partial_dir / f"{self.name}.rank{self.rank}.jsonl"

    def append(self, row: dict) -> None:
        """Write one row now (flushed), so that a crash loses nothing already predicted."""
        if self._file is None:
            self.partial_dir.mkdir(parents=True, exist_ok=True)
            _cut_unfinished_line(self.partial_path)
            self._file = self.partial_path.open("a", encoding="utf-8")
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def merge(self, order: Sequence[str]) -> list[dict]:
        """Write the merged file: the rows of ``order``'s ids in that order, then any other
        row found on disk (nothing is dropped); remove the partial files; return the rows.
        Call on one process only, after the others have finished appending."""
        self.close()
        latest = self.rows()
        known = set(order)
        rows = [latest[i] for i in order if i in latest]
        rows += [row for i, row in latest.items() if i not in known]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        for part in self.partial_dir.glob(f"{self.name}.rank*.jsonl"):
            part.unlink()
        if self.partial_dir.is_dir() and not any(self.partial_dir.iterdir()):
            self.partial_dir.rmdir()
        return rows
