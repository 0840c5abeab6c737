"""scripts/wheelhouse.py without network: the lists it builds and the commands it runs."""

import importlib.util

import pytest

from preresq.paths import REPO_ROOT

spec = importlib.util.spec_from_file_location("wheelhouse", REPO_ROOT / "scripts" / "wheelhouse.py")
wh = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wh)


def test_have_takes_names_pins_and_pip_freeze():
    have = wh.parse_have(["torch==2.11.0+cu130", "Transformers", "accelerate==1.15.0  # note",
                          "# a comment", "-e git+https://x/y#egg=z", "peft @ file:///wheels/peft.whl",
                          "", "pydantic_core===2.41.5"])
    assert have == {"torch": "torch==2.11.0", "transformers": None, "accelerate": "accelerate==1.15.0",
                    "peft": None, "pydantic-core": "pydantic-core==2.41.5"}
    assert wh.constraints_text(have).splitlines() == [
        *wh.NODE_CONSTRAINTS, "torch==2.11.0", "accelerate==1.15.0", "pydantic-core==2.41.5"]
    assert "omegaconf>=2.3,<2.4" in wh.NODE_CONSTRAINTS and "wandb>=0.26,<0.27" in wh.NODE_CONSTRAINTS


def test_platform_tags_include_older_manylinux():
    tags = wh.platform_tags("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64" and tags[-1] == "manylinux1_x86_64"
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux_2_17_x86_64"} <= set(tags)
    assert wh.platform_tags("macosx_11_0_arm64") == ["macosx_11_0_arm64"]
    flags = wh.target_flags("3.12", "manylinux_2_17_aarch64")
    assert flags[:5] == ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
    assert flags.count("--platform") == len(wh.platform_tags("manylinux_2_17_aarch64"))
    with pytest.raises(SystemExit, match="major.minor"):
        wh.target_flags("3", "manylinux_2_28_x86_64")


def _item(name, version, requires=()):
    return {"metadata": {"name": name, "version": version, "requires_dist": list(requires)}}


REPORT = {"environment": {"sys_platform": "linux", "platform_system": "Linux", "python_version": "3.12"},
          "install": [
              _item("torch", "2.11.0", ['cuda-toolkit[cudart]==13.0.2; platform_system == "Linux"',
                                        "sympy>=1.13", 'pywin32; sys_platform == "win32"']),
              _item("cuda-toolkit", "13.0.2", ['nvidia-cuda-runtime==13.0.96; extra == "cudart"',
                                               'nvidia-cufft; extra == "cufft"']),
              _item("nvidia-cuda-runtime", "13.0.96"), _item("nvidia-cufft", "12.0.0"),
              _item("sympy", "1.14.0", ["mpmath>=1.1"]), _item("mpmath", "1.3.0"),
              _item("trl", "1.16.0", ["datasets>=3", "transformers>=4.56", "accelerate"]),
              _item("datasets", "5.2.0", ["dill", "numpy"]), _item("dill", "0.4.1"),
              _item("numpy", "2.3.0"), _item("transformers", "5.17.0", ["numpy>=1.17"]),
              _item("accelerate", "1.15.0", ["numpy", "torch>=2"]),
              _item("deepspeed", "0.19.8", ["hjson", "torch"]), _item("hjson", "3.1.0")]}


def test_node_closure_follows_dependencies_markers_and_extras():
    have = wh.parse_have(["torch==2.11.0", "transformers", "accelerate"])
    closure = wh.node_closure(REPORT, have)
    assert closure == {"torch", "cuda-toolkit", "nvidia-cuda-runtime", "sympy", "mpmath",
                       "transformers", "numpy", "accelerate"}
    # cufft is an extra torch does not ask for; trl, datasets, dill, deepspeed, hjson the node lacks
    pins = wh.to_download(REPORT, closure, built={"deepspeed"})
    assert pins == ["datasets==5.2.0", "dill==0.4.1", "hjson==3.1.0", "nvidia-cufft==12.0.0", "trl==1.16.0"]


def test_commands(tmp_path):
    out = tmp_path / "wh"
    builds = wh.build_commands(out, wh.parse_have(["torch"]), python="py")
    assert builds[0] == (["py", "-m", "pip", "wheel", "--no-deps", "-w", str(out), "deepspeed==0.19.8"],
                         {"DS_BUILD_OPS": "0"})
    assert builds[1][0][-1] == "antlr4-python3-runtime==4.9.3"
    assert builds[-1][0][-1] == str(REPO_ROOT)   # the project's own wheel
    assert len(wh.build_commands(out, wh.parse_have(["deepspeed"]), python="py")) == 2  # node has it
    flags = wh.target_flags("3.12", "manylinux_2_28_x86_64")
    resolve = wh.resolve_command(out, ["trl>=1.16"], tmp_path / "c.txt", tmp_path / "r.json",
                                 tmp_path / "t", flags, python="py")
    assert resolve[:5] == ["py", "-m", "pip", "install", "--dry-run"]
    for part in ("--ignore-installed", "--report", "--find-links", str(out), "-c", "trl>=1.16", *flags):
        assert part in resolve
    download = wh.download_command(out, ["trl==1.16.0"], flags, python="py")
    assert download[:5] == ["py", "-m", "pip", "download", "--no-deps"] and download[-1] == "trl==1.16.0"


def test_project_requirements_and_dry_run(tmp_path, capsys):
    requirements = wh.project_requirements(REPO_ROOT / "pyproject.toml", ["vllm"])
    assert any(r.startswith("deepspeed") for r in requirements) and any(r.startswith("vllm") for r in requirements)
    with pytest.raises(SystemExit, match="no extra 'nope'"):
        wh.project_requirements(REPO_ROOT / "pyproject.toml", ["nope"])
    assert wh.main(["--out", str(tmp_path / "wh"), "--python-version", "3.12", "--have", "torch",
                    "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "DS_BUILD_OPS=0" in printed and "--python-version 3.12" in printed
    assert not list((tmp_path / "wh").iterdir())   # nothing built or downloaded


def test_the_build_requirements_ship_in_the_wheelhouse(tmp_path, capsys):
    """project.license = "Apache-2.0" needs setuptools 77: pyproject says so, and the wheelhouse
    carries it, so an isolated build on a node with an older setuptools works offline."""
    requires = wh.build_requirements(REPO_ROOT / "pyproject.toml")
    assert requires == ["setuptools>=77"]
    assert wh._toml(REPO_ROOT / "pyproject.toml")["project"]["license"] == "Apache-2.0"
    wh.main(["--out", str(tmp_path / "wh"), "--have", "torch", "--dry-run"])
    assert "setuptools>=77" in capsys.readouterr().out


def test_wheelhouse_runs_without_packaging_installed(tmp_path):
    """Its `packaging` need is met by pip's own copy when the package is not installed."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['packaging'] = None; import runpy; "
            f"runpy.run_path({str(REPO_ROOT / 'scripts' / 'wheelhouse.py')!r}, run_name='wh')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
