"""preresq-score on folders: recursion order, the CSV, resuming, refusals, the default model."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from eval_fakes import FakePredictor, fake_answer
from PIL import Image

from preresq.config import compose
from preresq.evaluation import score
from preresq.evaluation.media_files import media_files
from preresq.evaluation.score_csv import COLUMNS, identity_file
from preresq.evaluation.scorer import file_images

FAKE = ["model=tiny", "prompt=demo_digit", "batch_size=2"]


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _images(folder, count):
    """``count`` random images spread over sub-folders; returns their names, sorted."""
    rng = np.random.default_rng(0)
    names = []
    for i in range(count):
        name = f"{'sub/' if i % 3 == 0 else ''}img{i:02d}.png"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)).save(folder / name)
        names.append(name)
    return sorted(names)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_folders_are_walked_recursively_in_a_stable_order(tmp_path):
    root = tmp_path / "media"
    for name in ["z.png", "a/b.JPG", "a/c.mp4", "B.png", "a/deeper/d.webm", "notes.txt", "a/.DS_Store"]:
        _touch(root / name)
    single = _touch(tmp_path / "single.bmp")
    found, others = media_files([single, root])
    assert [f.name for f in found] == [single.as_posix(), "B.png", "a/b.JPG", "a/c.mp4",
                                       "a/deeper/d.webm", "z.png"]
    assert found[2].path == root / "a" / "b.JPG"
    assert sorted(p.name for p in others) == [".DS_Store", "notes.txt"]
    other = tmp_path / "other"
    _touch(other / "z.png")
    with pytest.raises(ValueError, match="both be named 'z.png'"):
        media_files([root, other])
    with pytest.raises(FileNotFoundError, match="not a file or folder"):
        media_files([tmp_path / "nowhere"])


def test_csv_rows_resume_after_an_interruption(tmp_path, capsys):
    folder = tmp_path / "photos"
    names = _images(folder, 7)
    (folder / "readme.txt").write_text("not an image")
    out = tmp_path / "scores.csv"

    # Interrupted (a Ctrl-C) after two batches of two: those rows are on disk.
    assert score.main([str(folder), "--csv", str(out), *FAKE], FakePredictor(stop_after=4)) == 130
    rows = _rows(out)
    assert tuple(rows[0]) == COLUMNS and [r[0] for r in rows[1:]] == names[:4]
    assert "run the same command again" in capsys.readouterr().err

    # A row cut short by a kill is removed and scored again.
    with out.open("a") as f:
        f.write(f"{names[4]},3")
    rerun = FakePredictor()
    assert score.main([str(folder), "--csv", str(out), *FAKE], rerun) == 0
    assert rerun.items == 3  # only the rest
    captured = capsys.readouterr()
    assert "4 of 7 files already scored, 3 to score" in captured.err
    assert "cut short" in captured.err and "readme.txt" in captured.err
    assert names[4] in captured.out  # the text lines of the newly scored files

    # The same file as an uninterrupted run's, row for row.
    whole = tmp_path / "whole.csv"
    assert score.main([str(folder), "--csv", str(whole), *FAKE], FakePredictor()) == 0
    assert out.read_bytes() == whole.read_bytes()
    rows = _rows(out)[1:]
    assert [r[0] for r in rows] == names
    model = compose("eval", FAKE).model
    for name, value, valid, error in rows:  # the fake's answer to the pixels the model saw
        answer = fake_answer(file_images(folder / name, "image", model.min_pixels, model.max_pixels))
        assert (value, valid, error) == ((str(float(answer)), "true", "") if answer.isdigit()
                                         else ("", "false", ""))
    assert {"false", "true"} == {r[2] for r in rows}  # the fake gives both kinds here

    # Everything scored: a rerun asks nothing.
    again = FakePredictor()
    assert score.main([str(folder), "--csv", str(out), *FAKE], again) == 0 and again.items == 0


def test_a_csv_of_another_setup_or_not_ours_is_refused_untouched(tmp_path, capsys):
    folder = tmp_path / "photos"
    _images(folder, 3)
    out = tmp_path / "scores.csv"
    assert score.main([str(folder), "--csv", str(out), *FAKE], FakePredictor()) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert score.main([str(folder), "--csv", str(out), *FAKE, "decoding.repetition_penalty=1.05"],
                      FakePredictor()) == 2
    err = capsys.readouterr().err
    assert "another setup" in err and "decoding.repetition_penalty: 1.0 -> 1.05" in err
    assert out.read_bytes() == before

    mine = tmp_path / "mine.csv"
    mine.write_text("name,score\nx.png,4\n")
    assert score.main([str(folder), "--csv", str(mine), *FAKE], FakePredictor()) == 2
    assert "not written by preresq-score" in capsys.readouterr().err
    assert mine.read_text() == "name,score\nx.png,4\n" and not identity_file(mine).exists()


def test_the_default_model_is_the_release_with_its_prompt():
    assert score.with_default_model(["batch_size=2"]) == ["model=preresq_r1", "batch_size=2"]
    assert score.with_default_model(["model=tiny"]) == ["model=tiny"]
    assert score.with_default_model(["model.name_or_path=/x"])[0] == "model=preresq_r1"
    cfg = compose("eval", score.with_default_model([]))
    assert list(cfg.prompt.image.templates) == ["preresq_r1_release"]
    assert cfg.model.name_or_path == os.environ.get("PRERESQ_MODEL_RELEASE", "DanceSkyCode/PreResIQA-R1")


def test_videos_without_a_video_prompt_and_training_checkpoints_are_refused(tmp_path, capsys):
    clip = _touch(tmp_path / "clip.mp4")
    fake = FakePredictor()
    assert score.main([str(clip)], fake) == 2 and fake.calls == 0
    assert "no video question" in capsys.readouterr().err
    run = tmp_path / "final"
    _touch(run / "run_info.json")
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32)).save(image)
    assert score.main([str(image), "--model", str(run)], fake) == 2
    assert "prompt=default" in capsys.readouterr().err


def test_missing_release_weights_say_how_to_get_them(tmp_path):
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32)).save(image)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRERESQ_")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), OMP_NUM_THREADS="1",
               PRERESQ_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-m", "preresq.evaluation.score", str(image),
                          "--csv", str(tmp_path / "s.csv")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert "huggingface-cli download DanceSkyCode/PreResIQA-R1" in out.stderr
    assert "--model /models/<name>" in out.stderr and "PRERESQ_MODEL_RELEASE" in out.stderr
    assert not (tmp_path / "s.csv").exists()  # nothing written before the weights are there


def test_csv_with_the_tiny_model_records_its_weights(tmp_path, tiny_model_dir, capsys):
    import json

    folder = tmp_path / "photos"
    names = _images(folder, 3)
    out = tmp_path / "scores.csv"
    args = [str(folder), "--csv", str(out), "--model", str(tiny_model_dir), "model=tiny",
            "prompt=demo_digit", "max_new_tokens=2"]
    assert score.main(args) == 0
    assert [r[0] for r in _rows(out)[1:]] == names
    identity = json.loads(identity_file(out).read_text())
    assert len(identity["model"]["weights"]["sha256"]) == 64
    assert identity["prompt"]["image"]["template"].startswith("Rate the image quality")
    assert set(identity["prompt"]) == {"image", "video"}  # both: adding videos later still resumes
    before = out.read_bytes()
    assert score.main(args) == 0 and out.read_bytes() == before  # nothing left to score
    assert "3 of 3 files already scored, 0 to score" in capsys.readouterr().err
