"""The demo clip set (preresq.data.demo_video): build, scores, splits, cards, model input."""

from __future__ import annotations

import numpy as np
import pytest

from preresq.data.demo import level_score
from preresq.data.demo_video import (
    FLICKER_GAIN,
    KINDS,
    SPLITS,
    DemoVideoConfig,
    build_demo_video,
    flicker_gains,
    stutter_source,
)
from preresq.data.records import read_manifest
from preresq.data.video import load_views

# Four photos (8 halves), 12 frames, 3 kinds at 2 levels: 56 clips, built in a few seconds.
SMALL = {"photos": ["astronaut", "camera", "coffee", "chelsea"], "num_frames": 12,
         "kinds": ["white_noise", "stutter", "flicker"], "max_level": 2}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    return build_demo_video(SMALL, root=tmp_path_factory.mktemp("demo_video"))


def all_records(folder):
    return {split: read_manifest(folder / f"{split}.jsonl") for split in SPLITS}


def test_stutter_and_flicker_rules():
    assert flicker_gains(4, 2, 4, 0) == [1 + FLICKER_GAIN / 2, 1 - FLICKER_GAIN / 2] * 2
    assert flicker_gains(3, 4, 4, 1) == [1 - FLICKER_GAIN, 1 + FLICKER_GAIN, 1 - FLICKER_GAIN]
    assert [stutter_source(j, 1) for j in range(6)] == [0, 0, 2, 2, 4, 4]
    assert [stutter_source(j, 2) for j in range(7)] == [0, 0, 0, 3, 3, 3, 6]


def test_split_by_photo_keeps_whole_photos_apart(tmp_path):
    folder = build_demo_video({**SMALL, "split_by": "photo", "kinds": ["stutter"], "max_level": 1},
                              root=tmp_path)
    records = all_records(folder)
    photos = {s: {r.extra["photo"] for r in records[s]} for s in SPLITS}
    assert [len(photos[s]) for s in SPLITS] == [2, 1, 1] and len(set().union(*photos.values())) == 4


def test_config_is_checked():
    with pytest.raises(ValueError, match="unknown demo video parameters"):
        DemoVideoConfig.from_mapping({"frames": 10})
    with pytest.raises(ValueError, match="multiple of 28"):
        DemoVideoConfig(frame_width=100)
    with pytest.raises(ValueError, match="kinds"):
        DemoVideoConfig(kinds=("jpeg",))
    with pytest.raises(ValueError, match="split_by"):
        DemoVideoConfig(split_by="crop")
    with pytest.raises(ValueError, match="smaller than a frame"):
        DemoVideoConfig(photo_side=100)


def test_builds_scored_video_records_split_by_source(small_set):
    records = all_records(small_set)
    flat = [r for split in SPLITS for r in records[split]]
    per_source = 1 + 3 * 2  # clean + every kind at every level
    # 4 / 2 / 2 photo halves; the train split lists each clean clip once per kind (balance).
    assert [len(records[s]) for s in SPLITS] == [4 * (per_source + 2), 2 * per_source, 2 * per_source]
    for split in SPLITS:
        for r in records[split]:
            assert r.modality == "video" and r.benchmark == "vqa_demo" and r.split == split
            assert r.score == r.mos == level_score(r.extra["level"], 2)
            assert (small_set / r.paths[0]).is_file() and (small_set / r.ref).is_file()
            assert r.extra["kind"] in KINDS + ("clean",)
        # Every kind at every level in every split.
        assert {(r.extra["kind"], r.extra["level"]) for r in records[split]} == \
            {("clean", 0)} | {(k, level) for k in SMALL["kinds"] for level in (1, 2)}
    sources = {s: {r.extra["source"] for r in records[s]} for s in SPLITS}
    assert not (sources["train"] & sources["val"] or sources["train"] & sources["test"]
                or sources["val"] & sources["test"])
    assert set().union(*sources.values()) == {f"{p}_{h}" for p in SMALL["photos"] for h in "ab"}
    # In train every score is equally common (clean clips repeated once per kind).
    levels = [r.extra["level"] for r in records["train"]]
    assert all(levels.count(level) == 4 * 3 for level in range(3))
    assert len({r.id for r in flat}) == len(flat)


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
        assert mosaic.size == (4 * 56, 4 * 56) and [v.size for v in local] == [(56, 56)] * 3


def test_stutter_holds_frames(small_set):
    import decord

    [stutter] = [r for split in SPLITS for r in all_records(small_set)[split]
                 if r.extra["kind"] == "stutter" and r.extra["level"] == 1 and r.extra["source"] == "coffee_a"]
    frames = decord.VideoReader(str(small_set / stutter.paths[0])).get_batch(list(range(12))).asnumpy()
    diffs = [np.abs(frames[j + 1].astype(int) - frames[j]).mean() for j in range(11)]
    held, moved = diffs[0::2], diffs[1::2]  # frame 2k+1 repeats 2k; 2k+2 is new
    assert max(held) < min(moved)


def test_flicker_alternates_brightness(small_set):
    import decord

    clips = {r.extra["level"]: r for split in SPLITS for r in all_records(small_set)[split]
             if r.extra["kind"] in ("flicker", "clean") and r.extra["source"] == "chelsea_a"}
    means = {level: decord.VideoReader(str(small_set / r.paths[0])).get_batch(list(range(12)))
             .asnumpy().astype(float).mean(axis=(1, 2, 3)) for level, r in clips.items()}
    for level in (1, 2):
        ratio = means[level] / means[0]
        jumps = np.sign(np.diff(ratio))
        assert all(jumps[1:] == -jumps[:-1])  # up, down, up...: brighter and darker in turn
    assert np.ptp(means[2] / means[0]) > np.ptp(means[1] / means[0]) > 0.1


def test_cards_read_the_clip_set(tmp_path):
    from preresq.data.benchmarks import load_card, load_data_card, read_benchmark, suite_names
    card = load_card("vqa_demo", paths={"cache_dir": str(tmp_path)})
    assert card.modality == "video" and card.split == "test"
    train = load_data_card("demo_video", paths={"cache_dir": str(tmp_path)})
    assert train.modality == "video" and train.split == "train" and train.val_split == "val"
    assert card.reader_args == train.reader_args
    assert suite_names("vqa_demo") == ["vqa_demo"]
    card = load_card("vqa_demo", paths={"cache_dir": str(tmp_path)},
                     overrides={"reader_args": SMALL})
    records = read_benchmark(card)
    assert len(records) == 2 * (1 + 3 * 2) and all(r.modality == "video" for r in records)
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
    per_source = 1 + len(KINDS) * 4
    assert [len(records[s]) for s in SPLITS] == [12 * (per_source + len(KINDS) - 1), 6 * per_source,
                                                 6 * per_source]
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
