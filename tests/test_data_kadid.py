"""The KADID-10k 6K split: rebuilt from the official dmos.csv layout, checked against the lists."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from preresq.data.benchmarks import load_card, load_data_card, read_benchmark
from preresq.data.kadid import (
    EXPECTED_SIZES,
    REFERENCE_SPLIT,
    reference_number,
    reference_split,
    reference_table_from_lists,
    split_counts,
)

KADID = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "kadid10k"
LISTS = {s: KADID / f"KADID-10K_{s}_set.txt" for s in ("train", "val", "test")}


def _lines(path):
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def dmos_csv(tmp_path_factory):
    """The official dmos.csv layout, made from the shared list of all 10,125 items."""
    path = tmp_path_factory.mktemp("kadid10k") / "dmos.csv"
    rows = ["dist_img,ref_img,dmos,var"]
    for ref, dist, mos, std in _lines(KADID / "KADID-10K_mos.txt"):
        rows.append(f"{dist},{ref},{mos},{float(std) ** 2!r}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_reference_table_is_the_released_one():
    table = reference_table_from_lists(LISTS)
    assert table == dict(REFERENCE_SPLIT)
    assert {s: len(r) for s, r in table.items()} == {"train": 49, "val": 16, "test": 16}


def test_reference_names():
    assert reference_number("I07.png") == 7 and reference_number("images/I81_25_05.png") == 81
    assert reference_split("I19.png") == "test" and reference_split(7) == "val"
    with pytest.raises(ValueError, match="not a KADID-10k image name"):
        reference_number("foo.png")


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_split_reproduces_the_lists_item_for_item(dmos_csv, split):
    card = load_data_card("kadid_6k", split=split, overrides={"labels": str(dmos_csv)})
    records = read_benchmark(card)
    expected = _lines(LISTS[split])
    assert len(records) == EXPECTED_SIZES[split] == len(expected)
    assert [(r.ref, r.id) for r in records] == [(ref, dist) for ref, dist, _, _ in expected]
    # Rescaling over all 10,125 items before the split gives the lists' scores.
    assert [r.score for r in records] == pytest.approx([float(m) for _, _, m, _ in expected], abs=1e-9)
    assert [r.std for r in records] == pytest.approx([float(s) for _, _, _, s in expected], abs=1e-9)
    assert all(r.split == split for r in records)


def test_benchmark_card_is_the_test_split(dmos_csv):
    records = read_benchmark(load_card("kadid10k_test", overrides={"labels": str(dmos_csv)}))
    assert len(records) == 2000 and {r.split for r in records} == {"test"}
    assert {r.benchmark for r in records} == {"kadid10k_test"}
    train = read_benchmark(load_data_card("kadid_6k", overrides={"labels": str(dmos_csv)}))
    assert not {r.ref for r in train} & {r.ref for r in records}
    assert split_counts(r.split for r in train) == {"train": 6125, "val": 0, "test": 0}
    assert math.isclose(max(r.score for r in train), 5.0) and math.isclose(min(r.score for r in train), 1.0)
