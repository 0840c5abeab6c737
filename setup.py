"""Packaging beyond pyproject.toml: the top-level ``configs/`` folder ships inside the
package as ``preresq/configs`` (a wheel has no clone around it), mapped rather than
copied, so ``configs/`` stays the one source of truth and every file added there ships
without a list to keep. The clone keeps using ``configs/`` directly (``preresq.paths``)."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["preresq", "preresq.*"]) + ["preresq.configs"],
    package_dir={"preresq.configs": "configs"},
    package_data={
        "preresq": ["prompts/*.txt"],
        "preresq.configs": ["*.yaml", "**/*.yaml", "**/*.json"],
    },
    # A machine's own paths (git-ignored) never ship.
    exclude_package_data={"preresq.configs": ["paths/local.yaml"]},
)
