"""Readers of label files: the authors' label lists and the official release formats.

Every reader takes the label file's path (plus options from the benchmark card's
``reader_args``) and returns ``LabelRow``s: the media path relative to the benchmark's media
root, the raw score exactly as in the file, and the std / reference name where the format
has them. Readers never rescale; ``preresq.data.benchmarks.read_benchmark`` does that over
the whole set. Readers are chosen by name from ``READERS`` (the card's ``reader`` field).

Errors name the file and, where the format has lines, the line number.
"""

from __future__ import annotations

import errno
import math
import re
from collections.abc import Callable
from pathlib import Path

from preresq.data.records import LabelRow
from preresq.data.tables import (
    check_same_length,
    column,
    csv_rows,
    is_number,
    mat_string,
    mat_vector,
    need_file,
    to_float,
    xlsx_rows,
)

Reader = Callable[..., list[LabelRow]]
READERS: dict[str, Reader] = {}


def register_reader(name: str) -> Callable[[Reader], Reader]:
    """Add a reader to ``READERS`` under ``name`` (the value of a card's ``reader`` field)."""

    def add(fn: Reader) -> Reader:
        if name in READERS:
            raise ValueError(f"reader {name!r} registered twice")
        READERS[name] = fn
        return fn

    return add


def get_reader(name: str) -> Reader:
    """The reader registered as ``name``; an unknown name lists the known ones."""
    if name not in READERS:
        raise KeyError(f"unknown label reader {name!r}; known: {sorted(READERS)}")
    return READERS[name]


# --------------------------------------------------------------------------- label lists


def _label_fields(text: str, where: str) -> tuple[str, list[str]]:
    """A label-list line's separator (``"comma"`` or ``"space"``) and its fields.

    A line with a comma is comma-separated (spaces around a comma are fine); a field that
    still holds a space means the line mixes both, which is how a decimal comma
    (``a.png 3,9``) looks, so it is refused rather than read as ``3`` and ``9``.
    """
    if "," not in text:
        return "space", text.split()
    fields = [f.strip() for f in text.split(",")]
    if any(not f for f in fields):
        raise ValueError(f"{where}: empty field in {text!r}")
    if any(re.search(r"\s", f) for f in fields):
        raise ValueError(f"{where}: {text!r} mixes spaces and commas; a decimal comma? "
                         "write 3.9, not 3,9 (fields are separated by commas or by spaces)")
    return "comma", fields


@register_reader("label_list")
def read_label_list(path: str | Path, layout: str = "auto") -> list[LabelRow]:
    """The authors' label lists: ``name score [std]`` or ``ref dist score [std]`` per line.

    Accepted variants: fields separated by whitespace (spaces or tabs) or by commas (with
    optional spaces), one separator for the whole file; a UTF-8 BOM; CRLF or LF line ends;
    blank lines; one header line (a first line without any number, e.g. ``name,mos``),
    skipped. Every line has as many fields as the first (std on all lines or none). Scores are plain decimal numbers (``tables.to_float``): a decimal comma, a
    unit, ``NaN`` or a missing score stops with the line named. Names cannot hold spaces
    or commas. ``layout`` is ``"name_score"``, ``"ref_dist_score"`` or ``"auto"``: decided
    by the first data line (a number in the second field means ``name score``); every
    other line must agree.
    """
    if layout not in ("auto", "name_score", "ref_dist_score"):
        raise ValueError(f"layout must be auto, name_score or ref_dist_score, got {layout!r}")
    path = need_file(path)
    rows = []
    separator, width = None, 0
    with path.open(encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            where = f"{path}:{lineno}"
            sep, tokens = _label_fields(text, where)
            if separator is None and not rows and not any(is_number(t) for t in tokens):
                continue  # a header line: no score in it
            separator = separator or sep
            if sep != separator:
                raise ValueError(f"{where}: fields separated by {sep}s, but the file uses {separator}s "
                                 f"({text!r}; a decimal comma? write 3.9, not 3,9)")
            if len(tokens) < 2:
                raise ValueError(f"{where}: expected `name score [std]` or `ref dist score [std]`, "
                                 f"got {text!r}")
            this = "name_score" if is_number(tokens[1]) else "ref_dist_score"
            if layout == "name_score" and this != layout and len(tokens) == 2:
                to_float(tokens[1], where)  # a bad score, not another layout: say why it is bad
            if layout == "auto":
                layout = this
            if this != layout:
                raise ValueError(f"{where}: line has layout {this}, the file has {layout}")
            if layout == "name_score":
                ref, name, rest = None, tokens[0], tokens[1:]
            else:
                if len(tokens) < 3:
                    raise ValueError(f"{where}: expected `ref dist score [std]`, got {text!r}")
                ref, name, rest = tokens[0], tokens[1], tokens[2:]
            if len(rest) > 2:
                raise ValueError(f"{where}: too many fields ({len(tokens)}) in {text!r}")
            # A std on some lines only is how `a.png,3,9` (a decimal comma in a comma-separated
            # file) looks: one field count for the whole file.
            width = width or len(tokens)
            if len(tokens) != width:
                raise ValueError(f"{where}: {len(tokens)} fields in {text!r}, but the file's lines "
                                 f"have {width} (a decimal comma? write 3.9, not 3,9)")
            std = to_float(rest[1], where) if len(rest) == 2 else None
            rows.append(LabelRow(name=name, mos=to_float(rest[0], where), line=lineno, std=std, ref=ref))
    if not rows:
        raise ValueError(f"{path}: no items")
    return rows


# --------------------------------------------------------------------------- IQA releases


@register_reader("koniq_csv")
def read_koniq_csv(path: str | Path) -> list[LabelRow]:
    """KonIQ-10k ``koniq10k_scores_and_distributions.csv`` (``image_name``, ``MOS``, ``SD``; 1-5)."""
    path = need_file(path)
    return [LabelRow(name=r["name"], mos=to_float(r["mos"], f"{path}:{n}"), line=n,
                     std=to_float(r["std"], f"{path}:{n}"))
            for n, r in csv_rows(path, {"name": "image_name", "mos": "MOS", "std": "SD"})]


@register_reader("kadid_csv")
def read_kadid_csv(path: str | Path) -> list[LabelRow]:
    """KADID-10k ``dmos.csv`` (``dist_img, ref_img, dmos, var``; 1-5, higher is better)."""
    path = need_file(path)
    rows = []
    for n, r in csv_rows(path, {"name": "dist_img", "ref": "ref_img", "mos": "dmos", "var": "var"}):
        var = to_float(r["var"], f"{path}:{n}")
        if var < 0:
            raise ValueError(f"{path}:{n}: negative variance {var}")
        rows.append(LabelRow(name=r["name"], mos=to_float(r["mos"], f"{path}:{n}"), line=n,
                             std=math.sqrt(var), ref=r["ref"]))
    return rows


@register_reader("spaq_xlsx")
def read_spaq_xlsx(path: str | Path, sheet: str | None = None) -> list[LabelRow]:
    """SPAQ ``MOS and Image attribute scores.xlsx`` (``Image name``, ``MOS``; 0-100)."""
    path = need_file(path)
    header, data = xlsx_rows(path, sheet)
    name_col, mos_col = column(header, "Image name", path), column(header, "MOS", path)
    return [LabelRow(name=str(row[name_col]).strip(), mos=to_float(row[mos_col], f"{path}: row {n}"),
                     line=n) for n, row in data]


@register_reader("tid2013_txt")
def read_tid2013_txt(path: str | Path, std_file: str | None = None) -> list[LabelRow]:
    """TID2013 ``mos_with_names.txt`` (``mos name`` per line; 0-9, higher is better).

    ``std_file`` is the release's ``mos_std.txt`` (one std per line, same order), if wanted.
    The reference of ``i07_12_3.bmp`` is ``I07.BMP`` (``reference_images/`` in the release).
    """
    path = need_file(path)
    rows = []
    with path.open(encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) != 2:
                raise ValueError(f"{path}:{lineno}: expected `mos name`, got {line.strip()!r}")
            name = tokens[1]
            rows.append(LabelRow(name=name, mos=to_float(tokens[0], f"{path}:{lineno}"), line=lineno,
                                 ref=name.split("_")[0].upper() + ".BMP"))
    if std_file is not None:
        std_path = need_file(Path(path).parent / std_file)
        stds = [to_float(t, f"{std_path}:{i}") for i, t in
                enumerate(std_path.read_text(encoding="utf-8").split(), start=1)]
        check_same_length(std_path, len(rows), len(stds))
        for row, std in zip(rows, stds, strict=True):
            row.std = std
    return rows


@register_reader("clive_mat")
def read_clive_mat(path: str | Path, images_file: str = "AllImages_release.mat",
                   practice_dir: str | None = "trainingImages") -> list[LabelRow]:
    """LIVE Challenge ``AllMOS_release.mat`` + ``AllImages_release.mat`` (MOS 0-100).

    ``path`` is the MOS file; ``images_file`` sits beside it. All 1,169 images are read,
    as in the paper. The release keeps the seven practice images ``t1.bmp``..``t7.bmp``
    (the first seven entries) in ``Images/trainingImages/``: ``practice_dir`` prefixes
    their paths (None if they sit beside the others).
    """
    path = need_file(path)
    images_path = need_file(path.parent / images_file)
    mos = mat_vector(path, "AllMOS_release")
    names = mat_vector(images_path, "AllImages_release")
    check_same_length(path, len(names), len(mos))
    rows = []
    for i, (cell, score) in enumerate(zip(names, mos, strict=True), start=1):
        name = mat_string(cell, f"{images_path}: entry {i}")
        if practice_dir and re.fullmatch(r"t\d+\.bmp", name):
            name = f"{practice_dir}/{name}"
        rows.append(LabelRow(name=name, mos=to_float(score, f"{path}: entry {i}"), line=i))
    return rows


@register_reader("agiqa3k_csv")
def read_agiqa3k_csv(path: str | Path) -> list[LabelRow]:
    """AGIQA-3K ``data.csv`` (``name``, ``mos_quality``, ``std_quality``; perception MOS)."""
    path = need_file(path)
    return [LabelRow(name=r["name"], mos=to_float(r["mos"], f"{path}:{n}"), line=n,
                     std=to_float(r["std"], f"{path}:{n}"))
            for n, r in csv_rows(path, {"name": "name", "mos": "mos_quality", "std": "std_quality"})]


@register_reader("bid_xlsx")
def read_bid_xlsx(path: str | Path, name_format: str = "DatabaseImage{:04d}.JPG",
                  sheet: str | None = None) -> list[LabelRow]:
    """BID ``DatabaseGrades.xlsx``: image number (column 1) and mean grade (column 2; 0-5).

    The number becomes the file name through ``name_format`` (the release's
    ``DatabaseImage0001.JPG``). Reading stops at the first row without an image number,
    because the sheet carries notes below the table.
    """
    path = need_file(path)
    _, data = xlsx_rows(path, sheet, skip_blank=False)
    rows = []
    for n, row in data:
        if not row or row[0] is None or str(row[0]).strip() == "":
            break
        number = to_float(row[0], f"{path}: row {n}")
        if number != int(number):
            raise ValueError(f"{path}: row {n}: image number {row[0]!r} is not an integer")
        rows.append(LabelRow(name=name_format.format(int(number)),
                             mos=to_float(row[1], f"{path}: row {n}"), line=n))
    return rows


@register_reader("pipal_txt")
def read_pipal_txt(path: str | Path) -> list[LabelRow]:
    """PIPAL label txts (``name,elo`` per line), one file or a folder of them (``Train_Label/``).

    The reference of ``A0001_00_00.bmp`` is ``A0001.bmp``. In a folder, files are read in
    sorted order and an item's ``line`` counts across them.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise FileNotFoundError(errno.ENOENT, "no PIPAL label .txt files in the folder", str(path))
    else:
        files = [need_file(path)]
    rows = []
    for file in files:
        with file.open(encoding="utf-8-sig") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                tokens = [t.strip() for t in line.strip().split(",")]
                if len(tokens) != 2:
                    raise ValueError(f"{file}:{lineno}: expected `name,elo`, got {line.strip()!r}")
                name = tokens[0]
                rows.append(LabelRow(name=name, mos=to_float(tokens[1], f"{file}:{lineno}"),
                                     line=len(rows) + 1, ref=name.split("_")[0] + ".bmp",
                                     extra={"label_file": file.name, "label_line": lineno}))
    return rows


# --------------------------------------------------------------------------- VQA releases


_SUBSETS = {"all", "train", "test"}


@register_reader("lsvq_csv")
def read_lsvq_csv(path: str | Path, subset: str = "all", suffix: str = ".mp4") -> list[LabelRow]:
    """LSVQ ``labels_train_test.csv`` / ``labels_test_1080p.csv`` (``name``, ``mos``; 0-100).

    ``subset`` picks rows by the ``is_test`` column (``train``, ``test``) or keeps all
    (the 1080p file has no such column). Names lack an extension: ``suffix`` is added.
    """
    if subset not in _SUBSETS:
        raise ValueError(f"subset must be one of {sorted(_SUBSETS)}, got {subset!r}")
    path = need_file(path)
    required = {"name": "name", "mos": "mos"}
    if subset != "all":
        required["is_test"] = "is_test"
    rows = []
    for n, r in csv_rows(path, required):
        if subset != "all":
            flag = r["is_test"].strip().lower()
            if flag not in ("true", "false", "1", "0", "1.0", "0.0"):
                raise ValueError(f"{path}:{n}: is_test is {r['is_test']!r}, not a boolean")
            if (flag in ("true", "1", "1.0")) != (subset == "test"):
                continue
        rows.append(LabelRow(name=r["name"] + suffix, mos=to_float(r["mos"], f"{path}:{n}"), line=n))
    return rows


@register_reader("konvid_csv")
def read_konvid_csv(path: str | Path, suffix: str = ".mp4") -> list[LabelRow]:
    """KoNViD-1k ``KoNViD_1k_mos.csv`` (``flickr_id``, ``mos``; 1-5). Files are ``<id>.mp4``."""
    path = need_file(path)
    return [LabelRow(name=r["name"] + suffix, mos=to_float(r["mos"], f"{path}:{n}"), line=n)
            for n, r in csv_rows(path, {"name": "flickr_id", "mos": "mos"})]


@register_reader("livevqc_mat")
def read_livevqc_mat(path: str | Path) -> list[LabelRow]:
    """LIVE-VQC ``data.mat`` (``video_list`` names, ``mos`` 0-100)."""
    path = need_file(path)
    names = mat_vector(path, "video_list")
    mos = mat_vector(path, "mos")
    check_same_length(path, len(names), len(mos))
    return [LabelRow(name=mat_string(cell, f"{path}: entry {i}"),
                     mos=to_float(score, f"{path}: entry {i}"), line=i)
            for i, (cell, score) in enumerate(zip(names, mos, strict=True), start=1)]


@register_reader("youtube_ugc_xlsx")
def read_youtube_ugc_xlsx(path: str | Path, sheet: str = "MOS", score_column: str = "MOS full",
                          suffix: str = ".mkv") -> list[LabelRow]:
    """YouTube-UGC ``original_videos_MOS_for_YouTube_UGC_dataset.xlsx`` (``vid``, ``MOS full``; 1-5).

    Files are ``<vid><suffix>`` in one folder: the release ships ``.mkv`` originals in
    category/resolution sub-folders, so flatten them or point ``suffix`` at a conversion.
    """
    path = need_file(path)
    header, data = xlsx_rows(path, sheet)
    vid_col, mos_col = column(header, "vid", path), column(header, score_column, path)
    cat_col = column(header, "category", path) if "category" in (h.lower() for h in header) else None
    rows = []
    for n, row in data:
        extra = {"category": row[cat_col]} if cat_col is not None else {}
        rows.append(LabelRow(name=str(row[vid_col]).strip() + suffix,
                             mos=to_float(row[mos_col], f"{path}: row {n}"), line=n, extra=extra))
    return rows


# --------------------------------------------------------------------------- the demo set


@register_reader("demo_set")
def read_demo_set(path: str | Path, **params) -> list[LabelRow]:
    """The demo set (``preresq.data.demo``), built on first use under the folder ``path``.

    ``params`` are ``DemoConfig`` fields. Rows of all three splits are returned, named
    relative to ``path`` (``<name>-<hash>/images/...``) and carrying their split; a card
    keeps one with ``splitter: labels`` and ``split: ...``.
    """
    from preresq.data.built_set import label_rows
    from preresq.data.demo import build_demo

    return label_rows(Path(path), build_demo(params, root=Path(path)))


@register_reader("demo_video_set")
def read_demo_video_set(path: str | Path, **params) -> list[LabelRow]:
    """The demo clip set (``preresq.data.demo_video``); the video twin of ``demo_set``."""
    from preresq.data.built_set import label_rows
    from preresq.data.demo_video import build_demo_video

    return label_rows(Path(path), build_demo_video(params, root=Path(path)))
