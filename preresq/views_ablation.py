"""What each view of a clip adds (``scripts/ablate_views.py``): the video demo per view set and seed.

Each run is ``scripts/demo.py +experiment=demo_video`` with one set of views (``VIEWS``,
Hydra overrides of ``video.*``) and one seed, in ``<out>/<view>/seed<seed>/`` (the demo's
folder layout). The clips, their splits, the model, the reward and every training setting
are the same; only what the policy sees of each clip changes:

* ``mosaic+local`` (the paper's): the 4x4 global-temporal mosaic, then 3 local frames;
* ``local``: the 3 local frames only (``video.grid=null``);
* ``mosaic``: the mosaic only (``video.num_local=0``);
* ``middle_frame``: one frame from the middle of the clip (a 1x1 "mosaic").

The table gives the kept weights' test SRCC (expected-digit readout, ``summary.after``)
overall and per distortion kind (``summary.after.by_kind``: the clips of that kind with the
clean ones), as mean ± sd over seeds, then a row per run. Other figures of a run (greedy
SRCC, entropy, collapse) come from ``preresq.ablation.read_run``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from preresq.ablation import _f, read_run
from preresq.evaluation.report import no_nan

VIEWS: dict[str, list[str]] = {
    "mosaic+local": [],
    "local": ["video.grid=null"],
    "mosaic": ["video.num_local=0"],
    "middle_frame": ["video.grid=[1,1]", "video.num_local=0"],
}
DESCRIPTIONS = {
    "mosaic+local": "4x4 mosaic of all 16 frames + 3 local frames (the paper's views)",
    "local": "3 local frames (at 1/4, 1/2, 3/4 of the clip), no mosaic",
    "mosaic": "the 4x4 mosaic only",
    "middle_frame": "one frame from the middle of the clip",
}


def run_dir(out: Path, view: str, seed: int) -> Path:
    return Path(out) / view / f"seed{seed}"


def read_view_run(folder: Path) -> dict:
    """``preresq.ablation.read_run``'s figures plus the test SRCC per distortion kind."""
    run = read_run(folder)
    summary = json.loads((Path(folder) / "summary.json").read_text())
    run["by_kind"] = {kind: float("nan") if r.get("srcc") is None else float(r["srcc"])
                      for kind, r in (summary["after"].get("by_kind") or {}).items()}
    run["n"] = summary["after"].get("n")
    return run


def kinds_of(results: Mapping[str, Sequence[dict]]) -> list[str]:
    return sorted({k for runs in results.values() for r in runs for k in r["by_kind"]})


def _mean_sd(values: Sequence[float]) -> str:
    arr = np.array(values, dtype=float)
    if not len(arr) or np.isnan(arr).any():  # a run without a score: no made-up mean
        return "n/a"
    text = _f(float(arr.mean()))
    return text + (f" ± {_f(float(arr.std()))}" if len(arr) > 1 else "")


def markdown_table(results: Mapping[str, Sequence[dict]]) -> str:
    """A row per view set (mean ± sd over seeds), then a row per run."""
    kinds = kinds_of(results)
    head = "| views | seeds | test SRCC | " + " | ".join(f"{k} SRCC" for k in kinds) + " | valid |"
    lines = [head, "| --- " * (4 + len(kinds)) + "|"]
    for name, runs in results.items():
        if not runs:
            continue
        per_kind = [_mean_sd([r["by_kind"].get(k, float("nan")) for r in runs]) for k in kinds]
        lines.append(f"| {name} | {len(runs)} | {_mean_sd([r['srcc'] for r in runs])} | "
                     + " | ".join(per_kind) + f" | {_f(float(np.mean([r['valid'] for r in runs])), 2)} |")
    lines += ["", "| views | seed | test SRCC | " + " | ".join(f"{k} SRCC" for k in kinds)
              + " | greedy SRCC | before SRCC | collapsed | s |", "| --- " * (7 + len(kinds)) + "|"]
    for name, runs in results.items():
        for r in runs:
            lines.append(f"| {name} | {r['seed']} | {_f(r['srcc'])} | "
                         + " | ".join(_f(r["by_kind"].get(k, float("nan"))) for k in kinds)
                         + f" | {_f(r['greedy_srcc'])} | {_f(r['before_srcc'])} | "
                         f"{'yes' if r['collapsed'] else 'no'} | {r['seconds'] or 'n/a'} |")
    return "\n".join(lines) + "\n"


def write_report(out: Path, results: Mapping[str, Sequence[dict]], command: str) -> Path:
    """views_ablation.md and views_ablation.json in ``out``; returns the markdown's path."""
    out = Path(out)
    md = out / "views_ablation.md"
    legend = "\n".join(f"- `{k}`: {DESCRIPTIONS.get(k, k)} ({' '.join(VIEWS.get(k, [])) or 'as configured'})"
                       for k in results)
    md.write_text(f"# What each view adds: the video demo per view set\n\n`{command}`\n\n{legend}\n\n"
                  f"{markdown_table(results)}\nTest SRCC: the kept weights' expected-digit readout on "
                  f"the held-out clips; per kind: that kind's clips with the clean ones. "
                  f"See preresq/views_ablation.py.\n")
    (out / "views_ablation.json").write_text(json.dumps(
        {"command": command, "views": {k: VIEWS.get(k) for k in results},
         "runs": {name: [no_nan(r) for r in runs] for name, runs in results.items()}}, indent=1))
    return md


__all__ = ["VIEWS", "markdown_table", "read_view_run", "run_dir", "write_report"]
