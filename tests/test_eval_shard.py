"""Sharded evaluation: 2 CPU processes over gloo give the same files as 1 process."""

from __future__ import annotations

import os
import socket
import warnings

import pytest
import torch.multiprocessing as mp
from eval_fakes import FakePredictor, eval_cfg

from preresq.evaluation import evaluate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out: str, stop_after) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    warnings.simplefilter("ignore")
    fake = FakePredictor(stop_after=stop_after)
    try:
        evaluate(eval_cfg(out), predictor=fake)
    finally:
        with open(os.path.join(out, f"items.rank{rank}"), "w") as f:
            f.write(str(fake.items))


def _run(world_size: int, out, stop_after=None) -> list[int]:
    # fork, not spawn: a child inherits the imported modules instead of paying a
    # fresh torch + transformers import (a minute on a busy 2-core machine).
    mp.start_processes(_worker, args=(world_size, _free_port(), str(out), stop_after),
                       nprocs=world_size, start_method="fork")
    return [int((out / f"items.rank{r}").read_text()) for r in range(world_size)]


@pytest.mark.slow
def test_two_processes_merge_into_the_same_predictions(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    warnings.simplefilter("ignore")
    evaluate(eval_cfg(one), predictor=FakePredictor())
    counts = _run(2, two)
    assert counts == [10, 10]  # each process predicted its half
    for name in ("predictions/iqa_demo.jsonl", "results.json"):
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    assert not (two / "predictions" / "partial").exists()
    # A finished sharded run resumes as a single process without predicting anything.
    again = FakePredictor()
    evaluate(eval_cfg(two), predictor=again)
    assert again.items == 0


@pytest.mark.slow
def test_interrupted_sharded_run_resumes_in_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    warnings.simplefilter("ignore")
    evaluate(eval_cfg(one), predictor=FakePredictor())
    # Both processes stop after 4 items each, as on Ctrl-C (torch.multiprocessing ends a
    # worker quietly on KeyboardInterrupt): no results yet, only the partial predictions.
    assert _run(2, two, stop_after=4) == [4, 4]
    assert not (two / "results.json").exists()
    rest = FakePredictor()
    evaluate(eval_cfg(two), predictor=rest)
    assert rest.items == 12  # the partial files of both ranks counted as done
    assert (two / "results.json").read_bytes() == (one / "results.json").read_bytes()
