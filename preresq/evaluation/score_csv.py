"""``preresq-score --csv FILE``: one row per file, appended as scored, resumed when rerun.

The CSV has the columns ``name,score,valid,error`` (pyiqa's ``name,score`` and two more):
``score`` is empty when ``valid`` is ``false`` (the answer held no score, or the file
could not be read; then ``error`` says why). Rows are appended and flushed as each batch
is scored, so an interrupted run loses at most the batch in flight; rerunning the same
command skips the names already in the CSV and scores the rest.

Next to the CSV, ``FILE.identity.json`` records what produced the rows: the weights by
content, the prompts, the parser, the decoding, the pixel budgets and how files become
pixels (the evaluation folder's identity, ``preresq.evaluation.identity``). A run whose
identity differs stops and names what changed, so rows of two models or prompts are never
mixed; a CSV without that file was not written by this command and is never touched.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from preresq.atomic_write import write_text_atomically
from preresq.evaluation.identity import differences

COLUMNS = ("name", "score", "valid", "error")


class CsvMismatchError(ValueError):
    """The CSV exists and cannot be resumed by this run (another identity, not ours)."""


def identity_file(path: str | os.PathLike) -> Path:
    """``FILE.identity.json`` beside the CSV ``FILE``."""
    path = Path(path)
    return path.with_name(path.name + ".identity.json")


def open_for_resume(path: str | os.PathLike, identity: dict) -> set[str]:
    """The names already scored in the CSV at ``path`` (none when it is new), after checking
    that it was written with ``identity``; a new CSV gets its header and identity file.

    A last line cut short (the process killed while writing it) is removed, and said so.

    Raises:
        CsvMismatchError: the CSV has no identity file, another identity, or other columns.
    """
    path = Path(path)
    identity = json.loads(json.dumps(identity))  # as it reads back from the file
    ident = identity_file(path)
    remedy = "Choose another --csv, or move that file away to start over."
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_identity(ident, identity)
        with path.open("w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerow(COLUMNS)
        return set()
    if not ident.is_file():
        raise CsvMismatchError(f"{path} exists and was not written by preresq-score (no {ident.name} "
                               f"beside it), so it is left as it is. {remedy}")
    old = json.loads(ident.read_text(encoding="utf-8"))
    changed = differences(old, identity)
    if changed:
        raise CsvMismatchError(f"{path} holds scores made with another setup; what changed:\n  "
                               + "\n  ".join(changed) + f"\n{remedy}")
    _drop_cut_line(path)
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise CsvMismatchError(f"{path}: expected the header {','.join(COLUMNS)}, found "
                               f"{','.join(rows[0]) if rows else 'an empty file'}. {remedy}")
    return {row[0] for row in rows[1:] if row}


def _write_identity(path: Path, identity: dict) -> None:
    write_text_atomically(path, json.dumps(identity, indent=2, sort_keys=True) + "\n")


def _drop_cut_line(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        print(f"{path}: removed a last line cut short ({data[keep:][:80]!r}); it is scored again",
              file=sys.stderr)
        with path.open("r+b") as f:
            f.truncate(keep)


def csv_row(name: str, result: dict) -> list[str]:
    """The CSV row of one ``ItemScore.to_dict()``."""
    valid = bool(result.get("valid")) and result.get("score") is not None
    score = "" if not valid else repr(round(float(result["score"]), 6))
    error = " ".join(str(result.get("error") or "").split())  # one line
    return [name, score, "true" if valid else "false", error]


class CsvAppender:
    """Appends rows to the CSV and flushes them, so they survive an interruption."""

    def __init__(self, path: str | os.PathLike) -> None:
        self._file = Path(path).open("a", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file)

    def append(self, rows: Iterable[list[str]]) -> None:
        self._writer.writerows(rows)
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CsvAppender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
