"""Where the repository's own files live, so nothing depends on the working directory."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
CONFIG_DIR = REPO_ROOT / "configs"
PROMPT_DIR = PACKAGE_DIR / "prompts"
