"""The demo clip set (preresq.data.demo_video): build, scores, splits, cards, model input."""

from __future__ import annotations

import numpy as np
import pytest

from preresq.data.demo import level_score
from preresq.data.demo_video import (
    KINDS,
    SPLITS,
    DemoVideoConfig,
    build_demo_video,
    kind_for,
    stutter_source,
)
from preresq.data.records import read_manifest
from preresq.data.video import load_views

# Four photos, 12 frames: 16 clips, built in a few seconds.
SMALL = {"photos": ["astronaut", "camera", "coffee", "chelsea"], "num_frames": 12}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    return build_demo_video(SMALL, root=tmp_path_factory.mktemp("demo_video"))


def all_records(folder):
    return {split: read_manifest(folder / f"{split}.jsonl") for split in SPLITS}


def test_kind_and_stutter_rules():
    # Across len(KINDS) photos every kind meets every level.
    for level in range(1, 4):
        assert {kind_for(p, level, KINDS) for p in range(len(KINDS))} == set(KINDS)
    assert [stutter_source(j, 1) for j in range(6)] == [0, 0, 2, 2, 4, 4]
    assert [stutter_source(j, 2) for j in range(7)] == [0, 0, 0, 3, 3, 3, 6]


def test_config_is_checked():
    with pytest.raises(ValueError, match="unknown demo video parameters"):
        DemoVideoConfig.from_mapping({"frames": 10})
    with pytest.raises(ValueError, match="multiple of 28"):
        DemoVideoConfig(frame_width=100)
    with pytest.raises(ValueError, match="kinds"):
        DemoVideoConfig(kinds=("jpeg",))


def test_builds_scored_video_records_split_by_photo(small_set):
    records = all_records(small_set)
    flat = [r for split in SPLITS for r in records[split]]
    assert len(flat) == 4 * (1 + 3)
    assert [len(records[s]) for s in SPLITS] == [8, 4, 4]  # 2 / 1 / 1 photos
    for split in SPLITS:
        for r in records[split]:
            assert r.modality == "video" and r.benchmark == "vqa_demo" and r.split == split
            assert r.score == r.mos == level_score(r.extra["level"], 3)
            assert (small_set / r.paths[0]).is_file() and (small_set / r.ref).is_file()
            assert r.extra["kind"] in KINDS + ("clean",)
    photos = {s: {r.extra["photo"] for r in records[s]} for s in SPLITS}
    assert not (photos["train"] & photos["val"] or photos["train"] & photos["test"]
                or photos["val"] & photos["test"])
    assert set().union(*photos.values()) == set(SMALL["photos"])
    # Each photo gives one clip per level, so every score is equally common.
    levels = [r.extra["level"] for r in flat]
    assert all(levels.count(level) == 4 for level in range(4))


def test_build_is_deterministic_and_cached(small_set, tmp_path):
    again = build_demo_video(SMALL, root=tmp_path)
    assert again.name == small_set.name
    for split in SPLITS:
        assert (again / f"{split}.jsonl").read_bytes() == (small_set / f"{split}.jsonl").read_bytes()
    # The encoder's bytes may differ run to run; what the model sees must not (beyond codec noise).
    for clip in sorted(small_set.glob("clips/*/*.mp4"))[:4]:
        ours = [np.asarray(v, dtype=np.float32) for v in load_views(clip)]
        theirs = [np.asarray(v, dtype=np.float32) for v in load_views(again / clip.relative_to(small_set))]
        assert all(np.abs(a - b).mean() < 2.0 for a, b in zip(ours, theirs, strict=True)), clip
    assert build_demo_video(SMALL, root=tmp_path) == again  # second call reuses the cache


def test_clips_decode_into_views(small_set):
    import decord

    for r in all_records(small_set)["test"]:
        path = small_set / r.paths[0]
        assert len(decord.VideoReader(str(path))) == 12
        mosaic, *local = load_views(path)
        assert mosaic.size == (4 * 168, 4 * 112) and [v.size for v in local] == [(168, 112)] * 3


def test_stutter_holds_frames(small_set):
    import decord

    [stutter] = [r for split in SPLITS for r in all_records(small_set)[split]
                 if r.extra["kind"] == "stutter" and r.extra["level"] == 1]
    frames = decord.VideoReader(str(small_set / stutter.paths[0])).get_batch(list(range(12))).asnumpy()
    diffs = [np.abs(frames[j + 1].astype(int) - frames[j]).mean() for j in range(11)]
    held, moved = diffs[0::2], diffs[1::2]  # frame 2k+1 repeats 2k; 2k+2 is new
    assert max(held) < min(moved)


def test_cards_read_the_clip_set(tmp_path):
    from preresq.data.benchmarks import load_card, load_data_card, read_benchmark, suite_names
    card = load_card("vqa_demo", paths={"cache_dir": str(tmp_path)})
    assert card.modality == "video" and card.split == "test"
    train = load_data_card("demo_video", paths={"cache_dir": str(tmp_path)})
    assert train.modality == "video" and train.split == "train" and train.val_split == "val"
    assert card.reader_args == train.reader_args
    assert suite_names("vqa_demo") == ["vqa_demo"]
    card = load_card("vqa_demo", paths={"cache_dir": str(tmp_path)},
                     overrides={"reader_args": {"photos": SMALL["photos"], "num_frames": 12}})
    records = read_benchmark(card)
    assert len(records) == 4 and all(r.modality == "video" for r in records)
    assert all((tmp_path / "demo_video" / r.paths[0]).is_file() for r in records)


@pytest.mark.slow
def test_views_feed_the_tiny_model_processor(small_set):
    from omegaconf import OmegaConf

    from preresq.config import load_paths
    from preresq.data.rows import item_images
    from preresq.data.video import default_config
    from preresq.models import load_processor
    from preresq.paths import CONFIG_DIR
    from preresq.prompts import build_messages

    model_cfg = OmegaConf.load(CONFIG_DIR / "model" / "tiny.yaml")
    processor = load_processor(model_cfg, cache_dir=load_paths().cache_dir)
    record = all_records(small_set)["test"][0]
    images = item_images(record, small_set, model_cfg.min_pixels, model_cfg.max_pixels,
                         video_cfg=default_config())
    assert len(images) == 4
    messages = build_messages("vqa", num_images=len(images))
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    batch = processor(text=[text], images=images, return_tensors="pt")
    assert batch["image_grid_thw"].shape[0] == 4
    assert text.count("<|vision_start|>") == 4


@pytest.mark.slow
def test_default_set_builds(tmp_path):
    folder = build_demo_video(root=tmp_path)
    records = all_records(folder)
    assert [len(records[s]) for s in SPLITS] == [16, 8, 8]
    assert {r.extra["kind"] for s in SPLITS for r in records[s]} == set(KINDS) | {"clean"}


@pytest.mark.slow
def test_smoke_video_trains_on_clip_views(tmp_path):
    """`python scripts/train.py +experiment=smoke_video`, shortened: the video rows train."""
    import json

    from preresq.config import compose
    from preresq.paths import REPO_ROOT
    from preresq.training import train

    cfg = compose("train", ["+experiment=smoke_video", f"output_dir={tmp_path / 'run'}",
                            f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}",
                            "trainer.max_steps=2", "trainer.args.logging_steps=1"])
    final = train(cfg)
    assert (final / "model.safetensors").is_file()
    logged = [json.loads(x) for x in (final.parent / "metrics.jsonl").read_text().splitlines()]
    # The VQA reward (two sub-scores per answer) ran on the clips' rows.
    assert any("rewards/preresq_vqa/invalid_rate" in m for m in logged)


@pytest.mark.slow
def test_eval_suite_vqa_demo_with_the_tiny_model(tmp_path):
    """`python scripts/eval.py suite=vqa_demo model=tiny`, shortened to 4 clips."""
    import json

    from preresq.config import compose
    from preresq.evaluation import evaluate
    from preresq.paths import REPO_ROOT

    out = tmp_path / "eval"
    cfg = compose("eval", ["suite=vqa_demo", "model=tiny", f"output_dir={out}", "limit=4",
                           "batch_size=2", "max_new_tokens=8", "bootstrap_samples=20", "progress=false",
                           f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}"])
    evaluate(cfg)
    rows = [json.loads(x) for x in (out / "predictions" / "vqa_demo.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(isinstance(r["completion"], str) and "error" not in r for r in rows)
    assert json.loads((out / "results.json").read_text())["benchmarks"]["vqa_demo"]["n"] == 4
