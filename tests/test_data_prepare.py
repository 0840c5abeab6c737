"""prepare_data: every bad file reported with its line, nothing written on failure."""

from __future__ import annotations

import pytest
from PIL import Image

from preresq.data.benchmarks import card_from_config
from preresq.data.prepare import DataCheckError, main, prepare_manifest
from preresq.data.records import read_manifest


@pytest.fixture()
def folder(tmp_path):
    """Five labelled images: #2 is missing, #4 is truncated."""
    media = tmp_path / "images"
    media.mkdir()
    for i in (1, 3, 5):
        Image.new("RGB", (64, 48), (40 * i, 0, 0)).save(media / f"img{i}.png")
    Image.new("RGB", (64, 48), (9, 9, 9)).save(tmp_path / "whole.jpg", quality=95)
    data = (tmp_path / "whole.jpg").read_bytes()
    (media / "img4.jpg").write_bytes(data[: len(data) // 2])
    labels = tmp_path / "labels.txt"
    labels.write_text("img1.png 1.0\nimg2.png 2.0\nimg3.png 3.0\nimg4.jpg 4.0\nimg5.png 5.0\n")
    return tmp_path


def _card(folder, **kw):
    return card_from_config({"name": "fixture", "modality": "image", "media_root": str(folder / "images"),
                             "labels": str(folder / "labels.txt"), "reader": "label_list", **kw})


def test_reports_missing_and_truncated_by_name_and_line(folder):
    out = folder / "out" / "fixture.jsonl"
    with pytest.raises(DataCheckError) as err:
        prepare_manifest(_card(folder, expected_count=5), out)
    message = str(err.value)
    assert "2 of 5 media files are bad" in message
    assert "line 2: img2.png: missing" in message
    assert "line 4: img4.jpg: cannot be decoded" in message
    assert "--drop-bad" in message
    assert not out.exists() and not list(folder.glob("out/*"))


def test_drop_bad_writes_the_good_ones(folder):
    out = folder / "fixture.jsonl"
    result = prepare_manifest(_card(folder, expected_count=5), out, drop_bad=True)
    assert (result.written, result.read, len(result.dropped)) == (3, 5, 2)
    assert "dropped 2 bad files of 5" in result.summary()
    records = read_manifest(out)
    assert [r.id for r in records] == ["img1.png", "img3.png", "img5.png"]
    assert [r.score for r in records] == [1.0, 3.0, 5.0]  # rescaled over all five labels


def test_count_mismatch_is_reported_with_bad_files(folder):
    (folder / "images" / "img2.png").write_bytes((folder / "images" / "img1.png").read_bytes())
    (folder / "images" / "img4.jpg").write_bytes((folder / "whole.jpg").read_bytes())
    out = folder / "m.jsonl"
    with pytest.raises(DataCheckError, match="5 items read from .*labels.txt, but the card expects 6"):
        prepare_manifest(_card(folder, expected_count=6), out)
    assert not out.exists()
    assert prepare_manifest(_card(folder, expected_count=6), out, check_count=False).written == 5


def test_command_line(folder, capsys):
    out = folder / "cli.jsonl"
    args = ["--labels", str(folder / "labels.txt"), "--reader", "label_list", "--name", "fixture",
            "--modality", "image", "--media-root", str(folder / "images"), "--output", str(out)]
    assert main(args) == 1
    printed = capsys.readouterr().out
    assert "line 2: img2.png: missing" in printed and "line 4: img4.jpg" in printed
    assert not out.exists()
    assert main(args + ["--drop-bad"]) == 0
    assert "wrote 3 items" in capsys.readouterr().out
    assert len(read_manifest(out)) == 3
