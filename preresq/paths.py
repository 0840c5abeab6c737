"""Where the repository's own files live, so nothing depends on the working directory."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
CONFIG_DIR = REPO_ROOT / "configs"  # in the clone, next to the package: install with `pip install -e .`
if not CONFIG_DIR.is_dir():
    raise ImportError(f"preresq: no configs folder at {CONFIG_DIR}; PreResQ runs from a clone of its "
                      f"repository, installed with `pip install -e .` (a wheel install has no configs)")
PROMPT_DIR = PACKAGE_DIR / "prompts"
