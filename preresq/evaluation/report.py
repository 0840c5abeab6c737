"""From prediction rows to what readers see: per-benchmark metrics, JSON, table, plots.

Rule for items without a score (documented in results.md's footnote too):

* ``n``: items in the benchmark; ``n_error``: items whose media could not be read;
  ``n_invalid``: answered items whose answer held no valid score; ``n_valid``: the rest.
* ``invalid_rate = n_invalid / (n - n_error)``, the share of answers without a score.
* SRCC, PLCC, PLCC (logistic), KRCC and RMSE (after the logistic fit, in MOS units on
  the [1, 5] scale) are computed over the ``n_valid`` items only. No
  score is invented for the others; read the metrics together with ``invalid_rate``
  (a model that answers only on easy items is flattered by this rule, and the rate shows it).

``results.json`` layout::

    {"benchmarks": {"<name>": {"n", "n_valid", "n_invalid", "n_error", "invalid_rate",
                               "srcc", "plcc", "plcc_logistic", "krcc", "rmse",
                               "srcc_ci", "plcc_ci", "logistic_params"}
                    | {"skipped": "<reason>"}},
     "mean": {"srcc", "plcc", "plcc_logistic", "krcc", "rmse", "n_benchmarks"},
     "identity": {...what produced the predictions (identity.json)...},
     "model_path": "<the folder the weights were read from>" | null}

NaN (an undefined correlation) is written as ``null``. ``srcc_ci``/``plcc_ci`` are 95%
percentile-bootstrap intervals of SRCC and of the raw PLCC.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from preresq.atomic_write import write_text_atomically
from preresq.evaluation.metrics import logistic_4, summarize

METRICS = ("srcc", "plcc", "plcc_logistic", "krcc", "rmse")


def benchmark_result(rows: Sequence[Mapping], bootstrap_samples: int = 1000,
                     seed: int = 0) -> dict:
    """Counts and metrics of one benchmark from its prediction rows (see the module rule)."""
    n = len(rows)
    n_error = sum(1 for r in rows if r.get("error") is not None)
    valid = [r for r in rows if r.get("error") is None and r.get("pred") is not None]
    n_answered = n - n_error
    result = {
        "n": n,
        "n_valid": len(valid),
        "n_invalid": n_answered - len(valid),
        "n_error": n_error,
        "invalid_rate": (n_answered - len(valid)) / n_answered if n_answered else math.nan,
    }
    result.update(summarize([r["pred"] for r in valid], [r["gt"] for r in valid],
                            bootstrap_samples=bootstrap_samples, seed=seed))
    return result


def mean_row(benchmarks: Mapping[str, Mapping]) -> dict:
    """Plain mean of each metric over the benchmarks that were evaluated (NaN spreads)."""
    done = [b for b in benchmarks.values() if "skipped" not in b]
    row = {m: float(np.mean([b[m] for b in done])) if done else math.nan for m in METRICS}
    row["n_benchmarks"] = len(done)
    return row


def no_nan(value):
    """JSON has no NaN: write it as null (recursively)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [no_nan(v) for v in value]
    return value


def write_json(path: str | os.PathLike, results: Mapping) -> None:
    """Write ``results.json`` atomically (NaN as null)."""
    write_text_atomically(path, json.dumps(no_nan(results), indent=2, allow_nan=False) + "\n")


def _num(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _ci(pair) -> str:
    if pair is None or any(v is None or math.isnan(v) for v in pair):
        return "n/a"
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]"


_HEADER = ("benchmark", "n", "valid", "invalid %", "errors", "SRCC", "PLCC", "PLCC (logistic)",
           "KRCC", "RMSE", "SRCC 95% CI", "PLCC 95% CI")

FOOTNOTE = ("PLCC is Pearson on raw predictions; PLCC (logistic) is Pearson after the "
            "4-parameter logistic fit; RMSE is after that fit, in MOS units ([1, 5]). Metrics use valid answers only; invalid % = answers "
            "without a score / answered items; errors = unreadable media. CIs: 95% bootstrap.")


def markdown_table(results: Mapping) -> str:
    """All benchmarks, one row each (a skipped one states why), then the mean row."""
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "|".join(["---"] + ["---:"] * (len(_HEADER) - 1)) + "|"]
    for name, b in results["benchmarks"].items():
        if "skipped" in b:
            lines.append(f"| {name} | skipped: {b['skipped']} |" + " |" * (len(_HEADER) - 2))
            continue
        rate = b["invalid_rate"]
        rate = "n/a" if rate is None or math.isnan(rate) else f"{100 * rate:.1f}"
        lines.append("| " + " | ".join([
            name, str(b["n"]), str(b["n_valid"]), rate, str(b["n_error"]),
            *(_num(b[m]) for m in METRICS), _ci(b["srcc_ci"]), _ci(b["plcc_ci"]),
        ]) + " |")
    mean = results["mean"]
    lines.append("| " + " | ".join([
        f"**mean** ({mean['n_benchmarks']})", "", "", "", "",
        *(_num(mean[m]) for m in METRICS), "", "",
    ]) + " |")
    return "\n".join(lines) + "\n\n" + FOOTNOTE + "\n"


def write_report(out: str | os.PathLike, benchmarks: Mapping[str, Mapping], identity: Mapping,
                 title: str, model_path: str | None = None, plots: bool = False) -> dict:
    """``results.json`` and ``results.md`` in ``out`` (the table also printed); returns the
    results dict. ``plots``: whether ``plots/`` was written too (the closing line says only
    what was written)."""
    out = Path(out)
    results = {"benchmarks": dict(benchmarks), "mean": mean_row(benchmarks),
               "identity": dict(identity), "model_path": model_path}
    write_json(out / "results.json", results)
    table = markdown_table(results)
    (out / "results.md").write_text(f"# {title}\n\n{table}", encoding="utf-8")
    print(table)
    written = "predictions, results.json, results.md and plots" if plots else \
        "predictions, results.json and results.md"
    print(f"{written} in {out}")
    return results


def scatter_plot(path: str | os.PathLike, rows: Sequence[Mapping], result: Mapping,
                 title: str) -> None:
    """Prediction vs MOS for the valid items, with the fitted logistic curve, as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    valid = [r for r in rows if r.get("error") is None and r.get("pred") is not None]
    x = np.array([r["pred"] for r in valid], dtype=float)
    y = np.array([r["gt"] for r in valid], dtype=float)
    fig = Figure(figsize=(4.8, 4.2), dpi=100)
    FigureCanvasAgg(fig)  # no pyplot: no global backend state, safe in any process
    ax = fig.add_subplot()
    ax.scatter(x, y, s=8, alpha=0.5, edgecolors="none")
    params = result.get("logistic_params")
    if params is not None and x.size:
        grid = np.linspace(x.min(), x.max(), 200)
        ax.plot(grid, logistic_4(grid, *params), color="C3", lw=1.5, label="4-parameter logistic")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("MOS (rescaled to [1, 5])")
    ax.set_title(f"{title}: SRCC {_num(result.get('srcc'))}, PLCC {_num(result.get('plcc'))}\n"
                 f"{len(valid)} valid of {result.get('n', len(rows))}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
