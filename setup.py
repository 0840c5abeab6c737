"""Packaging beyond pyproject.toml: the top-level ``configs/`` folder ships inside the
package as ``preresq/configs`` (a wheel has no clone around it), mapped rather than
copied, so ``configs/`` stays the one source of truth and every file added there ships
without a list to keep. The clone keeps using ``configs/`` directly (``preresq.paths``).

Every folder that holds data files is listed as a package (``configs``' subfolders and
``preresq/prompts``, which have no ``__init__.py``): setuptools otherwise ships them anyway
but warns, once per folder, that data-only folders missing from ``packages`` will stop
being installed."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
CONFIG_PACKAGES = ["preresq.configs"] + sorted(
    "preresq.configs." + ".".join(p.relative_to(HERE / "configs").parts)
    for p in (HERE / "configs").rglob("*") if p.is_dir() and p.name != "__pycache__")

setup(
    packages=find_packages(include=["preresq", "preresq.*"]) + ["preresq.prompts"] + CONFIG_PACKAGES,
    package_dir={"preresq.configs": "configs"},
    package_data={
        "preresq.prompts": ["*.txt"],
        **{name: ["*.yaml", "*.json"] for name in CONFIG_PACKAGES},
    },
    # A machine's own paths (git-ignored) never ship.
    exclude_package_data={"preresq.configs.paths": ["local.yaml"]},
)
