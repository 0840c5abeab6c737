"""Benchmark cards, suites, and the authors' label lists loading with their documented counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from preresq.data.benchmarks import (
    BENCHMARK_DIR,
    Card,
    card_from_config,
    load_card,
    load_data_card,
    load_suite,
    read_benchmark,
    suite_names,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
LABELS = SHARED / "labels"
KADID_LISTS = SHARED / "kadid10k"

IQA10 = ["kadid10k_test", "tid2013", "pipal", "liu13", "sriqa_bench", "agiqa3k", "bid", "clive",
         "koniq10k", "spaq"]
VQA5 = ["konvid1k", "live_vqc", "youtube_ugc", "lsvq_test", "lsvq_1080p"]

# Items per benchmark in the authors' label lists (shared/benchmarks/README.md).
AUTHORS_COUNTS = {"kadid10k_test": 2000, "tid2013": 3000, "pipal": 23200, "liu13": 1199,
                  "sriqa_bench": 1100, "agiqa3k": 2982, "bid": 586, "clive": 1169,
                  "koniq10k": 10073, "spaq": 11125, "konvid1k": 1200, "live_vqc": 585,
                  "youtube_ugc": 1147, "lsvq_test": 7186, "lsvq_1080p": 3573}


def test_suites_list_the_papers_benchmarks():
    assert suite_names("iqa10") == IQA10
    assert suite_names("vqa5") == VQA5
    assert suite_names("iqa_demo") == ["iqa_demo"]
    with pytest.raises(FileNotFoundError, match="no suite"):
        suite_names("nope")


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCHMARK_DIR.glob("*.yaml")))
def test_every_card_resolves(name, tmp_path):
    card = load_card(name, paths={"data_root": str(tmp_path), "cache_dir": str(tmp_path / "cache")})
    assert isinstance(card, Card) and card.name == name
    assert card.modality == ("video" if name in VQA5 or name == "vqa_demo" else "image")
    assert "${" not in card.media_root + card.labels
    assert card.media_root.startswith(str(tmp_path)) and card.labels.startswith(str(tmp_path))
    if name in AUTHORS_COUNTS:
        authors = load_card(name, paths={"labels_root": str(LABELS)}, source="authors")
        assert authors.source == "authors" and authors.reader == "label_list"
        assert authors.expected_count == AUTHORS_COUNTS[name]


def test_load_suite_resolves_paths(tmp_path):
    cards = load_suite("vqa5", paths={"data_root": str(tmp_path)})
    assert [c.name for c in cards] == VQA5
    assert cards[3].media_root == str(tmp_path / "lsvq" / "videos")
    assert cards[3].reader_args == {"subset": "test", "suffix": ".mp4"}


def test_authors_lists_load_with_documented_counts():
    assert LABELS.is_dir(), f"the shared label lists are expected at {LABELS}"
    overrides = {"kadid10k_test": {"labels": str(KADID_LISTS / "KADID-10K_test_set.txt")}}
    for name, count in AUTHORS_COUNTS.items():
        card = load_card(name, paths={"labels_root": str(LABELS)}, source="authors",
                         overrides=overrides.get(name))
        records = read_benchmark(card)
        assert len(records) == count == card.expected_count, name
        assert len({r.id for r in records}) == count, name
        assert all(1.0 <= r.score <= 5.0 for r in records), name
        # The lists are already on [1, 5]: scores are kept as the authors wrote them.
        assert [r.score for r in records] == pytest.approx([r.mos for r in records], abs=1e-12), name
        assert {r.modality for r in records} == {card.modality}


def test_ref_dist_lists_keep_the_reference():
    card = load_card("liu13", paths={"labels_root": str(LABELS)}, source="authors")
    first = read_benchmark(card)[0]
    assert (first.id, first.ref, first.paths) == ("0_1.png", "0_0.png", ["0_1.png"])


def test_card_errors_are_explicit(tmp_path):
    with pytest.raises(FileNotFoundError, match="no benchmark card"):
        load_card("nope")
    with pytest.raises(ValueError, match="unknown fields"):
        card_from_config({"name": "x", "modality": "image", "media_root": "m", "labels": "l",
                          "reader": "label_list", "colour": "red"})
    with pytest.raises(ValueError, match="no `authors:` block"):
        load_card("iqa_demo", source="authors")
    with pytest.raises(ValueError, match="needs a splitter"):
        Card(name="x", modality="image", media_root="m", labels="l", reader="label_list", split="test")


def test_data_cards(tmp_path):
    kadid = load_data_card("kadid_6k", paths={"data_root": str(tmp_path)})
    assert (kadid.name, kadid.split, kadid.val_split, kadid.expected_count) == ("kadid10k", "train", "val", 6125)
    assert kadid.labels == str(tmp_path / "kadid10k" / "dmos.csv")
    assert load_data_card("kadid_6k", split="val").split == "val"
    authors = load_data_card("kadid_6k", paths={"labels_root": str(KADID_LISTS)}, source="authors")
    assert len(read_benchmark(authors)) == 6125
    demo = load_data_card("demo", paths={"cache_dir": str(tmp_path)})
    assert (demo.name, demo.split, demo.val_split, demo.reader) == ("iqa_demo", "train", "val", "demo_set")
    # The demo's benchmark card must describe the same set as its training card.
    bench = load_card("iqa_demo", paths={"cache_dir": str(tmp_path)})
    assert (bench.reader_args, bench.labels, bench.split) == (demo.reader_args, demo.labels, "test")


def test_manifest_instead_of_labels(tmp_path):
    from preresq.data.records import Record, write_manifest

    records = [Record(id=f"{i}.png", paths=[f"{i}.png"], mos=i, score=1 + i, benchmark="x",
                      split="test" if i % 2 else "train") for i in range(4)]
    write_manifest(tmp_path / "m.jsonl", records)
    card = card_from_config({"name": "x", "modality": "image", "media_root": "m", "labels": "unused",
                             "reader": "label_list", "manifest": str(tmp_path / "m.jsonl"), "split": "test"})
    assert [r.id for r in read_benchmark(card)] == ["1.png", "3.png"]
