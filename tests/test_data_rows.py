"""Training rows: lazy images resized by the smart_resize rules, prompts TRL accepts as they are."""

from __future__ import annotations

import pytest
from PIL import Image

from preresq.data.records import Record, write_manifest
from preresq.data.rows import MediaError, build_train_dataset, item_images, resize_image

PROMPT = {"templates": ["demo_digit"], "num_scores": 1, "answer_format": "bare"}


def _record(name, score=3.0, paths=None, **kw):
    return Record(id=name, paths=paths or [name], mos=score, score=score, benchmark="fixture", **kw)


@pytest.fixture()
def media(tmp_path):
    Image.new("RGB", (112, 112), (200, 10, 10)).save(tmp_path / "a.png")
    Image.new("L", (300, 200), 128).save(tmp_path / "b.png")  # grey, odd size
    Image.new("RGB", (112, 112), (0, 0, 255)).save(tmp_path / "c.jpg", quality=90)
    return tmp_path


def test_item_images_resize_by_smart_resize(media):
    (a,) = item_images(_record("a.png"), media, min_pixels=3136, max_pixels=12544)
    assert a.size == (112, 112) and a.mode == "RGB"
    (b,) = item_images(_record("b.png"), media, min_pixels=3136, max_pixels=12544)
    assert b.mode == "RGB" and b.size[0] % 28 == 0 and b.size[1] % 28 == 0
    assert 3136 <= b.size[0] * b.size[1] <= 12544
    from qwen_vl_utils import smart_resize

    assert (b.size[1], b.size[0]) == smart_resize(200, 300, factor=28, min_pixels=3136, max_pixels=12544)
    big = resize_image(Image.new("RGB", (56, 56)), min_pixels=112 * 112, max_pixels=224 * 224)
    assert big.size == (112, 112)
    two = item_images(_record("ab", paths=["a.png", "c.jpg"]), media, 3136, 12544)
    assert [im.size for im in two] == [(112, 112), (112, 112)]


def test_item_images_errors_name_file_and_lines(media):
    (media / "trunc.png").write_bytes((media / "a.png").read_bytes()[:60])
    with pytest.raises(MediaError, match=r"missing media file .*gone.png \(item 'gone.png', manifest line 7\)"):
        item_images(_record("gone.png"), media, 3136, 12544, line=7)
    bad = _record("trunc.png", extra={"label_line": 12})
    with pytest.raises(MediaError, match=r"cannot decode .*trunc.png \(item 'trunc.png', manifest line 3, label line 12\)"):
        item_images(bad, media, 3136, 12544, line=3)


def test_train_dataset_rows_are_lazy_and_complete(media, tmp_path):
    records = [_record("a.png", 5.0), _record("b.png", 1.0), _record("c.jpg", 3.0)]
    ds = build_train_dataset(records, media, {**PROMPT, "templates": ["demo_digit", "iqa"]}, 3136, 12544)
    assert len(ds) == 3
    assert "images" not in ds.column_names  # nothing decoded until a row is read
    row = ds[1]
    assert set(row) == {"prompt", "images", "mos", "item_id", "benchmark"}
    assert (row["mos"], row["item_id"], row["benchmark"]) == (1.0, "b.png", "fixture")
    assert len(row["images"]) == 1 and isinstance(row["images"][0], Image.Image)
    content = row["prompt"][0]["content"]
    assert row["prompt"][0]["role"] == "user" and content[0] == {"type": "image"}
    assert content[1]["type"] == "text"
    # Round-robin phrasing over the templates.
    assert ds[0]["prompt"][0]["content"][1]["text"] != row["prompt"][0]["content"][1]["text"]
    assert ds[2]["prompt"] == ds[0]["prompt"]
    (media / "a.png").unlink()
    fresh = build_train_dataset(records, media, PROMPT, 3136, 12544)  # ds keeps a.png decoded
    with pytest.raises(MediaError, match="a.png.*manifest line 1"):
        fresh[0]
    with pytest.raises(ValueError, match="repeat an item id"):
        build_train_dataset(records + records[:1], media, PROMPT, 3136, 12544)
    write_manifest(tmp_path / "unused.jsonl", records)  # records stay serialisable


def test_trl_fills_our_placeholders_without_adding_any(media):
    """GRPOTrainer (TRL 1.16) fills unfilled {"type": "image"} slots with the row's images."""
    from trl.data_utils import prepare_multimodal_messages

    records = [_record("a.png"), _record("ab", paths=["a.png", "c.jpg"])]
    ds = build_train_dataset(records, media, PROMPT, 3136, 12544)
    for row in (ds[0], ds[1]):
        filled = prepare_multimodal_messages(row["prompt"], images=row["images"])
        parts = [p for p in filled[0]["content"] if p["type"] == "image"]
        assert len(parts) == len(row["images"]) and all("image" in p for p in parts)
