"""The demo once per variant and seed, one run at a time, resumable: the ablations' runner.

Each run is ``scripts/demo.py`` in a subprocess writing its own folder (its log in
``demo.log`` there). A folder holding a ``summary.json`` is finished and skipped, so an
interrupted ablation resumes where it stopped; a folder made with other settings
(``ablate_run.json`` differs) stops the ablation with a message rather than mixing two setups.
Used by ``scripts/ablate.py`` (rewards) and ``scripts/ablate_views.py`` (video views).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from preresq.paths import REPO_ROOT


def prepare_folder(folder: Path, overrides: list[str]) -> bool:
    """True when the run is still to do; stops if the folder holds a run of other settings."""
    record = folder / "ablate_run.json"
    if record.is_file():
        old = json.loads(record.read_text())["overrides"]
        if old != overrides:
            raise SystemExit(f"{folder} holds a run made with {old}, not {overrides}: "
                             "use another --out, or remove that folder to redo it")
        if (folder / "summary.json").is_file():
            return False
    folder.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"overrides": overrides}, indent=1) + "\n")
    return True


def run_grid(tag: str, variants: Sequence[str], seeds: Sequence[int],
             folder_of: Callable[[str, int], Path],
             overrides_of: Callable[[str, int, Path], list[str]],
             after_each: Callable[[], object]) -> list[str]:
    """Run every (seed, variant) not finished yet, seeds in the outer loop; returns the failures.

    ``after_each`` is called after every finished run (the ablations rewrite their table).
    """
    env = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "WANDB_MODE": "offline", **os.environ}
    failed = []
    for seed in seeds:
        for variant in variants:
            folder = folder_of(variant, seed)
            overrides = overrides_of(variant, seed, folder)
            name = f"[{tag}] {variant} seed {seed}"
            if not prepare_folder(folder, overrides):
                print(f"{name}: finished earlier, skipped", flush=True)
                continue
            print(f"{name}: running ({folder / 'demo.log'})", flush=True)
            start = time.time()
            with (folder / "demo.log").open("w") as log:
                rc = subprocess.call([sys.executable, str(REPO_ROOT / "scripts" / "demo.py"), *overrides],
                                     stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
            if rc != 0 or not (folder / "summary.json").is_file():
                failed.append(f"{variant} seed {seed} (exit {rc}, see {folder / 'demo.log'})")
                print(f"{name}: FAILED, exit {rc}", flush=True)
                continue
            print(f"{name}: done in {time.time() - start:.0f} s", flush=True)
            after_each()
    return failed
