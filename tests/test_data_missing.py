"""Missing data: one message naming the file, the setting that places it and data/README.md;
no traceback, exit status 2, from every command (train, eval, prepare_data, demo)."""

from __future__ import annotations

import importlib
import os
import runpy
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from preresq.config import compose
from preresq.data.benchmarks import load_card, read_benchmark, require_media_root
from preresq.data.missing import DataMissingError
from preresq.paths import REPO_ROOT


def _env(data_root, tmp_path):
    # Offline with an empty hub cache: a model download attempted before the data check
    # would end in "Model not available", not in the data message the tests look for.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRERESQ_")}
    return {**env, "PRERESQ_DATA_ROOT": str(data_root), "PRERESQ_OUTPUT_ROOT": str(tmp_path / "out"),
            "PRERESQ_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def _run(command, args, env, tmp_path):
    """``scripts/<command>`` with this Python, or the console script ``command``."""
    entry = ([sys.executable, str(REPO_ROOT / "scripts" / command)] if command.endswith(".py")
             else [str(Path(sys.executable).parent / command)])
    cmd = [*entry, *args, f"hydra.run.dir={tmp_path / 'hydra'}"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)


def _message(stderr, data_root):
    """The error message (after any log lines), checked for what every one must say."""
    assert "Traceback" not in stderr and "error: " in stderr
    message = stderr[stderr.index("error: "):]
    assert f"paths.data_root = {data_root} (PRERESQ_DATA_ROOT is set to {data_root})" in message
    assert "PRERESQ_DATA_ROOT=/your/dir, or paths.data_root=/your/dir" in message
    assert "data/README.md says where each data set goes" in message
    return message


@pytest.mark.parametrize("command", ["train.py", "preresq-train"])
def test_train_without_data_says_where_it_goes(tmp_path, command):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = _run(command, ["+experiment=iqa_6k"], _env(empty, tmp_path), tmp_path)
    assert out.returncode == 2, out.stderr[-3000:]
    message = _message(out.stderr, empty)
    assert f"kadid10k: label file {empty}/kadid10k/dmos.csv (`labels` in configs/data/kadid_6k.yaml)" in message
    assert "Model not available" not in out.stderr  # the data check came before the weights
    assert not (tmp_path / "out" / "train").exists()  # nothing written


def test_eval_without_any_data_fails_naming_every_benchmark(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = _run("eval.py", ["suite=iqa10", f"output_dir={tmp_path / 'eval'}"],
               _env(empty, tmp_path), tmp_path)
    assert out.returncode == 2, out.stderr[-3000:]
    message = _message(out.stderr, empty)
    assert message.startswith("error: no benchmark could be evaluated: all 10 of iqa10")
    for name, file in [("kadid10k_test", "kadid10k/dmos.csv"), ("koniq10k", "koniq10k/")]:
        assert f"{name}: label file {empty}/{file}" in message
    assert "paths.labels_root" in message  # the authors' lists (liu13, sriqa_bench) live there
    assert not (tmp_path / "eval").exists()  # no empty table that looks like a finished run


def test_missing_labels_media_and_manifest_name_the_card_field(tmp_path):
    card = load_card("koniq10k", paths={"data_root": str(tmp_path)})
    with pytest.raises(DataMissingError) as err:
        read_benchmark(card)
    assert err.value.filename == str(tmp_path / "koniq10k" / "koniq10k_scores_and_distributions.csv")
    text = err.value.describe({"data_root": str(tmp_path)})
    assert "`labels` in configs/benchmark/koniq10k.yaml" in text
    assert f"paths.data_root = {tmp_path}" in text and "data/README.md" in text
    assert isinstance(err.value, FileNotFoundError)  # callers catching that still do

    with pytest.raises(DataMissingError, match="media folder .*`media_root` in configs/benchmark/koniq10k"):
        require_media_root(card)
    with pytest.raises(DataMissingError, match="manifest .*missing.jsonl"):
        read_benchmark(replace(card, manifest=str(tmp_path / "missing.jsonl")))
    # A path set outside every configured root: the card's field is what to correct.
    elsewhere = replace(card, labels="/nonexistent/scores.csv")
    with pytest.raises(DataMissingError) as err:
        read_benchmark(elsewhere)
    assert "set in the card itself" in err.value.describe({"data_root": str(tmp_path)})


def test_training_stops_on_a_missing_media_folder_before_the_model(tmp_path):
    from preresq.training.train import build_dataset

    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"img{i}.png {1 + i % 5}\n" for i in range(10)))
    cfg = compose("train", ["+experiment=smoke", f"data.labels={labels}", "data.reader=label_list",
                            "~data.reader_args", "data.splitter=null", "data.split=null",
                            f"data.media_root={tmp_path / 'no_images'}"])
    with pytest.raises(DataMissingError, match="no_images"):
        build_dataset(cfg)


def test_prepare_data_without_labels_exits_2_with_the_message(tmp_path, monkeypatch, capsys):
    from preresq.data.prepare import main

    monkeypatch.setenv("PRERESQ_DATA_ROOT", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(["--benchmark", "koniq10k", "--output", str(tmp_path / "m.jsonl")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}/koniq10k/koniq10k_scores_and_distributions.csv" in err
    assert "PRERESQ_DATA_ROOT is set" in err and "data/README.md" in err
    assert not (tmp_path / "m.jsonl").exists()


def test_demo_with_a_missing_manifest_exits_2_without_a_traceback(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "demo_train.jsonl"
    monkeypatch.setattr(sys, "argv", ["scripts/demo.py", "+experiment=demo", f"+data.manifest={missing}",
                                      f"output_dir={tmp_path / 'demo'}", f"paths.cache_dir={tmp_path}",
                                      f"hydra.run.dir={tmp_path / 'hydra'}"])
    monkeypatch.chdir(REPO_ROOT)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO_ROOT / "scripts" / "demo.py"), run_name="__main__")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"manifest {missing}" in err and "data/README.md" in err and "Traceback" not in err


def test_a_missing_validation_benchmark_stops_before_the_model(tmp_path, monkeypatch):
    """validation.benchmark's labels are read, and its media folder checked, before any
    weights load (not at the first validation, after the model is built)."""
    train_module = importlib.import_module("preresq.training.train")

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the validation data was checked")

    monkeypatch.setattr("preresq.models.load_model", no_loading)
    monkeypatch.setattr("preresq.models.load_processor", no_loading)
    cfg = compose("train", ["+experiment=smoke", "validation.enabled=true",
                            "validation.benchmark=koniq10k", f"paths.data_root={tmp_path}"])
    with pytest.raises(DataMissingError, match="koniq10k_scores_and_distributions.csv"):
        train_module.build_trainer(cfg, "unused", tmp_path / "stage", "main")
