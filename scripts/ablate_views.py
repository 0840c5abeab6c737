"""The video demo once per view set and seed, then a table per distortion kind (preresq.views_ablation).

    python scripts/ablate_views.py                                  # 4 view sets x seeds 42 1 2
    python scripts/ablate_views.py --views mosaic+local local --seeds 42 --steps 300
    python scripts/ablate_views.py --out /tmp/views demo.warmup_steps=20   # extra Hydra overrides
    python scripts/ablate_views.py --report      # only the table of the runs finished so far

Runs go one at a time, seeds in the outer loop (every view set with the first seed comes
first), each as ``scripts/demo.py +experiment=demo_video`` in a subprocess writing
``<out>/<view>/seed<seed>/`` (its log in ``demo.log`` there). A run whose folder holds a
``summary.json`` is finished and skipped, so an interrupted ablation resumes where it
stopped; a folder made with other settings stops the ablation with a message rather than
mixing two setups. ``<out>/views_ablation.md`` and ``views_ablation.json`` are rewritten
after every run.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from preresq.config import check_overrides
from preresq.demo_runs import run_grid
from preresq.paths import REPO_ROOT
from preresq.views_ablation import VIEWS, read_view_run, run_dir, write_report

DEMO_STEPS = 300  # configs/experiment/demo_video.yaml's max_steps


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    parser.add_argument("--views", nargs="+", default=list(VIEWS), choices=list(VIEWS),
                        metavar="VIEWS", help=f"view sets, of {list(VIEWS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    parser.add_argument("--steps", type=int, default=DEMO_STEPS, help="GRPO steps per run")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "ablation_views")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: write the table from the runs finished so far")
    return parser


def run_overrides(view: str, seed: int, steps: int, extra: list[str], folder: Path) -> list[str]:
    return ["+experiment=demo_video", *VIEWS[view], f"seed={seed}", f"trainer.max_steps={steps}",
            *extra, f"output_dir={folder}"]


def collect(out: Path, views: list[str], seeds: list[int]) -> dict[str, list[dict]]:
    """Every finished run's figures, by view set, in seed order."""
    return {v: [read_view_run(run_dir(out, v, s)) for s in seeds
                if (run_dir(out, v, s) / "summary.json").is_file()] for v in views}


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    check_overrides(ns.overrides)
    out = ns.out.resolve()
    command = "python scripts/ablate_views.py " + shlex.join(
        ["--views", *ns.views, "--seeds", *map(str, ns.seeds), "--steps", str(ns.steps), *ns.overrides])
    failed = run_grid(
        "ablate_views", [] if ns.report else ns.views, ns.seeds, lambda v, s: run_dir(out, v, s),
        lambda v, s, folder: run_overrides(v, s, ns.steps, ns.overrides, folder),
        lambda: write_report(out, collect(out, ns.views, ns.seeds), command))
    md = write_report(out, collect(out, ns.views, ns.seeds), command)
    print(md.read_text())
    print(f"table: {md}")
    if failed:
        print("failed runs:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
