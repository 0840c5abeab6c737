"""Kill the smoke training run the ways clusters do, resume after each kill, print one line.

    python scripts/fault_check.py                       # 60 steps, a save every step,
                                                        # 3 SIGKILLs in saves, 3 at random, 1 SIGTERM
    python scripts/fault_check.py --steps 8 --save-kills 1 --random-kills 1 --sigterms 1
    python scripts/fault_check.py -- trainer.deepspeed=zero3   # overrides for every start

Exit status 0 when every resume worked, no step was lost and the stage finished at
``global_step`` = --steps; 1 otherwise. What each fault is: preresq/training/fault_check.py.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from preresq.training.fault_check import FaultCheck, fault_plan


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="trainer.max_steps")
    parser.add_argument("--save-steps", type=int, default=1, help="trainer.args.save_steps")
    parser.add_argument("--save-kills", type=int, default=3, help="SIGKILLs while a checkpoint is written")
    parser.add_argument("--random-kills", type=int, default=3, help="SIGKILLs at random moments")
    parser.add_argument("--sigterms", type=int, default=1, help="SIGTERMs (save, exit 75, resume)")
    parser.add_argument("--window", type=float, default=3.0,
                        help="random moments: 0 to this many seconds after a start's first step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="the run folder (default: a new temporary folder); start logs beside it")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every start (after --)")
    args = parser.parse_args(argv)

    out = args.output_dir or Path(tempfile.mkdtemp(prefix="preresq_fault_")) / "run"
    if (out / "main").exists():
        parser.error(f"{out} already holds a run: choose a new --output-dir")
    check = FaultCheck(out, args.steps, args.save_steps, args.overrides, seed=args.seed,
                       window_s=args.window)
    report = check.run_all(fault_plan(args.save_kills, args.random_kills, args.sigterms, args.seed))
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=2))
    print(report.line(), flush=True)
    if not report.ok:
        print(f"run folder and start logs: {out} ({out.parent})", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
