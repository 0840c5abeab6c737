"""Time to build the default demo image set from scratch (issue target: under a minute).

    python scripts/bench_data.py
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from preresq.data.demo import build_demo


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu = time.perf_counter(), time.process_time()
        folder = build_demo(None, root=Path(tmp))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        info = json.loads((folder / "info.json").read_text())
    print(json.dumps({"items": sum(info["counts"].values()), "crops": info["crops"],
                      "build_wall_s": round(wall, 2), "build_cpu_s": round(cpu, 2),
                      "target_s": 60}, indent=2))


if __name__ == "__main__":
    main()
