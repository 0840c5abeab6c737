"""The files ``preresq-score`` scores: files as given, folders walked for images and videos.

A folder is walked recursively (symbolic links to folders are not followed) and its image
and video files, told by extension, are taken in sorted order of their path relative to
the folder (code-point order, the same on every machine), so a rerun meets them in the
same order. A file's *name* (the CSV's ``name`` column) is that relative path, with
``/`` separators; a file given directly is named by the argument as given. Other files in
a folder are not scored and are returned, so the caller can say so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from preresq.evaluation.scorer import VIDEO_EXTENSIONS

# What Pillow opens as a photo; anything else in a folder is listed as not scored.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".tif", ".tiff", ".webp",
                              ".gif", ".ppm", ".pgm", ".pnm", ".jp2", ".mpo"})


@dataclass(frozen=True)
class MediaFile:
    """One file to score: its ``name`` in the output and where it is."""

    name: str
    path: Path


def is_media(path: str | Path) -> bool:
    """An image or video file, by extension (case ignored)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


def folder_files(folder: str | Path) -> tuple[list[MediaFile], list[Path]]:
    """(the folder's image and video files in sorted order, its other files)."""
    folder = Path(folder)
    media, others = [], []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            path = Path(root) / name
            (media if is_media(path) else others).append(path)
    found = sorted((MediaFile(p.relative_to(folder).as_posix(), p) for p in media),
                   key=lambda f: f.name)
    return found, sorted(others)


def media_files(arguments: Sequence[str | Path]) -> tuple[list[MediaFile], list[Path]]:
    """Files and folders, in the order given, as (files to score, folder files not scored).

    Raises:
        FileNotFoundError: an argument is neither a file nor a folder.
        ValueError: two files would get the same name (two folders holding ``a.png``).
    """
    found: list[MediaFile] = []
    skipped: list[Path] = []
    for arg in arguments:
        path = Path(arg)
        if path.is_dir():
            media, others = folder_files(path)
            found += media
            skipped += others
        elif path.is_file():
            found.append(MediaFile(path.as_posix(), path))
        else:
            raise FileNotFoundError(f"not a file or folder: {arg}")
    seen: dict[str, Path] = {}
    for item in found:
        if item.name in seen:
            raise ValueError(f"two files would both be named {item.name!r}: {seen[item.name]} and "
                             f"{item.path}; score the folders one at a time (one CSV each)")
        seen[item.name] = item.path
    return found, skipped
