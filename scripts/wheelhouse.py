"""Fill a folder with the wheels a GPU node without internet needs to run this project.

Run it on a machine with internet; copy the folder (and the repository) to the node; there

    pip install --no-index --find-links wheelhouse preresq

(or ``pip install --no-index --find-links wheelhouse -e .`` in a clone: pip builds the
project in an isolated environment from the wheelhouse's setuptools, whatever setuptools
the node has; ``--no-build-isolation`` works only where the node's setuptools is 77 or newer,
which ``project.license = "Apache-2.0"`` needs).

What lands in the folder, for the node's Python version and platform:

1. wheels built here for the sdist-only packages: DeepSpeed (``DS_BUILD_OPS=0``: its ops
   compile on first use on the node, as with a plain ``pip install deepspeed``) and
   antlr4-python3-runtime 4.9.3 (hydra-core's parser runtime); and the project's own wheel;
2. every other package the project needs (``pyproject.toml``'s dependencies, its extras
   with ``--extra``), resolved for the target by pip (``pip install --dry-run --report``:
   metadata only, nothing installed here) and downloaded as binary wheels with
   ``pip download --only-binary=:all: --python-version --platform``,

3. the build requirements (``[build-system].requires``: setuptools >= 77) as wheels, always:
   a node's own setuptools is often older (65 and 76 fail on the license field),

leaving out what the node already has (``--have torch transformers ...``, names or
``name==version`` pins, or ``--have-file`` with the node's ``pip freeze``) and everything
those packages depend on (the node has it with them). Pins for the node set that matter
(``NODE_CONSTRAINTS``): omegaconf 2.3.x (hydra-core 1.3 refuses 2.4), wandb 0.26.x (0.31
pulls in OpenTelemetry).

    python scripts/wheelhouse.py --out wheelhouse --python-version 3.12 \\
        --have torch transformers accelerate peft
    make wheelhouse WHEELHOUSE_ARGS="--python-version 3.12 --have-file node-freeze.txt"

Needs pip (it runs ``pip wheel``, ``pip install --dry-run`` and ``pip download``) and
``packaging``: the installed one, else the copy pip vendors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ModuleNotFoundError:  # pip vendors it, and this script needs pip anyway
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
# Known to matter on the node (see the module docstring).
NODE_CONSTRAINTS = ["omegaconf>=2.3,<2.4", "wandb>=0.26,<0.27"]
# Published as source only: built here into wheels (name -> pinned requirement, build env).
SOURCE_ONLY = {
    "deepspeed": ("deepspeed==0.19.8", {"DS_BUILD_OPS": "0"}),
    "antlr4-python3-runtime": ("antlr4-python3-runtime==4.9.3", {}),
}
DEFAULT_PLATFORM = "manylinux_2_28_x86_64"


def _toml(pyproject: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        from pip._vendor import tomli as tomllib
    return tomllib.loads(pyproject.read_text())


def build_requirements(pyproject: Path) -> list[str]:
    """``[build-system].requires``: what pip installs to build the project (isolated)."""
    return list(_toml(pyproject)["build-system"]["requires"])


def project_requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """``[project].dependencies`` plus the named optional dependencies."""
    project = _toml(pyproject)["project"]
    requirements = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"error: no extra {extra!r} in {pyproject}; known: {sorted(optional)}")
        requirements += optional[extra]
    return requirements


def parse_have(items: list[str]) -> dict[str, str | None]:
    """What the node has: normalized name -> its pin (``name==version``) or None.

    Takes names, ``name==version`` and ``pip freeze`` lines (``name @ url`` counts as the
    name; comments, options and editable installs are skipped).
    """
    have: dict[str, str | None] = {}
    for raw in items:
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        pins = [s for s in requirement.specifier if s.operator in ("==", "===")]
        # A local label (torch 2.11.0+cu130) is the node's build of a public version.
        version = pins[0].version.split("+", 1)[0] if pins else None
        have[name] = f"{name}=={version}" if version and not requirement.url else None
    return have


LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def platform_tags(platform: str) -> list[str]:
    """The tag and every older manylinux tag a node with that glibc also installs (pip does
    not expand them itself: decord's only Linux wheel is manylinux2010)."""
    match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
    if not match:
        return [platform]
    newest, arch = int(match.group(1)), match.group(2)
    tags = []
    for minor in range(newest, 4, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in LEGACY_MANYLINUX:
            tags.append(f"{LEGACY_MANYLINUX[minor]}_{arch}")
    return tags


def target_flags(python_version: str, platform: str) -> list[str]:
    """pip's flags that resolve and download for another interpreter and platform."""
    if not re.fullmatch(r"3\.\d+", python_version):
        raise SystemExit(f"error: --python-version {python_version!r}: give major.minor, e.g. 3.12")
    flags = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for tag in platform_tags(platform):
        flags += ["--platform", tag]
    return flags


def build_commands(out: Path, have: dict, python: str = sys.executable) -> list[tuple[list[str], dict]]:
    """``pip wheel`` for each source-only package the node lacks, and for the project."""
    commands = []
    for name, (requirement, env) in SOURCE_ONLY.items():
        if name not in have:
            commands.append(([python, "-m", "pip", "wheel", "--no-deps", "-w", str(out), requirement], env))
    commands.append(([python, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(REPO)], {}))
    return commands


def resolve_command(out: Path, requirements: list[str], constraints: Path, report: Path, target: Path,
                    flags: list[str], python: str = sys.executable) -> list[str]:
    """Resolve the whole set for the target (metadata only): the node's pins are constraints."""
    return [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
            "--report", str(report), "--target", str(target), *flags, "--find-links", str(out),
            "-c", str(constraints), *requirements]


def constraints_text(have: dict) -> str:
    return "\n".join([*NODE_CONSTRAINTS, *(pin for pin in have.values() if pin)]) + "\n"


def _marker_env(report: dict) -> dict:
    env = dict(default_environment())
    env.update(report.get("environment") or {})
    return env


def node_closure(report: dict, have: dict) -> set[str]:
    """The node's packages and everything they depend on, within the resolved set (extras
    followed: torch needs ``cuda-toolkit[cudart,...]``, whose extras name the CUDA wheels)."""
    env = _marker_env(report)
    requires = {canonicalize_name(item["metadata"]["name"]): item["metadata"].get("requires_dist") or []
                for item in report["install"]}

    def deps(name: str, extras: frozenset) -> list[tuple[str, frozenset]]:
        found = []
        for spec in requires[name]:
            requirement = Requirement(spec)
            if requirement.marker is None or any(requirement.marker.evaluate({**env, "extra": e})
                                                 for e in {"", *extras}):
                dep = canonicalize_name(requirement.name)
                if dep in requires:
                    found.append((dep, frozenset(requirement.extras)))
        return found

    seen: set[tuple[str, frozenset]] = set()
    stack = [(n, frozenset()) for n in have if n in requires]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(deps(*node))
    return {name for name, _ in seen} | set(have)


def to_download(report: dict, excluded: set[str], built: set[str]) -> list[str]:
    """``name==version`` of every resolved package the node lacks and that was not built here."""
    pins = []
    for item in report["install"]:
        name = canonicalize_name(item["metadata"]["name"])
        if name not in excluded and name not in built:
            pins.append(f"{name}=={item['metadata']['version']}")
    return sorted(pins)


def download_command(out: Path, pins: list[str], flags: list[str], python: str = sys.executable) -> list[str]:
    return [python, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(out), *flags, *pins]


def _run(command: list[str], env: dict | None = None) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, env={**os.environ, **(env or {})})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("wheelhouse"))
    parser.add_argument("--python-version", default=f"{sys.version_info.major}.{sys.version_info.minor}",
                        help="the node's Python, major.minor (default: this one)")
    parser.add_argument("--platform", default=DEFAULT_PLATFORM,
                        help=f"the node's wheel platform tag (default {DEFAULT_PLATFORM}; older "
                             "manylinux tags are accepted too)")
    parser.add_argument("--have", nargs="*", default=[], help="packages the node already has")
    parser.add_argument("--have-file", type=Path, help="the node's `pip freeze` (or a list of names)")
    parser.add_argument("--extra", action="append", default=[], help="an optional dependency group (vllm)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)

    have = parse_have(args.have + (args.have_file.read_text().splitlines() if args.have_file else []))
    flags = target_flags(args.python_version, args.platform)
    requirements = [r for r in project_requirements(REPO / "pyproject.toml", args.extra)
                    # a source-only package the node has cannot be resolved as a wheel: skip it
                    if not (canonicalize_name(Requirement(r).name) in have
                            and canonicalize_name(Requirement(r).name) in SOURCE_ONLY)]
    args.out.mkdir(parents=True, exist_ok=True)
    builds = build_commands(args.out, have)
    with tempfile.TemporaryDirectory(prefix="wheelhouse-") as tmp:
        work = Path(tmp)
        constraints, report_path = work / "constraints.txt", work / "report.json"
        constraints.write_text(constraints_text(have))
        resolve = resolve_command(args.out, requirements, constraints, report_path, work / "target", flags)
        if args.dry_run:
            for command, env in builds:
                print(" ".join([*(f"{k}={v}" for k, v in env.items()), *command]))
            print(" ".join(resolve))
            print("then: pip download --no-deps of every resolved package not on the node, and of "
                  + " ".join(build_requirements(REPO / "pyproject.toml")))
            return 0
        for command, env in builds:
            _run(command, env)
        _run(resolve)
        report = json.loads(report_path.read_text())
    excluded = node_closure(report, have)
    built = {canonicalize_name(n) for n in SOURCE_ONLY if n not in have} | {"preresq"}
    pins = to_download(report, excluded, built)
    pins += build_requirements(REPO / "pyproject.toml")   # always: the node's may be too old
    _run(download_command(args.out, pins, flags))
    wheels = sorted(args.out.glob("*.whl"))
    size = sum(p.stat().st_size for p in wheels) / 2**20
    print(f"{len(wheels)} wheels, {size:.1f} MiB in {args.out} for Python {args.python_version} "
          f"({args.platform}); left out as on the node: {len(excluded)} packages")
    print(f"on the node: pip install --no-index --find-links {args.out} preresq   "
          f"(in a clone: pip install --no-index --find-links {args.out} -e .)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
