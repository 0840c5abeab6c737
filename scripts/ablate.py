"""The demo once per reward and seed, then a comparison table and plot (preresq.ablation).

    python scripts/ablate.py                                   # 5 rewards x seeds 42 1 2, ~1-2 h
    python scripts/ablate.py --rewards q_insight preresq_pref --seeds 42 --steps 300
    python scripts/ablate.py --out /tmp/abl demo.warmup_steps=20   # extra Hydra overrides

Runs go one at a time, seeds in the outer loop (every reward with the first seed comes
first), each as ``scripts/demo.py +experiment=demo`` in a subprocess writing
``<out>/<reward>/seed<seed>/`` (its log in ``demo.log`` there). A run whose folder holds a
``summary.json`` is finished and skipped, so an interrupted ablation resumes where it
stopped; a folder made with other settings (``ablate_run.json`` differs) stops the
ablation with a message rather than mixing two setups. ``<out>/ablation.md``,
``ablation.json`` and ``val_srcc.png`` are rewritten after every run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from preresq.ablation import VARIANTS, read_run, run_dir, write_report
from preresq.config import check_overrides
from preresq.paths import REPO_ROOT

DEMO_STEPS = 600  # configs/experiment/demo.yaml's max_steps


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    parser.add_argument("--rewards", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        metavar="REWARD", help=f"reward variants, of {list(VARIANTS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    parser.add_argument("--steps", type=int, default=DEMO_STEPS, help="GRPO steps per run")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "ablation")
    return parser


def run_overrides(variant: str, seed: int, steps: int, extra: list[str], folder: Path) -> list[str]:
    return ["+experiment=demo", *VARIANTS[variant], f"seed={seed}", f"trainer.max_steps={steps}",
            *extra, f"output_dir={folder}"]


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


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    check_overrides(ns.overrides)
    out = ns.out.resolve()
    command = "python scripts/ablate.py " + shlex.join(
        ["--rewards", *ns.rewards, "--seeds", *map(str, ns.seeds), "--steps", str(ns.steps), *ns.overrides])
    env = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "WANDB_MODE": "offline", **os.environ}
    failed = []
    for seed in ns.seeds:
        for variant in ns.rewards:
            folder = run_dir(out, variant, seed)
            overrides = run_overrides(variant, seed, ns.steps, ns.overrides, folder)
            if not prepare_folder(folder, overrides):
                print(f"[ablate] {variant} seed {seed}: finished earlier, skipped", flush=True)
                continue
            print(f"[ablate] {variant} seed {seed}: running ({folder / 'demo.log'})", flush=True)
            start = time.time()
            with (folder / "demo.log").open("w") as log:
                rc = subprocess.call([sys.executable, str(REPO_ROOT / "scripts" / "demo.py"), *overrides],
                                     stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
            if rc != 0 or not (folder / "summary.json").is_file():
                failed.append(f"{variant} seed {seed} (exit {rc}, see {folder / 'demo.log'})")
                print(f"[ablate] {variant} seed {seed}: FAILED, exit {rc}", flush=True)
                continue
            print(f"[ablate] {variant} seed {seed}: done in {time.time() - start:.0f} s", flush=True)
            write_report(out, collect(out, ns.rewards, ns.seeds), command)
    md = write_report(out, collect(out, ns.rewards, ns.seeds), command)
    print(md.read_text())
    print(f"table: {md}\nplot:  {out / 'val_srcc.png'}")
    if failed:
        print("failed runs:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


def collect(out: Path, rewards: list[str], seeds: list[int]) -> dict[str, list[dict]]:
    """Every finished run's figures, by reward, in seed order."""
    return {v: [read_run(run_dir(out, v, s)) for s in seeds
                if (run_dir(out, v, s) / "summary.json").is_file()] for v in rewards}


if __name__ == "__main__":
    sys.exit(main())
