"""The evaluation scripts: eval.py offline on the demo, vLLM's error (the GPU check: test_gpu_eval_check)."""

from __future__ import annotations

import importlib.util
import json
import runpy
import sys

import pytest
from eval_fakes import eval_cfg

from preresq.evaluation import evaluate
from preresq.paths import REPO_ROOT


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_eval_script_runs_offline_on_the_demo(tmp_path, monkeypatch, capsys):
    # The script's own Hydra entry point, run in this process (a subprocess would pay a
    # fresh torch import): the command line is parsed from sys.argv exactly as in a shell.
    out = tmp_path / "eval"
    argv = ["scripts/eval.py", "suite=iqa_demo", "model=tiny", f"output_dir={out}",
            "limit=12", "batch_size=4", "max_new_tokens=8", "bootstrap_samples=50", "progress=false",
            f"hydra.run.dir={tmp_path / 'hydra'}"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.chdir(REPO_ROOT)
    # run_path as __main__, so Hydra resolves config_path="../configs" from the script's file.
    runpy.run_path(str(REPO_ROOT / "scripts" / "eval.py"), run_name="__main__")
    assert "| iqa_demo | 12 |" in capsys.readouterr().out
    rows = [json.loads(x) for x in (out / "predictions" / "iqa_demo.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(isinstance(r["completion"], str) for r in rows)
    results = json.loads((out / "results.json").read_text())
    assert results["benchmarks"]["iqa_demo"]["n"] == 12
    assert (out / "results.md").is_file() and (out / "plots" / "iqa_demo.png").is_file()


def test_eval_script_names_a_missing_model_without_a_traceback(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "no_such_checkpoint"
    monkeypatch.setattr(sys, "argv", ["scripts/eval.py", "suite=iqa_demo", f"model.name_or_path={missing}",
                                      f"output_dir={tmp_path / 'eval'}", f"hydra.run.dir={tmp_path / 'hydra'}"])
    monkeypatch.chdir(REPO_ROOT)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO_ROOT / "scripts" / "eval.py"), run_name="__main__")
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert message.startswith("error: Model not available") and str(missing) in message


def test_score_script_scores_a_file(tmp_path, tiny_model_dir, monkeypatch, capsys):
    from PIL import Image

    image = tmp_path / "a.png"
    Image.new("RGB", (56, 56), (120, 30, 200)).save(image)
    monkeypatch.setattr(sys, "argv", ["scripts/score.py", str(image), "--model", str(tiny_model_dir),
                                      "model=tiny", "prompt=demo_digit", "max_new_tokens=2", "--json"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO_ROOT / "scripts" / "score.py"), run_name="__main__")
    assert exit_info.value.code == 0
    assert json.loads(capsys.readouterr().out)[0]["path"] == str(image)


def test_vllm_backend_says_how_to_install_it(tmp_path):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    from preresq.evaluation.vllm_backend import VLLMNotInstalledError

    with pytest.raises(VLLMNotInstalledError, match=r"pip install 'preresq\[vllm\]'.*predictor=hf"):
        evaluate(eval_cfg(tmp_path, "predictor=vllm", "limit=2"))
