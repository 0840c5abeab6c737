"""The ladder of batch sizes and prompt lengths for compiled decoding."""

from __future__ import annotations

import pytest

from preresq.evaluation.hf_predictor import length_bucket
from preresq.evaluation.shapes import bucket_down, bucket_up, ladder, pad_requests


def test_the_ladder_has_four_sizes_per_doubling():
    assert ladder(130) == [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56,
                           64, 80, 96, 112, 128]
    assert len(ladder(1024)) == 7 + 4 * 7 + 1  # 1-7, then 8 ... 896, then 1024


def test_buckets_waste_at_most_a_fifth_down_and_a_quarter_up():
    sizes = set(ladder(10000))
    for n in range(1, 5000):
        down, up = bucket_down(n), bucket_up(n)
        assert down in sizes and up in sizes and down <= n <= up
        assert down > 0.8 * n - 1e-9 and up < 1.25 * n + 1e-9
        assert (down == n) == (n in sizes) == (up == n)
    assert bucket_down(54) == 48  # the KonIQ batch of the issue: 48 items, not 32
    with pytest.raises(ValueError):
        bucket_down(0)


def test_prompt_lengths_use_the_same_ladder_from_16():
    assert [length_bucket(n) for n in (1, 16, 17, 21, 29, 33, 300)] == [16, 16, 20, 24, 32, 40, 320]


def test_padding_repeats_the_last_request():
    assert pad_requests(["a", "b", "c"], 5) == ["a", "b", "c", "c", "c"]
    assert pad_requests(["a"], 1) == ["a"]


def test_bench_script_counts_calls_shapes_and_padding(tmp_path, capsys):
    """scripts/bench_batch_shapes.py on a made-up KonIQ list of 100 items (1024 x 768 at
    the 3B's pixel caps: 1,059 tokens, 61 fit in 65,536): 2^k runs 32 + 32 + 32 + 4,
    the ladder 56 + 44 (no padding: 44 is on the ladder)."""
    import importlib.util
    import json

    from preresq.paths import REPO_ROOT

    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "GT_KonIQ.txt").write_text(
        "".join(f"{i}.jpg 3.0 0.5\n" for i in range(100)))
    spec = importlib.util.spec_from_file_location("bench_batch_shapes",
                                                  REPO_ROOT / "scripts" / "bench_batch_shapes.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--labels-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    suite = json.loads(out[out.index("{"):])
    assert suite["powers_of_two"]["calls"] == 4 and suite["ladder"]["calls"] == 2
    assert suite["powers_of_two"]["distinct_shapes"] == 2 and suite["ladder"]["distinct_shapes"] == 2
    assert suite["ladder"]["items_per_call_vs_fits"] == round(100 / 122, 3)
    assert script.ladder_plan(101, 61) == [(56, 56), (45, 48)]  # a tail off the ladder is padded
