"""The demo once per reward and seed, then a comparison table and plot (preresq.ablation).

    python scripts/ablate.py                                   # 5 rewards x seeds 42 1 2, ~1-2 h
    python scripts/ablate.py --rewards q_insight preresq_pref --seeds 42 --steps 300
    python scripts/ablate.py --out /tmp/abl demo.warmup_steps=20   # extra Hydra overrides

Runs go one at a time, seeds in the outer loop (every reward with the first seed comes
first), each as ``scripts/demo.py +experiment=demo`` writing ``<out>/<reward>/seed<seed>/``;
finished runs are skipped, so an interrupted ablation resumes (``preresq.demo_runs``). ``<out>/ablation.md``,
``ablation.json`` and ``val_srcc.png`` are rewritten after every run.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from preresq.ablation import VARIANTS, read_run, run_dir, write_report
from preresq.config import check_overrides
from preresq.demo_runs import run_grid
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


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    check_overrides(ns.overrides)
    out = ns.out.resolve()
    command = "python scripts/ablate.py " + shlex.join(
        ["--rewards", *ns.rewards, "--seeds", *map(str, ns.seeds), "--steps", str(ns.steps), *ns.overrides])
    failed = run_grid(
        "ablate", ns.rewards, ns.seeds, lambda v, s: run_dir(out, v, s),
        lambda v, s, folder: run_overrides(v, s, ns.steps, ns.overrides, folder),
        lambda: write_report(out, collect(out, ns.rewards, ns.seeds), command))
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
