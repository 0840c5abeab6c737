"""Rows out of label files (CSV, XLSX, MATLAB), with the file and line in every error.

The small shared toolkit of ``preresq.data.readers``: each function reads one kind of
table and reports problems as ``<file>:<line>: ...`` (or ``<file>: row N`` for sheets).
"""

from __future__ import annotations

import csv
import errno
import math
import re
from pathlib import Path


def need_file(path: str | Path) -> Path:
    """The path of a label file that must exist (``FileNotFoundError.filename`` names it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "label file not found", str(path))
    return path


# A plain decimal number, as every release writes its scores: no thousands separators,
# decimal commas, units, underscores (float() takes "3_9" as 39) or words like "nan".
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")


def to_float(value: object, where: str) -> float:
    """A finite score read from a cell; ``where`` (file and line) names the culprit.

    Text must be a plain decimal number (``3.9``, ``-1``, ``4e-1``; spaces around allowed);
    numbers from spreadsheets and .mat files are taken as they are. Anything else (a
    decimal comma ``3,9``, a unit ``3.9%``, ``NaN``, an empty cell, ``True``) stops here.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER.fullmatch(text):
            if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                raise ValueError(f"{where}: score is not finite ({value!r})")
            hint = " (a decimal comma? write 3.9, not 3,9)" if _DECIMAL_COMMA.fullmatch(text) else ""
            raise ValueError(f"{where}: expected a number, got {value!r}{hint}")
        value = text
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: score is not finite ({value!r})")
    return number


def is_number(token: str) -> bool:
    """Whether a label-list field is a number (tells ``name score`` from ``ref dist``)."""
    return bool(_NUMBER.fullmatch(token.strip()))


def csv_rows(path: Path, required: dict[str, str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV with a header, keyed by canonical column names.

    ``required`` maps our key to the column's name in the file; header matching ignores
    case and surrounding spaces/quotes, because releases differ in both.
    """
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: empty file") from None
        index = {h.strip().strip('"').lower(): i for i, h in enumerate(header)}
        cols = {}
        for key, name in required.items():
            if name.lower() not in index:
                hint = ("; semicolon-separated (a decimal-comma locale's export)? save it "
                        "comma-separated with decimal points") if ";" in ",".join(header) else ""
                raise ValueError(f"{path}:1: no column {name!r} in header {header}{hint}")
            cols[key] = index[name.lower()]
        rows = []
        for lineno, row in enumerate(reader, start=2):
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(cols.values()):
                raise ValueError(f"{path}:{lineno}: expected at least {max(cols.values()) + 1} "
                                 f"fields, got {len(row)}")
            rows.append((lineno, {key: row[i].strip() for key, i in cols.items()}))
    return rows


def xlsx_rows(path: Path, sheet: str | None,
              skip_blank: bool = True) -> tuple[list[str], list[tuple[int, tuple]]]:
    """Header and data rows of one sheet of a spreadsheet (row numbers as Excel shows them)."""
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    try:
        if sheet is None:
            ws = book.worksheets[0]
        elif sheet in book.sheetnames:
            ws = book[sheet]
        else:
            raise ValueError(f"{path}: no sheet {sheet!r}; sheets: {book.sheetnames}")
        rows = list(ws.iter_rows(values_only=True))
    finally:
        book.close()
    if not rows:
        raise ValueError(f"{path}: sheet is empty")
    header = ["" if h is None else str(h).strip() for h in rows[0]]
    data = [(i, row) for i, row in enumerate(rows[1:], start=2)
            if not skip_blank or any(cell is not None and str(cell).strip() for cell in row)]
    return header, data


def column(header: list[str], name: str, path: Path) -> int:
    """Index of a sheet column by its header (case-insensitive)."""
    lowered = [h.lower() for h in header]
    if name.lower() not in lowered:
        raise ValueError(f"{path}:1: no column {name!r} in header {header}")
    return lowered.index(name.lower())


def mat_vector(path: Path, key: str):
    """A MATLAB variable of a .mat file, flattened to one dimension."""
    from scipy.io import loadmat

    data = loadmat(path)
    if key not in data:
        found = sorted(k for k in data if not k.startswith("__"))
        raise ValueError(f"{path}: no variable {key!r}; variables: {found}")
    return data[key].reshape(-1)


def mat_string(cell, where: str) -> str:
    """A MATLAB cell entry holding one string (loadmat gives nested arrays)."""
    value = cell
    while hasattr(value, "shape") and getattr(value, "size", 0) == 1 and value.dtype == object:
        value = value.reshape(-1)[0]
    if hasattr(value, "reshape") and value.size == 1:
        value = value.reshape(-1)[0]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: expected a file name, got {cell!r}")
    return value


def check_same_length(path: Path, names: int, scores: int) -> None:
    """Names and scores kept in separate arrays must pair up one to one."""
    if names != scores:
        raise ValueError(f"{path}: {names} names but {scores} scores")
