"""Decode once: the row loader decodes an item once per generation batch, not once per repeat."""

import pickle

from PIL import Image

import preresq.data.rows as rows
from preresq.data.records import Record

PROMPT = {"templates": ["iqa"], "num_scores": 5, "answer_format": "tagged"}


def _dataset(tmp_path, n, cache_items):
    for i in range(n):
        Image.new("RGB", (64, 48), (10 * i, 0, 0)).save(tmp_path / f"{i}.png")
    records = [Record(id=f"{i}.png", paths=[f"{i}.png"], mos=float(i), score=1.0 + i / n,
                      benchmark="t") for i in range(n)]
    return rows.build_train_dataset(records, tmp_path, PROMPT, 3136, 12544, cache_items=cache_items)


def _read_like_trl(dataset, monkeypatch, k, items, accumulation):
    """Rows in TRL's RepeatSampler order: each item K times, the batch again per micro-step."""
    from trl.trainer.utils import RepeatSampler

    calls = []
    real = rows.item_images
    monkeypatch.setattr(rows, "item_images", lambda record, *a, **kw: calls.append(record.id) or real(record, *a, **kw))
    sampler = RepeatSampler(dataset, mini_repeat_count=k, batch_size=items, repeat_count=accumulation,
                            shuffle=True, seed=0)
    read = [dataset[i] for i in sampler]
    return read, calls


def test_each_item_is_decoded_once_per_generation_batch(tmp_path, monkeypatch):
    dataset = _dataset(tmp_path, 8, cache_items=4)
    read, calls = _read_like_trl(dataset, monkeypatch, k=6, items=4, accumulation=2)
    assert len(read) == 8 * 6 * 2
    # 96 rows of 8 items (2 generation batches of 4): 8 decodes, one per item.
    assert len(calls) == 8 and set(calls) == {r["item_id"] for r in read}
    # Repeats carry the same pixels as a fresh decode.
    first = {r["item_id"]: r["images"][0].tobytes() for r in read}
    assert all(r["images"][0].tobytes() == first[r["item_id"]] for r in read)


def test_without_the_cache_every_repeat_decodes(tmp_path, monkeypatch):
    dataset = _dataset(tmp_path, 8, cache_items=0)
    read, calls = _read_like_trl(dataset, monkeypatch, k=6, items=4, accumulation=2)
    assert len(calls) == len(read) == 96


def test_the_cache_is_bounded_and_workers_start_empty(tmp_path):
    cache = rows.DecodeCache(2)
    for key in "abcb":
        cache.get(key, lambda key=key: key.upper())
    assert list(cache.entries) == ["c", "b"]  # least recently used "a" went first
    copy = pickle.loads(pickle.dumps(cache))  # what a data-loader worker receives
    assert copy.max_items == 2 and not copy.entries
