"""Is model A better than model B? Paired differences of SRCC and PLCC with intervals.

Two evaluation folders (``scripts/eval.py`` outputs) are compared benchmark by benchmark
on the items *both* scored validly (same id, a score in both, no media error), so a
model is never flattered by the items it failed to answer. Per benchmark, A minus B:

* ``delta_srcc``, ``delta_srcc_ci``, ``p_srcc``: the SRCC difference, its 95% paired
  bootstrap interval (items resampled jointly for both models), and the two-sided
  bootstrap p-value ``min(1, 2 min(P*(d <= 0), P*(d >= 0)))`` over the resampled
  differences ``d`` (no closed-form test exists for dependent Spearman correlations).
* ``delta_plcc``, ``delta_plcc_ci``, ``p_plcc``: the same for PLCC (raw Pearson, as in
  ``results.json``), with the p-value of Williams' t test for two dependent correlations
  sharing one variable (the MOS), Steiger (1980) eq. 14, ``n - 3`` degrees of freedom.
* ``n_common``: the items used; ``n_a``, ``n_b``: each run's valid items.

The ``mean`` row averages the per-benchmark differences; its interval and both of its
p-values come from averaging the per-benchmark bootstrap differences resample by resample
(benchmarks resampled independently).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from preresq.evaluation.metrics import plcc, resampled_pearson, resampled_spearman, srcc

__all__ = ["williams_test", "paired_bootstrap", "compare_rows", "compare_runs", "markdown"]


def williams_test(r_ay: float, r_by: float, r_ab: float, n: int) -> tuple[float, float]:
    """Williams' t for ``r_ay - r_by`` (two correlations with a shared variable y).

    Args:
        r_ay, r_by: each model's correlation with the MOS.
        r_ab: the correlation between the two models' predictions.
        n: the number of items (> 3).

    Returns:
        ``(t, two-sided p)``; NaN for fewer than 4 items or an undefined correlation.
    """
    if n < 4 or not all(math.isfinite(r) for r in (r_ay, r_by, r_ab)):
        return math.nan, math.nan
    det = 1 - r_ay**2 - r_by**2 - r_ab**2 + 2 * r_ay * r_by * r_ab
    den = 2 * (n - 1) / (n - 3) * det + ((r_ay + r_by) ** 2 / 4) * (1 - r_ab) ** 3
    if r_ay == r_by:
        return 0.0, 1.0
    if den <= 0:
        return math.nan, math.nan
    t = (r_ay - r_by) * math.sqrt((n - 1) * (1 + r_ab) / den)
    return float(t), float(2 * stats.t.sf(abs(t), n - 3))


def _bootstrap_p(d: np.ndarray) -> float:
    if d.size == 0:
        return math.nan
    return float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))


def _interval(d: np.ndarray, level: float = 0.95) -> list[float]:
    if d.size == 0:
        return [math.nan, math.nan]
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(d, [tail, 100 - tail])
    return [float(low), float(high)]


def paired_bootstrap(a: Sequence[float], b: Sequence[float], gt: Sequence[float],
                     n_samples: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    """Resampled differences ``srcc(a) - srcc(b)`` and ``plcc(a) - plcc(b)``, items drawn
    jointly (the same draw for both models); resamples where either is undefined are
    dropped. Returns ``{"srcc": array, "plcc": array}``."""
    x, z, y = (np.asarray(v, dtype=np.float64) for v in (a, b, gt))
    rng = np.random.default_rng(seed)
    out = {"srcc": [], "plcc": []}
    chunk = max(1, 250_000 // max(1, x.size))
    for start in range(0, n_samples, chunk):
        idx = rng.integers(0, x.size, size=(min(chunk, n_samples - start), x.size))
        out["srcc"].append(resampled_spearman(x, y, idx) - resampled_spearman(z, y, idx))
        out["plcc"].append(resampled_pearson(x, y, idx) - resampled_pearson(z, y, idx))
    return {k: (np.concatenate(v) if v else np.empty(0)) for k, v in out.items()}


def _valid(rows: Sequence[Mapping]) -> dict[str, Mapping]:
    return {r["id"]: r for r in rows if r.get("error") is None and r.get("pred") is not None}


def compare_rows(rows_a: Sequence[Mapping], rows_b: Sequence[Mapping], name: str = "",
                 n_samples: int = 2000, seed: int = 0) -> tuple[dict, dict[str, np.ndarray]]:
    """One benchmark's comparison (see the module doc) and its bootstrap differences."""
    va, vb = _valid(rows_a), _valid(rows_b)
    common = [i for i in va if i in vb]
    for i in common:
        if not math.isclose(float(va[i]["gt"]), float(vb[i]["gt"]), abs_tol=1e-9):
            raise ValueError(f"{name}: item {i!r} has MOS {va[i]['gt']} in run A but {vb[i]['gt']} "
                             "in run B: the runs used different labels (label_source?)")
    a = np.array([va[i]["pred"] for i in common], dtype=float)
    b = np.array([vb[i]["pred"] for i in common], dtype=float)
    y = np.array([va[i]["gt"] for i in common], dtype=float)
    row = {"n_common": len(common), "n_a": len(va), "n_b": len(vb)}
    nan_row = {"delta_srcc": math.nan, "delta_srcc_ci": [math.nan, math.nan], "p_srcc": math.nan,
               "delta_plcc": math.nan, "delta_plcc_ci": [math.nan, math.nan], "p_plcc": math.nan}
    if len(common) < 4 or np.ptp(y) == 0 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return {**row, **nan_row}, {"srcc": np.empty(0), "plcc": np.empty(0)}
    draws = paired_bootstrap(a, b, y, n_samples, seed)
    draws = {k: v[np.isfinite(v)] for k, v in draws.items()}
    r_ay, r_by = plcc(a, y), plcc(b, y)
    r_ab = plcc(a, b) if np.ptp(a) and np.ptp(b) else math.nan
    row.update(delta_srcc=srcc(a, y) - srcc(b, y), delta_srcc_ci=_interval(draws["srcc"]),
               p_srcc=_bootstrap_p(draws["srcc"]), delta_plcc=r_ay - r_by,
               delta_plcc_ci=_interval(draws["plcc"]),
               p_plcc=williams_test(r_ay, r_by, r_ab, len(common))[1])
    return row, draws


def read_predictions(run: str | os.PathLike) -> dict[str, list[dict]]:
    """``{benchmark: rows}`` from an evaluation folder's ``predictions/*.jsonl``."""
    folder = Path(run) / "predictions"
    if not folder.is_dir():
        raise FileNotFoundError(f"{run}: not an evaluation folder (no predictions/ inside); "
                                "give the output_dir of scripts/eval.py")
    out = {}
    for path in sorted(folder.glob("*.jsonl")):
        rows = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        out[path.stem] = rows
    return out


def _identity(run) -> dict:
    path = Path(run) / "identity.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike, n_samples: int = 2000,
                 seed: int = 0) -> dict:
    """Every benchmark both runs predicted, then the mean row; also what else differs in
    the runs' identities (besides the weights), so a reader sees if prompts differed."""
    from preresq.evaluation.identity import differences

    pa, pb = read_predictions(run_a), read_predictions(run_b)
    shared = [name for name in pa if name in pb]
    if not shared:
        raise ValueError(f"{run_a} and {run_b} have no benchmark in common "
                         f"({sorted(pa)} vs {sorted(pb)})")
    benchmarks, draws = {}, []
    for k, name in enumerate(shared):
        benchmarks[name], d = compare_rows(pa[name], pb[name], name, n_samples, seed + k)
        if d["srcc"].size:
            draws.append(d)
    mean = {"n_benchmarks": sum(math.isfinite(b["delta_srcc"]) for b in benchmarks.values()),
            "n_common": sum(b["n_common"] for b in benchmarks.values())}
    done = [b for b in benchmarks.values() if math.isfinite(b["delta_srcc"])]
    for m in ("srcc", "plcc"):
        mean[f"delta_{m}"] = float(np.mean([b[f"delta_{m}"] for b in done])) if done else math.nan
        if draws:
            size = min(d[m].size for d in draws)
            avg = np.mean([d[m][:size] for d in draws], axis=0)
            mean[f"delta_{m}_ci"], mean[f"p_{m}"] = _interval(avg), _bootstrap_p(avg)
        else:
            mean[f"delta_{m}_ci"], mean[f"p_{m}"] = [math.nan, math.nan], math.nan
    ia, ib = _identity(run_a), _identity(run_b)
    for side in (ia, ib):
        side.get("model", {}).pop("weights", None)
    return {"run_a": str(run_a), "run_b": str(run_b), "benchmarks": benchmarks, "mean": mean,
            "only_in_a": sorted(set(pa) - set(pb)), "only_in_b": sorted(set(pb) - set(pa)),
            "identity_differences": differences(ia, ib) if ia and ib else []}


def _f(v, signed=True) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def _ci(pair) -> str:
    return "n/a" if any(not math.isfinite(v) for v in pair) else f"[{pair[0]:+.3f}, {pair[1]:+.3f}]"


def _p(v) -> str:
    return "n/a" if not math.isfinite(v) else ("<0.001" if v < 0.001 else f"{v:.3f}")


def markdown(result: Mapping) -> str:
    """The comparison as a markdown table (A minus B), with its notes."""
    lines = [f"A: {result['run_a']}", f"B: {result['run_b']}", "",
             "| benchmark | n_common | ΔSRCC | 95% CI | p | ΔPLCC | 95% CI | p (Williams) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, b in result["benchmarks"].items():
        lines.append(f"| {name} | {b['n_common']} | {_f(b['delta_srcc'])} | {_ci(b['delta_srcc_ci'])} | "
                     f"{_p(b['p_srcc'])} | {_f(b['delta_plcc'])} | {_ci(b['delta_plcc_ci'])} | "
                     f"{_p(b['p_plcc'])} |")
    m = result["mean"]
    lines.append(f"| **mean** ({m['n_benchmarks']}) | {m['n_common']} | {_f(m['delta_srcc'])} | "
                 f"{_ci(m['delta_srcc_ci'])} | {_p(m['p_srcc'])} | {_f(m['delta_plcc'])} | "
                 f"{_ci(m['delta_plcc_ci'])} | {_p(m['p_plcc'])} |")
    lines += ["", "Differences are A minus B on the items both runs scored validly. CIs: 95% "
              "paired bootstrap; SRCC p: bootstrap; PLCC p: Williams' test (mean row: bootstrap)."]
    for key, label in (("only_in_a", "only in A"), ("only_in_b", "only in B")):
        if result.get(key):
            lines.append(f"Benchmarks {label} (not compared): {', '.join(result[key])}.")
    if result.get("identity_differences"):
        lines.append("The runs also differ in: " + "; ".join(result["identity_differences"]))
    return "\n".join(lines) + "\n"
