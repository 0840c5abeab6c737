"""Checkpoints that are complete or not there: a marker written last, rotation after it.

A kill (SIGKILL, a node lost, a time limit) can land while a checkpoint folder is being
written; transformers then leaves ``checkpoint-N/`` without ``trainer_state.json`` or with
half an optimizer, and resuming from it fails or, worse, loads a torn state. So:

- a checkpoint is complete only when ``CHECKPOINT_COMPLETE`` is in it. Rank 0 writes it
  after a barrier, when every rank's files (weights, optimizer shards, RNG states, trainer
  state) are written (``PreresqGRPOTrainer._save_checkpoint``);
- ``resume=true`` continues from the newest complete checkpoint; a ``checkpoint-N``
  without the marker is named in the log and renamed ``incomplete-checkpoint-N`` (never
  deleted: a user decides);
- rotation (``save_total_limit``) runs after the marker, counts complete checkpoints
  only and never removes the newest one; it removes a checkpoint's marker before its files,
  so a rotation cut short leaves an incomplete folder, never a torn "complete" one.
  transformers' own rotation runs before any marker could exist (inside
  ``_save_checkpoint``, by modification time), so the trainer turns it off;
- a stage's ``final/`` is complete only with the stage's ``STAGE_DONE`` (written last,
  after a barrier); a ``final/`` without it is renamed ``incomplete-final`` before the
  weights are written again.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import shutil
from pathlib import Path

from preresq.atomic_write import write_text_atomically

log = logging.getLogger("preresq.train")

COMPLETE_MARKER = "CHECKPOINT_COMPLETE"
INCOMPLETE_PREFIX = "incomplete-"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_step(path: Path) -> int | None:
    match = _CHECKPOINT.match(Path(path).name)
    return int(match.group(1)) if match else None


def checkpoints(directory: Path) -> list[Path]:
    """Every ``checkpoint-<step>`` folder of a stage folder, complete or not, oldest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=checkpoint_step)


def is_complete(folder: Path) -> bool:
    return (Path(folder) / COMPLETE_MARKER).is_file()


def complete_checkpoints(directory: Path) -> list[Path]:
    return [p for p in checkpoints(directory) if is_complete(p)]


def newest_complete(directory: Path) -> Path | None:
    """The checkpoint ``resume=true`` continues from: the newest complete one, or None."""
    done = complete_checkpoints(directory)
    return done[-1] if done else None


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def mark_complete(folder: Path, step: int, world_size: int, seconds: float | None = None) -> dict:
    """Rank 0, after every rank has written its files: ``folder`` becomes a complete checkpoint.

    The marker records its size and how long it took to write (``seconds``), which is what a
    scheduler's warning time must cover (docs/fault_tolerance.md).
    """
    folder = Path(folder)
    info = {"step": int(step), "world_size": int(world_size), "bytes": folder_bytes(folder)}
    if seconds is not None:
        info["seconds"] = round(float(seconds), 3)
    write_text_atomically(folder / COMPLETE_MARKER, json.dumps(info) + "\n", fsync=True)
    return info


def unmark(folder: Path) -> None:
    """Take the marker away before a complete folder's files are changed or removed."""
    (Path(folder) / COMPLETE_MARKER).unlink(missing_ok=True)


def set_aside(path: Path) -> Path:
    """Rename ``path`` to ``incomplete-<name>`` (``.2``, ``.3``... when taken); never deletes."""
    path = Path(path)
    target = path.with_name(INCOMPLETE_PREFIX + path.name)
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{INCOMPLETE_PREFIX}{path.name}.{n}")
    path.rename(target)
    return target


def set_aside_incomplete(directory: Path) -> list[Path]:
    """Rank 0, before resuming: move every checkpoint without its marker out of the way.

    Left in place, transformers would count it in rotation and a later save of the same
    step would mix its files with the stale ones.
    """
    moved = []
    for folder in checkpoints(directory):
        if not is_complete(folder):
            target = set_aside(folder)
            log.warning("%s is incomplete (no %s: a save was cut short); renamed %s, resuming "
                        "from the newest complete checkpoint", folder, COMPLETE_MARKER, target.name)
            moved.append(target)
    return moved


def rotate(directory: Path, keep: int | None) -> list[Path]:
    """Remove the oldest complete checkpoints beyond ``keep``; never the newest complete one.

    Each loses its marker first, so a rotation cut short leaves an incomplete folder (set
    aside at the next resume), never one that claims to be whole.
    """
    if not keep or keep <= 0:
        return []
    done = complete_checkpoints(directory)
    removed = []
    for folder in done[: max(len(done) - max(int(keep), 1), 0)]:
        unmark(folder)
        shutil.rmtree(folder)
        removed.append(folder)
    return removed


def final_incomplete(stage_dir: Path, final: str, done_marker: str) -> bool:
    """A ``final/`` without the stage's ``STAGE_DONE``: its save was cut short."""
    return (Path(stage_dir) / final).exists() and not (Path(stage_dir) / done_marker).is_file()


# What a checkpoint holds besides what ``save_model`` writes (weights, config, processor).
TRAINING_STATE = ("optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json", "latest",
                  COMPLETE_MARKER)
TRAINING_STATE_PREFIXES = ("rng_state", "global_step", "zero_to_")


def weights_from_checkpoint(checkpoint: Path, final: Path) -> list[str]:
    """Copy a complete checkpoint's weights (its files less the training state) to ``final``.

    A stage whose newest complete checkpoint is its last step (a stop signal at that step, a
    kill while ``final/`` was written) is finished from it: transformers 5.2x resumed at
    ``global_step == max_steps`` trains one step more before it checks the limit.
    """
    final = Path(final)
    final.mkdir(parents=True)
    copied = []
    for f in sorted(Path(checkpoint).iterdir()):
        if f.is_file() and f.name not in TRAINING_STATE and not f.name.startswith(TRAINING_STATE_PREFIXES):
            shutil.copy2(f, final / f.name)
            copied.append(f.name)
    return copied


def write_done_marker(path: Path, step: int) -> None:
    write_text_atomically(Path(path), f"{int(step)}\n", fsync=True)


# ---- a save that fails for lack of disk space ------------------------------------------

class DiskFullError(OSError):
    """A checkpoint could not be written: the disk holding it is full."""

    def __init__(self, folder: Path, needed: int | None, free: int | None, previous: Path | None):
        self.folder, self.needed, self.free, self.previous = Path(folder), needed, free, previous
        need = (f"about {_size(needed)} (the size of {previous.name})" if needed
                else "as much as one checkpoint")
        kept = f" {previous} is complete and intact." if previous else ""
        super().__init__(errno.ENOSPC, f"no space left on the disk of {self.folder.parent} while "
                         f"writing {self.folder.name}: a checkpoint needs {need}, {_size(free)} "
                         f"free.{kept} Free space (or lower trainer.args.save_total_limit) and "
                         f"rerun with resume=true")

    def __str__(self) -> str:
        return self.strerror


def _size(n: int | None) -> str:
    if n is None:
        return "an unknown amount"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _mentions_no_space(err: BaseException) -> bool:
    """ENOSPC anywhere in the chain: torch.save and safetensors wrap it in their own errors."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            return True
        text = str(err)
        if "No space left on device" in text or "StorageFull" in text:
            return True
        err = err.__cause__ or err.__context__
    return False


def disk_full(err: BaseException, folder: Path, previous: Path | None) -> DiskFullError | None:
    """The ``DiskFullError`` that ``err`` (raised while writing ``folder``) amounts to, or None.

    A write error is a full disk when it says so (ENOSPC in the chain), or when the disk has
    less room left than the previous complete checkpoint took (torch.save's own message is
    only "file write failed").
    """
    needed = folder_bytes(previous) if previous is not None and previous.is_dir() else None
    try:
        free = shutil.disk_usage(Path(folder).parent).free
    except OSError:
        free = None
    if _mentions_no_space(err) or (needed is not None and free is not None and free < needed):
        return DiskFullError(folder, needed, free, previous)
    return None
