"""``DataMissingError``: a data file or folder is not where its card says, told the way a
newcomer can act on.

Raised where label files, manifests and media folders are looked up
(``preresq.data.benchmarks``); the command-line edges (``preresq.user_errors.stop_on_user_errors``)
print its message without a traceback. The message names each file or folder looked for,
the card field that points at it and the card's file, the setting that places it
(``paths.data_root`` / ``PRERESQ_DATA_ROOT`` and the like, read from the paths the run was
given) and ``data/README.md``, which says where each set goes and how
``scripts/prepare_data.py`` checks it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# The keys of configs/paths/default.yaml that place data, with the variable behind each;
# the most specific first (labels_root sits inside data_root by default).
ROOTS = (("labels_root", "PRERESQ_LABELS_ROOT"), ("cache_dir", "PRERESQ_CACHE_DIR"),
         ("data_root", "PRERESQ_DATA_ROOT"))
README = "data/README.md"
_WHAT = {"labels": "label file", "media_root": "media folder", "manifest": "manifest"}


@dataclass(frozen=True)
class Missing:
    """One thing looked for and not found: ``path``, the ``field`` of card ``dataset`` that
    points at it (``labels``, ``media_root``, ``manifest``)."""

    dataset: str
    field: str
    path: str

    def line(self) -> str:
        where = card_files(self.dataset)
        source = f"`{self.field}` in {' or '.join(where)}" if where else f"its card's `{self.field}`"
        return f"{self.dataset}: {_WHAT.get(self.field, self.field)} {self.path} ({source})"


class DataMissingError(FileNotFoundError):
    """Data a command needs is not there; ``describe()`` says where it goes and how to
    point at it (also ``str()``, with the paths given here or the default ones)."""

    def __init__(self, missing: Sequence[Missing], headline: str | None = None,
                 paths: Mapping | DictConfig | None = None, others: Sequence[str] = ()) -> None:
        self.missing = list(missing)
        self.headline = headline
        self.paths = paths
        self.others = list(others)
        first = self.missing[0].path if self.missing else None
        super().__init__(self.describe(paths))
        self.filename = first

    def __str__(self) -> str:
        return self.args[0]

    def short(self) -> str:
        """One line: the first thing missing (for a table's "skipped" column)."""
        m = self.missing[0]
        return f"{_WHAT.get(m.field, m.field)} not found: {m.path}"

    def describe(self, paths: Mapping | DictConfig | None = None) -> str:
        """The whole message; ``paths`` is the run's ``paths`` group (default: the
        configured defaults, ``configs/paths/default.yaml`` with the environment)."""
        roots = _roots(paths if paths is not None else self.paths)
        lines = [self.headline or "data not found"]
        lines += [f"  {m.line()}" for m in self.missing] + [f"  {o}" for o in self.others]
        # each path is placed by the most specific root holding it
        placed = [next((k for k, _ in ROOTS if _under(m.path, roots.get(k))), None) for m in self.missing]
        used = [key for key, _ in ROOTS if key in placed]
        for key in used:
            env = dict(ROOTS)[key]
            now = os.environ.get(env)
            origin = f"{env} is set to {now}" if now else f"the default; {env} is not set"
            lines.append(f"Under paths.{key} = {roots[key]} ({origin}). Put the data "
                         f"there, or point at it: {env}=/your/dir, or paths.{key}=/your/dir on "
                         f"the command line (configs/paths/default.yaml).")
        if None in placed:
            lines.append("Paths outside those folders are set in the card itself (or on the command "
                         "line): correct the card's field, or override it.")
        lines.append(f"{README} says where each data set goes and how scripts/prepare_data.py "
                     f"checks it.")
        return "\n".join(lines)


def _roots(paths: Mapping | DictConfig | None) -> dict[str, str]:
    if paths is None:
        from preresq.config import load_paths

        paths = load_paths()
    if isinstance(paths, DictConfig):
        paths = OmegaConf.to_container(paths, resolve=True)
    return {k: str(v) for k, v in paths.items() if k in dict(ROOTS) and v}


def _under(path: str, root: str | None) -> bool:
    if not root:
        return False
    path, root = Path(path).absolute(), Path(root).absolute()
    return path == root or root in path.parents


def card_files(dataset: str) -> list[str]:
    """The card files (``configs/benchmark/``, ``configs/data/``) of the set named ``dataset``
    (by file name or by their ``name:``), relative to the configs folder's parent."""
    from preresq.paths import CONFIG_DIR

    found = []
    for group in ("benchmark", "data"):
        for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
            if path.stem == dataset or OmegaConf.load(path).get("name") == dataset:
                found.append(f"configs/{group}/{path.name}")
    return found
