"""What travels with a run: the resolved config and the code's git commit."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from preresq.paths import REPO_ROOT


def git_state(repo: Path = REPO_ROOT) -> dict:
    """The commit of the code that runs, and whether the work tree had changes."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def write_run_info(directory: str | Path, cfg: DictConfig, extra: dict | None = None) -> None:
    """Write ``config.yaml`` (resolved) and ``run_info.json`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    info = {
        "git": git_state(),
        "argv": sys.argv,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    (directory / "run_info.json").write_text(json.dumps(info, indent=2))
