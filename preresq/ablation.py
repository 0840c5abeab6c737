"""The laptop-scale reward ablation (``scripts/ablate.py``, ``make ablation``): the demo per reward and seed.

Each run is ``scripts/demo.py +experiment=demo`` with one reward variant (``VARIANTS``) and
one seed, in ``<out>/<variant>/seed<seed>/`` (the demo's own folder layout: summary.json,
main/metrics.jsonl, main/validation.jsonl, eval/). This module reads those folders and
writes the comparison: ``ablation.md`` (a row per reward, means over seeds, then a row per
run), ``ablation.json`` and ``val_srcc.png`` (validation SRCC against GRPO steps, a colour
per reward, a line per seed).

Columns, per run (the demo's held-out test split unless said otherwise):

* test SRCC / PLCC: the kept weights' expected-digit readout (``summary.after``);
* greedy SRCC: the same weights' greedy answers through ``evaluate()`` (``summary.evaluation``);
* valid: share of greedy test answers that parse;
* entropy: TRL's mean token entropy of the rollouts, last logged value;
* zero spread: TRL's ``frac_reward_zero_std`` (share of groups whose K rewards are all
  equal, so their advantages are 0 and they teach nothing), mean over the last
  ``TAIL`` of the logged training steps;
* collapsed: **yes** when, over that same tail, one answer takes at least
  ``COLLAPSE_SHARE`` of the valid sampled answers on average (the reward's answer
  histogram, ``rewards/<preset>/ans_<d>``): the policy answers the same digit whatever
  the image. The step where that first happened is given beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from preresq.evaluation.report import no_nan

# Reward variants: Hydra overrides of the demo experiment. One-digit answers need
# balance_dims=1 for the preresq preset (the balance term reads the first D sub-scores).
VARIANTS: dict[str, list[str]] = {
    "q_insight": ["reward=q_insight"],
    "visualquality_r1": ["reward=visualquality_r1"],
    "preresq": ["reward=preresq", "reward.params.balance_dims=1"],
    "preresq_pref": ["reward=preresq_pref"],
    "preresq_no_balance": ["reward=preresq", "reward.params.balance_dims=1", "reward.params.w_balance=0"],
}
DESCRIPTIONS = {
    "q_insight": "Q-Insight: 1 if |answer - score| < 0.35",
    "visualquality_r1": "VisualQuality-R1: Thurstone fidelity vs every other image",
    "preresq": "PRPO, released weights",
    "preresq_pref": "PRPO, preference branch only (the demo's)",
    "preresq_no_balance": "PRPO, released weights without triplet balance",
}
TAIL = 0.1  # the last 10% of the logged training steps
COLLAPSE_SHARE = 0.9
DIGITS = (1, 2, 3, 4, 5)


def run_dir(out: Path, variant: str, seed: int) -> Path:
    return Path(out) / variant / f"seed{seed}"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _num(value) -> float:
    return float("nan") if value is None else float(value)


def _tail(rows: list[dict]) -> list[dict]:
    return rows[-max(1, math.ceil(len(rows) * TAIL)):] if rows else []


def dominant_share(row: Mapping, preset: str) -> float:
    """The largest answer share in one logged step (NaN when the histogram is missing)."""
    shares = [row.get(f"rewards/{preset}/ans_{d}") for d in DIGITS]
    return max(shares) if all(s is not None for s in shares) else float("nan")


def read_run(folder: Path) -> dict:
    """One finished run's figures (see the module docstring); raises if summary.json is missing."""
    folder = Path(folder)
    summary = json.loads((folder / "summary.json").read_text())
    preset = summary["reward"]["preset"]
    logs = [m for m in _jsonl(folder / "main" / "metrics.jsonl") if "frac_reward_zero_std" in m]
    tail = _tail(logs)
    shares = [dominant_share(m, preset) for m in tail]
    dominant = float(np.mean(shares)) if shares else float("nan")
    first = next((m["step"] for m in logs if dominant_share(m, preset) >= COLLAPSE_SHARE), None)
    entropy = [m["entropy"] for m in logs if "entropy" in m]
    val = _jsonl(folder / "main" / "validation.jsonl")
    return {
        "seed": summary["seed"],
        "srcc": _num(summary["after"]["srcc"]),
        "plcc": _num(summary["after"]["plcc"]),
        "greedy_srcc": _num(summary["evaluation"]["srcc"]),
        "valid": _num(summary["after"]["valid_rate"]),
        "before_srcc": _num(summary["before"]["srcc"]),
        "entropy": float(entropy[-1]) if entropy else float("nan"),
        "zero_spread": float(np.mean([m["frac_reward_zero_std"] for m in tail])) if tail else float("nan"),
        "dominant_share": dominant,
        "collapsed": bool(dominant >= COLLAPSE_SHARE),
        "collapse_step": first if dominant >= COLLAPSE_SHARE else None,
        "val_steps": [v["step"] for v in val],
        "val_srcc": [_num(v.get("val/srcc")) for v in val],
        "seconds": summary.get("seconds"),
    }


NUMERIC = ("srcc", "plcc", "greedy_srcc", "valid", "entropy", "zero_spread")


def aggregate(runs: Sequence[dict]) -> dict:
    """Means and standard deviations over seeds; NaN (no score) spreads into the mean."""
    row = {"seeds": [r["seed"] for r in runs], "collapsed": sum(r["collapsed"] for r in runs)}
    for key in NUMERIC:
        values = np.array([r[key] for r in runs], dtype=float)
        row[key] = float(values.mean()) if len(values) else float("nan")
        row[f"{key}_sd"] = float(values.std()) if len(values) > 1 else float("nan")
    return row


def _f(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _pm(row: Mapping, key: str, digits: int = 3) -> str:
    sd = row.get(f"{key}_sd", float("nan"))
    return _f(row[key], digits) + ("" if math.isnan(sd) else f" ± {_f(sd, digits)}")


def markdown_table(results: Mapping[str, Sequence[dict]]) -> str:
    """A row per reward (mean ± sd over seeds), then a row per run."""
    head = ("| reward | seeds | test SRCC | test PLCC | greedy SRCC | valid | final entropy "
            "| zero-spread groups | collapsed |")
    lines = [head, "| --- " * 9 + "|"]
    for name, runs in results.items():
        if not runs:
            continue
        row = aggregate(runs)
        lines.append(f"| {name} | {len(runs)} | {_pm(row, 'srcc')} | {_pm(row, 'plcc')} | "
                     f"{_pm(row, 'greedy_srcc')} | {_f(row['valid'], 2)} | {_pm(row, 'entropy', 2)} | "
                     f"{_pm(row, 'zero_spread', 2)} | {row['collapsed']}/{len(runs)} |")
    lines += ["", "| reward | seed | test SRCC | test PLCC | greedy SRCC | valid | final entropy "
              "| zero-spread groups | top answer share | collapsed | before SRCC | s |",
              "| --- " * 12 + "|"]
    for name, runs in results.items():
        for r in runs:
            collapsed = f"yes (step {r['collapse_step']})" if r["collapsed"] else "no"
            lines.append(f"| {name} | {r['seed']} | {_f(r['srcc'])} | {_f(r['plcc'])} | "
                         f"{_f(r['greedy_srcc'])} | {_f(r['valid'], 2)} | {_f(r['entropy'], 2)} | "
                         f"{_f(r['zero_spread'], 2)} | {_f(r['dominant_share'], 2)} | {collapsed} | "
                         f"{_f(r['before_srcc'])} | {r['seconds'] or 'n/a'} |")
    return "\n".join(lines) + "\n"


def plot_val_srcc(results: Mapping[str, Sequence[dict]], path: Path) -> None:
    """Validation SRCC against GRPO steps: a colour per reward, a line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (name, runs) in enumerate(results.items()):
        colour = f"C{i}"
        for j, r in enumerate(runs):
            ax.plot(r["val_steps"], r["val_srcc"], color=colour, alpha=0.8, marker=".",
                    label=name if j == 0 else None)
    ax.set(xlabel="GRPO step", ylabel="validation SRCC (expected digit)", ylim=(-1, 1),
           title="demo: validation SRCC per reward (a line per seed)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(out: Path, results: Mapping[str, Sequence[dict]], command: str) -> Path:
    """ablation.md, ablation.json and val_srcc.png in ``out``; returns the markdown's path."""
    out = Path(out)
    md = out / "ablation.md"
    legend = "\n".join(f"- `{k}`: {DESCRIPTIONS.get(k, k)} ({' '.join(VARIANTS.get(k, []))})"
                       for k in results)
    md.write_text(f"# Reward ablation on the demo\n\n`{command}`\n\n{legend}\n\n"
                  f"{markdown_table(results)}\nColumns: see preresq/ablation.py. Collapsed: over the "
                  f"last {TAIL:.0%} of logged steps one answer takes >= {COLLAPSE_SHARE:.0%} of the "
                  f"valid sampled answers.\n")
    (out / "ablation.json").write_text(json.dumps(
        {name: [no_nan(r) for r in runs] for name, runs in results.items()},
        indent=1))
    plot_val_srcc(results, out / "val_srcc.png")
    return md


__all__ = ["VARIANTS", "aggregate", "markdown_table", "plot_val_srcc", "read_run", "run_dir", "write_report"]
