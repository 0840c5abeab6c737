"""Figures of a generation speed check (``scripts/gpu_eval_check.py``), kept apart from timing.

* the **bandwidth floor** of one decode step: the bytes it must read (the text weights
  once, plus every row's KV cache up to its length) over the memory bandwidth of the
  device found (``bandwidth_gbs``, by device name; an unknown device has no floor);
* **ms per decode step** as the difference of two calls that differ in new tokens only,
  so the processor, the vision tower and the prefill cancel out (``ms_per_step``);
* **memory** as allocated, reserved and what the driver reports free (``memory``);
* **operations** from ``torch.profiler`` by self time, on the device where there is one
  (``top_operations``), and per decode step as the difference of two profiles
  (``per_step_operations``);
* a **record** of variants (``Record``) written to its JSON file when each variant
  starts and ends (a kill keeps what finished), one failing variant not stopping the
  others, and its one-screen summary (``summary_table``).
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from preresq.atomic_write import write_text_atomically

# Peak memory bandwidth in GB/s by device name (the vendors' data sheets). Matched in
# order, so the specific names come before the general ones.
BANDWIDTH_GBS = (
    ("H200", 4800.0),
    ("H100 PCIe", 2000.0),
    ("H100 NVL", 3900.0),
    ("H100", 3350.0),  # SXM
    ("A100-SXM4-80GB", 2039.0),
    ("A100 80GB PCIe", 1935.0),
    ("A100", 1555.0),  # 40 GB
)
GIB = 2**30


def bandwidth_gbs(device_name: str | None) -> tuple[float | None, str]:
    """(peak memory bandwidth in GB/s, where it comes from) for a device name; (None,
    why) for a device not in ``BANDWIDTH_GBS`` (no floor is then computed)."""
    for pattern, gbs in BANDWIDTH_GBS:
        if device_name and pattern.lower() in device_name.lower():
            return gbs, f"{pattern}: {gbs:,.0f} GB/s (data sheet peak)"
    return None, (f"no bandwidth known for {device_name!r}: no floor (pass --bandwidth-gbs "
                  "to set one)")


def kv_bytes_per_token(text_config, element_size: int) -> int:
    """Bytes of K and V one token holds over all layers."""
    heads = int(text_config.num_attention_heads)
    head_dim = int(getattr(text_config, "head_dim", None) or text_config.hidden_size // heads)
    return 2 * int(text_config.num_hidden_layers) * int(text_config.num_key_value_heads) * \
        head_dim * int(element_size)


def decode_floor_ms(weight_bytes: int, kv_per_token: int, rows: int, mean_context: float,
                    gbs: float | None) -> float | None:
    """The least time one decode step can take on a device of ``gbs`` GB/s: the weights
    read once plus ``rows`` KV caches of ``mean_context`` tokens each."""
    if not gbs:
        return None
    return 1000 * (weight_bytes + kv_per_token * rows * mean_context) / (gbs * 1e9)


def ms_per_step(short_s: float, long_s: float, short_tokens: int, long_tokens: int) -> float:
    """Milliseconds per decode step from two calls on the same batch that differ only in
    new tokens: what they share (processor, vision tower, prefill) cancels out."""
    if long_tokens <= short_tokens:
        raise ValueError(f"need more tokens in the long call ({long_tokens} <= {short_tokens})")
    return 1000 * (long_s - short_s) / (long_tokens - short_tokens)


def memory(device) -> dict:
    """GiB allocated, reserved (and their peaks since the last reset) and free/total as the
    driver sees them (``torch.cuda.mem_get_info``: other processes and the CUDA context
    count); on a device without CUDA a note instead."""
    import torch

    if torch.device(device).type != "cuda":
        return {"note": "no CUDA device: no GPU memory figures"}
    free, total = torch.cuda.mem_get_info(device)
    figures = {"allocated": torch.cuda.memory_allocated(device),
               "max_allocated": torch.cuda.max_memory_allocated(device),
               "reserved": torch.cuda.memory_reserved(device),
               "max_reserved": torch.cuda.max_memory_reserved(device),
               "free": free, "total": total}
    return {f"{key}_gib": round(value / GIB, 3) for key, value in figures.items()}


def _op_times(prof, on_device: bool) -> dict[str, tuple[int, float]]:
    """Operation name -> (calls, self time in microseconds) of a finished profile."""
    attr = "self_device_time_total" if on_device else "self_cpu_time_total"
    return {e.key: (int(e.count), float(getattr(e, attr))) for e in prof.key_averages()}


def top_operations(prof, on_device: bool, n: int = 15) -> list[dict]:
    """The ``n`` operations (and kernels) with the most self time, device time on a GPU."""
    times = _op_times(prof, on_device)
    rows = sorted(times.items(), key=lambda kv: -kv[1][1])[:n]
    return [{"op": op, "calls": calls, "self_ms": round(us / 1000, 3)} for op, (calls, us) in rows]


def per_step_operations(long_prof, short_prof, steps: int, on_device: bool,
                        n: int = 15) -> dict:
    """Operations per decode step: (long call's profile - short call's) / ``steps``, the
    ``n`` largest by self time, and the total of the positive differences."""
    long_ops, short_ops = _op_times(long_prof, on_device), _op_times(short_prof, on_device)
    diff = {}
    for op, (calls, us) in long_ops.items():
        base_calls, base_us = short_ops.get(op, (0, 0.0))
        diff[op] = ((calls - base_calls) / steps, (us - base_us) / steps)
    rows = sorted(diff.items(), key=lambda kv: -kv[1][1])
    return {
        "time": "device" if on_device else "cpu",
        "total_self_ms_per_step": round(sum(us for _, us in diff.values() if us > 0) / 1000, 3),
        "top": [{"op": op, "calls_per_step": round(calls, 2), "self_ms_per_step": round(us / 1000, 4)}
                for op, (calls, us) in rows[:n]],
    }


def steady(seconds: list[float]) -> float:
    """The steady-state time of a repeated call: the best of the calls after the first."""
    return min(seconds[1:]) if len(seconds) > 1 else seconds[0]


def same_tokens(mine: list[list[int]], reference: list[list[int]]) -> dict:
    """How many rows' greedy tokens equal the reference's, and the mean common prefix
    (bf16 on random weights has near-ties: a figure to read, not an assertion)."""
    prefix = [next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
              for a, b in zip(mine, reference, strict=True)]
    return {"rows_compared": len(prefix), "rows_identical": sum(a == b for a, b in zip(mine, reference, strict=True)),
            "mean_common_prefix_tokens": round(sum(prefix) / len(prefix), 1) if prefix else None}


def summary_table(data: dict) -> str:
    """One screen: a line per variant with its main figures."""
    lines = [f"{data['model']} on {data['device_name']} ({data['device']}), batch {data['batch']}, "
             f"bandwidth {data['bandwidth_gbs'] or 'unknown'} GB/s",
             f"{'variant':<24} {'status':<8} {'s':>7} {'first s':>8} {'steady s':>8} {'compile s':>9} "
             f"{'ms/step':>8} {'x floor':>7} {'tok/s':>9} {'max res GiB':>11}"]
    for name, v in data["variants"].items():
        def get(key, v=v):
            value = v.get(key)
            return "" if value is None else str(value)
        reserved = (v.get("memory") or {}).get("max_reserved_gib")
        tok = v.get("steady_new_tokens_per_s") or v.get("later_calls_new_tokens_per_s")
        lines.append(f"{name:<24} {v['status']:<8} {get('seconds'):>7} {get('first_call_seconds'):>8} "
                     f"{get('steady_call_seconds'):>8} {get('compile_seconds'):>9} "
                     f"{get('ms_per_decode_step') or get('profiled_ms_per_decode_step'):>8} "
                     f"{get('x_bandwidth_floor'):>7} {'' if tok is None else tok:>9} "
                     f"{'' if reserved is None else reserved:>11}")
        if v["status"] == "error":
            lines.append(f"    {v['error'][:200]}")
        if v["status"] == "skipped":
            lines.append(f"    {v['why']}")
        for op in (v.get("top") or [])[:3]:
            ms = op.get("self_ms_per_step", op.get("self_ms"))
            lines.append(f"    {ms:>9} ms  {op['op'][:90]}")
    lines.append("tok/s: new tokens per second in steady calls; random weights never stop (every "
                 "row runs to its last token)")
    return "\n".join(lines)


def write_json(path: str | os.PathLike, data) -> None:
    """Write ``data`` whole or not at all (a temporary file renamed over the old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(data, indent=2) + "\n")


class Record:
    """The check's JSON: its fixed figures plus ``variants`` by name, each ``running``,
    ``ok`` (its figures), ``error`` (type, message, traceback's end) or ``skipped``.

    Args:
        path: the JSON file (None: kept in memory only).
        summary: the figures that do not depend on a variant.
        deadline_s: a variant starts only if fewer seconds than this have passed since
            the record was made (None: no deadline).
        after: called with the device after each variant (memory figures), if given.
    """

    def __init__(self, path, summary: dict, deadline_s: float | None = None,
                 after: Callable[[], dict] | None = None) -> None:
        self.path = path
        self.data = {**summary, "variants": {}}
        self.deadline_s = deadline_s
        self.after = after
        self.start = time.perf_counter()
        self.save()

    def save(self) -> None:
        if self.path:
            write_json(self.path, self.data)

    def run(self, name: str, fn: Callable[[], dict]) -> dict:
        """Run one variant and record it; an exception is recorded, not raised."""
        elapsed = time.perf_counter() - self.start
        if self.deadline_s is not None and elapsed >= self.deadline_s:
            entry = {"status": "skipped", "why": f"deadline: {elapsed:.0f} s of {self.deadline_s:.0f} s used"}
        else:
            self.data["variants"][name] = {"status": "running"}
            self.save()
            start = time.perf_counter()
            try:
                entry = {"status": "ok", **fn()}
            except Exception as e:  # one variant's failure (OOM, a compile error) is a result
                entry = {"status": "error", "error": f"{type(e).__name__}: {e}"[:2000],
                         "traceback": traceback.format_exc()[-3000:]}
            entry["seconds"] = round(time.perf_counter() - start, 2)
            if self.after is not None:
                entry["memory"] = self.after()
        self.data["variants"][name] = entry
        self.save()
        return entry
