"""Prediction helpers: scoring completions, the appended cache, sharding, lazy loading."""

from __future__ import annotations

import json

import pytest

from preresq.data.records import Record
from preresq.decoding import Decoding
from preresq.evaluation.batching import load_ahead
from preresq.evaluation.cache import PredictionCache
from preresq.evaluation.predict import pending_records, score_completions, shard


def test_score_uses_the_shared_parser():
    row = score_completions(["<think>ok</think><answer>4\n3</answer>"], 2)
    assert row == {"pred": 3.5, "subscores": [4.0, 3.0],
                   "completion": "<think>ok</think><answer>4\n3</answer>"}
    assert score_completions(["<think>I rate it 4 and 3</think>"], 2)["pred"] is None
    assert score_completions(["4"], 1, "bare")["pred"] == 4.0
    assert score_completions(["6"], 1, "bare")["pred"] is None  # out of [1, 5]: no score


def test_several_samples_average_the_valid_ones():
    row = score_completions(["2", "oops", "4"], 1, "bare")
    assert row["pred"] == 3.0
    assert row["sample_preds"] == [2.0, None, 4.0]
    assert row["completions"] == ["2", "oops", "4"] and row["subscores"] == [2.0]
    assert score_completions(["x", "y"], 1, "bare")["pred"] is None


def test_decoding_validation():
    with pytest.raises(ValueError, match="do_sample"):
        Decoding(num_samples=2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        Decoding(max_new_tokens=0)
    assert Decoding(do_sample=True, num_samples=4).num_samples == 4


def test_cache_appends_resumes_and_merges_in_order(tmp_path):
    cache = PredictionCache(tmp_path, "b", rank=1)
    for i in (3, 1):
        cache.append({"id": f"x{i}", "gt": 2.0, "pred": 3.0})
    cache.append({"id": "x2", "gt": 2.0, "pred": None, "error": "OSError: bad"})
    cache.close()
    other = PredictionCache(tmp_path, "b", rank=0)
    other.append({"id": "x0", "gt": 1.0, "pred": 1.0})
    other.close()
    assert PredictionCache(tmp_path, "b").done_ids() == {"x0", "x1", "x3"}  # errors are retried
    rows = PredictionCache(tmp_path, "b").merge(["x0", "x1", "x2", "x3"])
    assert [r["id"] for r in rows] == ["x0", "x1", "x2", "x3"]
    assert not (tmp_path / "partial").exists()
    lines = (tmp_path / "b.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["x0", "x1", "x2", "x3"]
    # A newer row for an id replaces the merged one.
    again = PredictionCache(tmp_path, "b")
    again.append({"id": "x2", "gt": 2.0, "pred": 4.0})
    rows = again.merge(["x0", "x1", "x2", "x3"])
    assert rows[2]["pred"] == 4.0 and "error" not in rows[2]


def test_cache_cuts_an_unfinished_line_before_appending(tmp_path):
    cache = PredictionCache(tmp_path, "b")
    cache.append({"id": "a", "gt": 1.0, "pred": 2.0})
    cache.close()
    with cache.partial_path.open("a") as f:
        f.write('{"id": "b", "gt"')  # killed mid-write
    with pytest.warns(RuntimeWarning, match=r"rank0.jsonl:2: unfinished"):
        assert cache.done_ids() == {"a"}
    cache.append({"id": "b", "gt": 1.0, "pred": 5.0})
    cache.close()
    assert [json.loads(x)["id"] for x in cache.partial_path.read_text().splitlines()] == ["a", "b"]


def test_corrupt_line_names_file_and_line(tmp_path):
    (tmp_path / "b.jsonl").write_text('{"id": "a"}\nnot json\n{"id": "c"}\n')
    with pytest.raises(ValueError, match=r"b.jsonl:2: not valid JSON"):
        PredictionCache(tmp_path, "b").done_ids()


def _records(n):
    return [Record(id=f"r{i}", paths=[f"{i}.png"], mos=1.0, score=1 + i % 5, benchmark="t")
            for i in range(n)]


def test_shard_covers_every_item_once():
    items = _records(11)
    parts = [shard(items, r, 3) for r in range(3)]
    assert sorted(r.id for p in parts for r in p) == sorted(r.id for r in items)
    assert [len(p) for p in parts] == [4, 4, 3]
    assert pending_records(items, {"r0", "r5"}) == [r for r in items if r.id not in {"r0", "r5"}]


def test_media_are_loaded_lazily_a_batch_ahead():
    loaded = []

    def load(record):
        loaded.append(record.id)
        if record.id == "r3":
            raise OSError(f"cannot read {record.paths[0]}")
        return ["image"]

    records = _records(10)
    batches = load_ahead([records[i:i + 2] for i in range(0, 10, 2)], load, ahead=1)
    first = next(batches)
    assert [x.record.id for x in first] == ["r0", "r1"]
    assert len(loaded) <= 4  # only this batch and the next one were opened
    rest = [x for batch in batches for x in batch]
    broken = [x for x in rest if x.error]
    assert [x.record.id for x in broken] == ["r3"] and "3.png" in broken[0].error
