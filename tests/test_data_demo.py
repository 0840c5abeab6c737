"""The demo image set: deterministic, disjoint splits, balanced, and fit for the tiny model."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from preresq.data.benchmarks import load_card, load_data_card, read_benchmark
from preresq.data.demo import (
    DISTORTIONS,
    DemoConfig,
    build_demo,
    demo_dir,
    distort,
    level_score,
    load_demo_split,
)

SMALL = {"photos": ["astronaut", "camera", "coffee"], "crops_per_photo": 2,
         "kinds": ["white_noise", "color_saturation", "jpeg"], "max_level": 4, "seed": 3}


def test_level_score():
    assert [level_score(v, 5) for v in range(6)] == [5.0, 4.2, 3.4, 2.6, 1.8, 1.0]
    assert [level_score(v, 4) for v in range(5)] == [5.0, 4.0, 3.0, 2.0, 1.0]
    with pytest.raises(ValueError):
        level_score(6, 5)


@pytest.mark.parametrize("kind", DISTORTIONS)
def test_distort_grows_with_level(kind):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:112, 0:112]
    pattern = np.stack([(xx * 2) % 256, (yy * 2) % 256, ((xx + yy) * 3) % 256], -1).astype(np.uint8)
    clean = Image.fromarray(pattern)
    diffs = []
    for level in range(1, 6):
        out = distort(clean, kind, level, rng, max_level=5)
        assert out.size == clean.size and out.mode == "RGB"
        diffs.append(np.abs(np.asarray(out, float) - pattern).mean())
    assert diffs[0] > 0 and diffs[-1] > diffs[0], (kind, diffs)
    with pytest.raises(ValueError):
        distort(clean, kind, 0, rng)
    with pytest.raises(ValueError, match="unknown distortion"):
        distort(clean, "swirl", 1, rng)


def test_white_noise_std_is_noise_std_times_strength():
    gray = Image.new("RGB", (112, 112), (128, 128, 128))

    def measured(noise_std, level):
        out = distort(gray, "white_noise", level, np.random.default_rng(0), max_level=4,
                      noise_std=noise_std)
        return np.asarray(out, float).std() / 255.0

    # Where mid-gray barely clips (std <= 0.15: 3 sigma inside the range) it is the set std.
    for noise_std, level in ((0.12, 4), (0.3, 2), (0.3, 1)):
        assert measured(noise_std, level) == pytest.approx(noise_std * level / 4, rel=0.03)
    assert measured(0.3, 4) > measured(0.3, 3) > measured(0.3, 2)  # clipped, still growing


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of 28"):
        DemoConfig(crop_size=100)
    with pytest.raises(ValueError, match="noise_std"):
        DemoConfig(noise_std=0)
    assert DemoConfig().digest() != DemoConfig(noise_std=0.3).digest()
    with pytest.raises(ValueError, match="unknown demo parameters"):
        DemoConfig.from_mapping({"max_levels": 3})
    assert DemoConfig().digest() != DemoConfig(max_level=4).digest()
    assert DemoConfig().digest() == DemoConfig.from_mapping({}).digest()


def test_small_demo_build(tmp_path):
    folder = build_demo(SMALL, root=tmp_path)
    assert folder == demo_dir(DemoConfig.from_mapping(SMALL), tmp_path)
    info = json.loads((folder / "info.json").read_text())
    splits = {s: load_demo_split(s, SMALL, root=tmp_path)[0] for s in ("train", "val", "test")}
    assert {s: len(r) for s, r in splits.items()} == info["counts"]
    crops = {s: {r.extra["crop"] for r in recs} for s, recs in splits.items()}
    assert not (crops["train"] & crops["val"] or crops["train"] & crops["test"] or crops["val"] & crops["test"])
    assert sum(len(c) for c in crops.values()) == 6
    for recs in splits.values():
        for r in recs:
            assert r.score == level_score(r.extra["level"], 4) and r.mos == r.score
            assert (folder / r.paths[0]).is_file()
    # Grey photo (camera): no colour-saturation items; the count says so.
    assert not [r for r in sum(splits.values(), []) if r.extra["photo"] == "camera"
                and r.extra["kind"] == "color_saturation"]
    assert info["skipped_gray_saturation"] == 2 * 4
    # Balanced train: every score level equally common; repeated clean items get new ids.
    by_score = Counter(r.score for r in splits["train"])
    assert len(set(by_score.values())) == 1, by_score
    assert len({r.id for r in splits["train"]}) == len(splits["train"])
    test_scores = Counter(r.score for r in splits["test"])
    assert test_scores[5.0] < test_scores[1.0]  # held-out splits are not balanced
    with Image.open(folder / splits["train"][0].paths[0]) as im:
        assert im.size == (112, 112)


def test_demo_is_deterministic_and_rebuilt_when_parameters_change(tmp_path):
    a = build_demo(SMALL, root=tmp_path / "a")
    b = build_demo(SMALL, root=tmp_path / "b")
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / "train.jsonl").read_text() == (b / "train.jsonl").read_text()
    mtime = (a / "info.json").stat().st_mtime_ns
    assert build_demo(SMALL, root=tmp_path / "a") == a and (a / "info.json").stat().st_mtime_ns == mtime
    other = build_demo({**SMALL, "max_level": 5}, root=tmp_path / "a")
    assert other != a and other.parent == a.parent


def test_demo_cards_read_the_same_set(tmp_path):
    paths = {"cache_dir": str(tmp_path)}
    train = read_benchmark(load_data_card("demo", paths=paths, overrides={"reader_args": SMALL}))
    test = read_benchmark(load_card("iqa_demo", paths=paths, overrides={"reader_args": SMALL}))
    assert {r.split for r in train} == {"train"} and {r.split for r in test} == {"test"}
    assert {r.benchmark for r in test} == {"iqa_demo"}
    root = tmp_path / "demo"
    assert all((root / r.paths[0]).is_file() for r in train + test)
    assert not {r.extra["crop"] for r in train} & {r.extra["crop"] for r in test}


@pytest.mark.slow
def test_default_demo_builds(tmp_path):
    # Its build time is a speed target, printed by scripts/bench_data.py, not asserted here.
    folder = build_demo(None, root=tmp_path)
    info = json.loads((folder / "info.json").read_text())
    assert info["crops"] == 48 and sum(info["counts"].values()) > 1000


@pytest.mark.slow
def test_demo_rows_feed_the_tiny_models_processor(tmp_path):
    """Rows go through the processor exactly as GRPOTrainer sends them (TRL 1.16)."""
    from transformers import AutoProcessor
    from trl.data_utils import prepare_multimodal_messages

    from preresq.data.rows import build_train_dataset
    from preresq.models.tiny import build_tiny_model

    processor = AutoProcessor.from_pretrained(build_tiny_model(tmp_path / "tiny"),
                                              size={"shortest_edge": 3136, "longest_edge": 12544})
    records, folder = load_demo_split("train", SMALL, root=tmp_path / "demo")
    prompt = {"templates": ["demo_digit"], "num_scores": 1, "answer_format": "bare"}
    ds = build_train_dataset(records[:4], folder, prompt, min_pixels=3136, max_pixels=12544)
    rows = [ds[i] for i in range(len(ds))]
    prompts = [prepare_multimodal_messages(r["prompt"], images=r["images"]) for r in rows]
    batch = processor.apply_chat_template(conversation=prompts, add_generation_prompt=True,
                                          tokenize=True, return_dict=True, padding=True,
                                          return_tensors="pt")
    grid = batch["image_grid_thw"]
    assert grid.tolist() == [[1, 8, 8]] * 4  # 112 px crops: 8 x 8 patches, no resize
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert (batch["input_ids"] == pad).sum(dim=1).tolist() == [16] * 4  # 2 x 2 merge
    assert batch["pixel_values"].shape[0] == 4 * 64
