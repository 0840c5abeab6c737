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


def _clip(path, width, height, frames=12):
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 10 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_checks_what_the_loader_does_and_names_every_bad_file(tmp_path):
    """Files Pillow or PyAV open but the training loader refuses are reported, with their lines."""
    from preresq.data.prepare import LoaderSettings
    from preresq.data.rows import item_images

    media = tmp_path / "media"
    media.mkdir()
    Image.new("RGB", (64, 48)).save(media / "ok.png")
    Image.new("RGB", (201 * 3, 3)).save(media / "strip.png")   # decodes; the resize rule refuses it
    _clip(media / "ok.mp4", 64, 48)
    _clip(media / "thin.mp4", 404, 2)                          # first frame decodes; views refused
    (tmp_path / "images.txt").write_text("ok.png 1\nstrip.png 2\n")
    (tmp_path / "videos.txt").write_text("ok.mp4 1\nthin.mp4 2\ngone.mp4 3\n")
    messages = {}
    for modality, labels in (("image", "images.txt"), ("video", "videos.txt")):
        card = card_from_config({"name": modality, "modality": modality, "media_root": str(media),
                                 "labels": str(tmp_path / labels), "reader": "label_list"})
        with pytest.raises(DataCheckError) as err:
            prepare_manifest(card, tmp_path / f"{modality}.jsonl")
        messages[modality] = str(err.value)
    assert "1 of 2 media files are bad" in messages["image"]
    assert "line 2: strip.png: cannot be decoded: " in messages["image"]
    assert "aspect ratio over 200" in messages["image"]
    assert "2 of 3 media files are bad" in messages["video"]
    assert "line 2: thin.mp4: cannot be decoded: " in messages["video"] and "404x2" in messages["video"]
    assert "line 3: gone.mp4: missing" in messages["video"]
    # What passed the check is what the loader gives: the same function, the same settings.
    settings = LoaderSettings.from_configs("tiny", {"grid": 2})
    assert (settings.min_pixels, settings.video["grid"]) == (3136, 2)
    card = card_from_config({"name": "v", "modality": "video", "media_root": str(media),
                             "labels": str(tmp_path / "one.txt"), "reader": "label_list"})
    (tmp_path / "one.txt").write_text("ok.mp4 1\n./ok.mp4x 2\n")
    (media / "ok.mp4x").write_bytes((media / "ok.mp4").read_bytes())
    prepare_manifest(card, tmp_path / "v.jsonl", settings=settings)
    record = read_manifest(tmp_path / "v.jsonl")[0]
    views = item_images(record, media, settings.min_pixels, settings.max_pixels, settings.video)
    assert len(views) == 1 + 3 and all(v.mode == "RGB" for v in views)
    assert views[0].size == (112, 112)  # the 2x2 grid of 56x56 tiles asked for, within the tiny bounds


def test_video_error_in_training_rows_names_the_label_line(tmp_path):
    from preresq.data.records import Record
    from preresq.data.rows import MediaError, item_images

    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 1000)
    record = Record(id="bad.mp4", paths=["bad.mp4"], mos=1, score=1, benchmark="b", modality="video",
                    extra={"label_line": 9})
    with pytest.raises(MediaError, match=r"bad\.mp4.*label line 9"):
        item_images(record, tmp_path, 3136, 12544)


def test_command_line_video_settings(folder, capsys):
    args = ["--labels", str(folder / "labels.txt"), "--reader", "label_list", "--name", "fixture",
            "--modality", "image", "--media-root", str(folder / "images"),
            "--output", str(folder / "o.jsonl"), "--drop-bad", "--model", "tiny", "--video", "grid=2"]
    assert main(args) == 0
    with pytest.raises(ValueError, match="unknown video view settings"):
        main(args[:-1] + ["gird=2"])
