"""scripts/model_card.py: a checkpoint's README.md with Hub metadata, training, prompt and results."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from huggingface_hub import ModelCard

from preresq.config import compose
from preresq.evaluation.identity import weights_fingerprint
from preresq.model_card import (
    MARKER,
    CardExistsError,
    ResultsMismatchError,
    eval_results,
    main,
    write_card,
    write_training_card,
)
from preresq.paths import REPO_ROOT
from preresq.prompts import load_template
from preresq.training.run_info import write_run_info
from preresq.training.stages import stage_configs

TRL_README = ("---\nlibrary_name: transformers\nmodel_name: main\ntags:\n- generated_from_trainer\n"
              "- grpo\n- trl\n---\n\n# Model Card for main\n\nThis model was trained with GRPO.\n")


@pytest.fixture
def final(tmp_path, tiny_model_dir, monkeypatch):
    """A stage's final/ as scripts/train.py leaves it (weights, run_info.json, config.yaml),
    under its stage and run folders, for `+experiment=demo` started from the 7B hub id."""
    monkeypatch.setattr(sys, "argv", ["scripts/train.py", "+experiment=demo"])
    run = tmp_path / "run"
    cfg = compose("train", ["+experiment=demo", f"output_dir={run}"])
    (name, scfg), = stage_configs(cfg)
    folder = run / name / "final"
    shutil.copytree(tiny_model_dir, folder)
    write_run_info(run, cfg, {"stages": [name], "initial": "Qwen/Qwen2.5-VL-7B-Instruct"})
    write_run_info(run / name, scfg, {"stage": name, "init": "Qwen/Qwen2.5-VL-7B-Instruct"})
    write_run_info(folder, scfg, {"stage": name, "init": "Qwen/Qwen2.5-VL-7B-Instruct",
                                  "global_step": 600})
    return folder


def _results(run_dir, weights, benchmarks):
    run_dir.mkdir(parents=True, exist_ok=True)
    identity = {"model": {"weights": weights}, "prompt": {}}
    (run_dir / "results.json").write_text(json.dumps({"benchmarks": benchmarks, "identity": identity,
                                                      "model_path": "/somewhere"}))
    return run_dir


def test_card_has_hub_metadata_training_and_prompt(final):
    path = write_card(final)
    card = ModelCard.load(path)
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "image-text-to-text"
    assert data.base_model == "Qwen/Qwen2.5-VL-7B-Instruct" and data.license == "apache-2.0"
    assert data.datasets == ["iqa_demo"] and {"preresq", "image-quality-assessment"} <= set(data.tags)
    assert data.eval_results is None
    text = card.text
    assert "| experiment | demo |" in text and "| stages | main |" in text
    assert "| optimizer steps (this stage) | 600 |" in text
    assert "`preresq` (" in text and "w_balance=0.0" in text  # reward preset and weights
    assert load_template("demo_digit").strip() in text
    assert f'create_metric("{final}", prompt="demo_digit")' in text
    assert MARKER in card.content and "Not evaluated yet" in text


def test_results_become_model_index_entries_equal_to_results_json(final, tmp_path):
    weights = weights_fingerprint(final)
    run = _results(tmp_path / "eval", weights, {
        "iqa_demo": {"n": 45, "n_valid": 45, "srcc": 0.712345678, "plcc": 0.6843, "srcc_ci": [0.55, 0.82]},
        "koniq10k": {"n": 10, "n_valid": 3, "srcc": None, "plcc": 0.5},
        "bid": {"skipped": "data missing"}})
    card = ModelCard.load(write_card(final, [run]))
    got = {(r.dataset_type, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert got == {("iqa_demo", "srcc"): 0.712345678, ("iqa_demo", "plcc"): 0.6843,
                   ("koniq10k", "plcc"): 0.5}
    demo = [r for r in card.data.eval_results if r.dataset_type == "iqa_demo"][0]
    assert demo.task_type == "image-quality-assessment" and demo.dataset_split == "test"
    assert "| koniq10k | undefined | 0.5000 |" in card.text and "skipped: data missing" in card.text
    assert eval_results({"benchmarks": {"vqa_demo": {"srcc": 0.3, "plcc": 0.2}}})[0].task_type == \
        "video-quality-assessment"


def test_results_of_other_weights_are_refused(final, tmp_path, capsys):
    other = _results(tmp_path / "other", {"sha256": "0" * 64, "files": {}}, {"iqa_demo": {"srcc": 0.9}})
    with pytest.raises(ResultsMismatchError, match="other weights"):
        write_card(final, [other])
    fake = _results(tmp_path / "fake", None, {"iqa_demo": {"srcc": 0.9}})
    with pytest.raises(ResultsMismatchError, match="stand-in predictor"):
        write_card(final, [fake])
    assert main([str(final), "--results", str(tmp_path / "nothing")]) == 2
    assert "results.json not found" in capsys.readouterr().err
    assert not (final / "README.md").exists()


def test_a_card_it_did_not_write_is_kept_unless_forced(final, capsys):
    readme = final / "README.md"
    readme.write_text(TRL_README)
    with pytest.raises(CardExistsError, match="TRL's generic README"):
        write_card(final)
    assert main([str(final)]) == 2 and "--force" in capsys.readouterr().err
    assert write_training_card(final) is None and readme.read_text() == TRL_README
    assert main([str(final), "--force"]) == 0
    assert MARKER in readme.read_text()
    assert main([str(final), "--name", "renamed"]) == 0  # its own card: rewritten freely
    assert ModelCard.load(readme).data.model_name == "renamed"


@pytest.mark.slow
def test_eval_then_card_on_the_tiny_model(digit_model_dir, tmp_path):
    """The issue's check: scripts/eval.py on a checkpoint, then scripts/model_card.py
    CKPT --results RUN; the card's eval_results hold that run's SRCC and PLCC."""
    ckpt, run = tmp_path / "ckpt", tmp_path / "run"
    shutil.copytree(digit_model_dir, ckpt)
    env_cmd = [sys.executable, str(REPO_ROOT / "scripts" / "eval.py"), "suite=iqa_demo", "model=tiny",
               "prompt=demo_digit", f"model.name_or_path={ckpt}", "max_new_tokens=1",
               f"output_dir={run}", "limit=24", "bootstrap_samples=20", "plots=false", "progress=false"]
    subprocess.run(env_cmd, check=True, cwd=REPO_ROOT, capture_output=True)
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "model_card.py"), str(ckpt),
                           "--results", str(run)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    results = json.loads((run / "results.json").read_text())["benchmarks"]["iqa_demo"]
    assert results["srcc"] is not None and results["plcc"] is not None  # the model's scores vary
    card = ModelCard.load(ckpt / "README.md")
    got = {r.metric_type: r.metric_value for r in card.data.eval_results if r.dataset_type == "iqa_demo"}
    assert got == {"srcc": results["srcc"], "plcc": results["plcc"]}
    assert load_template("demo_digit").strip() in card.text  # the prompt its evaluation asked with
    assert 'prompt="demo_digit")' in card.text and "| iqa_demo |" in card.text
