"""A plain (non-editable) ``pip install`` works outside the clone: the configs and
prompts ship inside the package, and ``from preresq import Scorer`` scores with them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from preresq.paths import CONFIG_DIR, REPO_ROOT

pytestmark = pytest.mark.slow

_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from PIL import Image
    import preresq
    from preresq import Scorer
    from preresq.paths import CONFIG_DIR, INSTALLED
    scorer = Scorer.from_pretrained(sys.argv[1], model="tiny", prompt="demo_digit",
                                    max_new_tokens=3, batch_size=2)
    pil = Image.fromarray(np.full((60, 70, 3), 90, dtype=np.uint8))
    first = scorer.score([sys.argv[2], pil])
    again = scorer.score([sys.argv[2], pil])
    from preresq.config import compose
    cfg = compose("eval", ["model=visualquality_r1", "suite=iqa10"])  # groups and peer presets ship
    print(json.dumps({"output_root": cfg.paths.output_root, "peer": list(cfg.prompt.image.templates),
                      "file": preresq.__file__, "configs": str(CONFIG_DIR), "installed": INSTALLED,
                      "results": [r.to_dict() for r in first],
                      "same": [r.to_dict() for r in again] == [r.to_dict() for r in first]}))
""")


def test_wheel_install_scores_from_outside_the_clone(tmp_path, tiny_model_dir):
    # Build from a copy, so the build leaves nothing in the clone.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "local.yaml")
    for name in ("preresq", "configs"):
        shutil.copytree(REPO_ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy(REPO_ROOT / name, src / name)
    site = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "install", "-v", "--no-deps",
                            "--no-build-isolation", "--no-compile", "--target", str(site), str(src)],
                           check=True, capture_output=True, text=True)
    # every data folder is a listed package: none of setuptools' boxed warnings about them
    assert "is absent from the `packages` configuration" not in built.stdout + built.stderr
    shipped = site / "preresq" / "configs"
    # Every config file of the clone ships, without a list to maintain.
    wanted = {p.relative_to(CONFIG_DIR) for p in CONFIG_DIR.rglob("*")
              if p.is_file() and p.suffix in (".yaml", ".json") and p.name != "local.yaml"}
    assert wanted and wanted <= {p.relative_to(shipped) for p in shipped.rglob("*") if p.is_file()}
    assert (site / "preresq" / "prompts" / "iqa.txt").is_file()

    work = tmp_path / "elsewhere"
    work.mkdir()
    image = work / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (56, 84, 3), dtype=np.uint8)).save(image)
    env = {**os.environ, "PYTHONPATH": str(site), "PRERESQ_CACHE_DIR": str(tmp_path / "cache"),
           "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(tiny_model_dir), str(image)], cwd=work,
                         env=env, check=True, capture_output=True, text=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["file"].startswith(str(site)) and got["installed"] is True
    assert got["configs"] == str(shipped)
    assert got["output_root"] == str(work / "outputs")  # relative defaults: the working directory
    assert got["peer"] == ["visualquality_r1"]
    assert [r["path"] for r in got["results"]] == [str(image), None]
    assert all({"score", "subscores", "reasoning", "valid", "completion"} <= set(r) for r in got["results"])
    assert got["same"]  # greedy: the same scores every call
