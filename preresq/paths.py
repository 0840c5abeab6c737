"""Where the project's own files live, so nothing depends on the working directory.

From a clone (``pip install -e .``), configs are the repository's ``configs/`` and relative
data/output/cache locations are anchored at the repository. From a plain ``pip install``
(a wheel), the configs ship inside the package (``preresq/configs``, mapped from the same
``configs/`` folder at build time, see setup.py) and relative locations are anchored at
the working directory (or set ``PRERESQ_DATA_ROOT``, ``PRERESQ_OUTPUT_ROOT``,
``PRERESQ_CACHE_DIR``).
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROMPT_DIR = PACKAGE_DIR / "prompts"
_SHIPPED = PACKAGE_DIR / "configs"
INSTALLED = _SHIPPED.is_dir()  # only a built package has preresq/configs
REPO_ROOT = Path.cwd() if INSTALLED else PACKAGE_DIR.parent
CONFIG_DIR = _SHIPPED if INSTALLED else REPO_ROOT / "configs"
if not CONFIG_DIR.is_dir():
    raise ImportError(f"preresq: no configs folder at {CONFIG_DIR}: reinstall the package "
                      f"(`pip install .`), or run from a clone with `pip install -e .`")
