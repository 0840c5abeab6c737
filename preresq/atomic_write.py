"""Files written whole or not at all: a temporary file beside the target, renamed over it.

A reader (a resumed run, another rank, a rerun after a kill) sees the old file or the new
one, never half of one.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomically(path: str | os.PathLike, text: str, fsync: bool = False) -> None:
    """Write ``text`` to ``path`` via ``.<name>.tmp``; ``fsync`` flushes it to disk first
    (for markers that must survive a node's power loss, not only a killed process)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
