"""The TRL adapter: completion shapes, grouping by item id, logging, and the multi-process global batch."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from preresq.parsing import parse_answer
from preresq.rewards import build_reward_funcs, group_batch, preresq_reward
from preresq.rewards.trl import answer_histogram

SCORES = [
    [4.10, 3.90, 4.20, 4.00, 3.70],
    [2.00, 2.30, 1.90, 2.10, 2.60],
    [3.00, 3.05, 3.10, 2.95, 3.40],
]


def _text(scores):
    return (
        "<think>looked closely</think>\n<answer>\n"
        + "\n".join(f"{v:.2f}" for v in scores)
        + "\n</answer>"
    )


def _batch(num_items=4, k=3, seed=0):
    """TRL-like inputs: K completions per item, interleaved, some invalid."""
    gen = torch.Generator().manual_seed(seed)
    completions, ids, mos = [], [], []
    for j in range(k):
        for i in range(num_items):
            values = (torch.randint(100, 501, (5,), generator=gen) / 100).tolist()
            text = _text(values) if (i + j) % 5 else "<think>no idea</think>"
            completions.append([{"role": "assistant", "content": text}])
            ids.append(f"item{i}")
            mos.append(1.0 + i * 0.9)
    return completions, ids, mos


def _preresq():
    funcs, _ = build_reward_funcs({"preset": "preresq"}, 5, "tagged")
    return funcs[0]


def test_group_batch_by_item_id():
    batch = group_batch(
        ["b", "a", "b", "a", "b"], [2.0, 3.0, 2.0, 3.0, 2.0], [[1.0], None, [2.0], [3.0], [4.0]], 1
    )
    assert batch.item_ids == ["b", "a"]
    assert batch.row.tolist() == [0, 1, 0, 1, 0] and batch.col.tolist() == [0, 0, 1, 1, 2]
    assert batch.valid.tolist() == [
        [True, True, True],
        [False, True, False],
    ]  # a is padded to K = 3
    assert batch.subscores[0, :, 0].tolist() == [1.0, 2.0, 4.0]


def test_group_batch_rejects_conflicting_mos():
    with pytest.raises(ValueError, match="item_id 'a'"):
        group_batch(["a", "a"], [2.0, 3.0], [[1.0], [1.0]], 1)


def test_adapter_equals_the_tensor_maths():
    completions, ids, mos = _batch()
    reward = _preresq()
    got = reward(
        prompts=[None] * len(ids),
        completions=completions,
        completion_ids=None,
        item_id=ids,
        mos=mos,
    )
    answers = [parse_answer(c[0]["content"], 5).subscores for c in completions]
    batch = group_batch(ids, mos, answers, 5)
    out = preresq_reward(batch.subscores, batch.mos, batch.valid)
    assert got == pytest.approx(out["total"][batch.row, batch.col].tolist())
    assert len(got) == len(completions)


def test_adapter_accepts_plain_strings_and_logs_metrics():
    texts = [_text(s) for s in SCORES] + ["<think>x</think><answer>5 stars</answer>"]
    logged = {}
    reward = _preresq()
    rewards = reward(
        prompts=["p"] * 4,
        completions=texts,
        item_id=["x", "x", "y", "y"],
        mos=[4.0, 4.0, 2.0, 2.0],
        log_metric=lambda name, value: logged.__setitem__(name, value),
        trainer_state=None,
    )
    assert rewards[3] == pytest.approx(-1 / 12)  # the invalid answer gets the floor
    assert logged == reward.last_metrics
    assert logged["rewards/preresq/invalid_rate"] == 0.25
    assert {
        "rewards/preresq/pairwise",
        "rewards/preresq/gt_rank",
        "rewards/preresq/triplet_balance",
        "rewards/preresq/triplet_rank",
        "rewards/preresq/spread_penalty",
    } <= set(logged)
    # The answer histogram over the 3 valid answers (means 3.98, 2.18, 3.10).
    hist = {d: logged[f"rewards/preresq/ans_{d}"] for d in range(1, 6)}
    assert hist == pytest.approx({1: 0.0, 2: 1 / 3, 3: 1 / 3, 4: 1 / 3, 5: 0.0})


def test_answer_histogram_shares_of_valid_answers_per_score_bin():
    hist = answer_histogram(torch.tensor([1.0, 2.49, 2.5, 3.0, 3.0, 5.0, 4.51, 1.4]))
    assert hist == pytest.approx({"ans_1": 2 / 8, "ans_2": 1 / 8, "ans_3": 3 / 8,
                                  "ans_4": 0.0, "ans_5": 2 / 8})
    assert answer_histogram(torch.tensor([])) == {}


def test_histogram_shows_a_collapse_in_the_training_log():
    """One-digit answers, the demo's layout: every valid answer "3" -> ans_3 = 1."""
    funcs, _ = build_reward_funcs({"preset": "q_insight"}, 1, "bare")
    funcs[0](completions=["3", "3", "3", "x", "3"], item_id=["a", "a", "b", "b", "b"],
             mos=[1.0, 1.0, 5.0, 5.0, 5.0])
    metrics = funcs[0].last_metrics
    assert metrics["rewards/q_insight/ans_3"] == 1.0
    assert metrics["rewards/q_insight/invalid_rate"] == pytest.approx(0.2)
    assert sum(metrics[f"rewards/q_insight/ans_{d}"] for d in range(1, 6)) == pytest.approx(1.0)


def test_adapter_adds_mos_and_parsed_score_to_the_completions_table():
    texts = [_text(s) for s in SCORES] + ["<think>x</think><answer>5 stars</answer>"]
    extra = {}
    _preresq()(prompts=["p"] * 4, completions=texts, item_id=["x", "x", "y", "y"],
               mos=[4.0, 4.0, 2.0, 2.0], log_extra=lambda column, values: extra.__setitem__(column, values))
    assert extra["mos"] == [4.0, 4.0, 2.0, 2.0]
    expected = [pytest.approx(sum(s) / len(s)) for s in SCORES] + [None]
    assert extra["preresq/score"] == expected


def test_adapter_missing_column_names_it():
    with pytest.raises(KeyError, match="item_id"):
        _preresq()(prompts=["p"], completions=[_text(SCORES[0])], mos=[3.0])


def test_format_callable():
    funcs, weights = build_reward_funcs({"preset": "preresq", "format_weight": 0.5}, 5, "tagged")
    fmt = funcs[1]
    assert fmt.__name__ == "format" and weights == [1.0, 0.5]
    assert fmt(
        prompts=["p", "p"],
        completions=[[{"role": "assistant", "content": _text(SCORES[0])}], "junk"],
    ) == [1.0, 0.0]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank, world, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        completions, ids, mos = _batch()
        n = len(completions) // world  # TRL splits the generation batch evenly across processes
        part = slice(rank * n, (rank + 1) * n)
        logged = {}
        rewards = _preresq()(
            prompts=[None] * n,
            completions=completions[part],
            item_id=ids[part],
            mos=mos[part],
            log_metric=lambda name, value: logged.__setitem__(name, value),
        )
        Path(out_dir, f"{rank}.json").write_text(
            json.dumps({"rewards": rewards, "metrics": logged})
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    """2 gloo processes on CPU, each holding half the completions (items split across them),
    return the same per-completion rewards as one process that sees the whole batch."""
    # fork, not spawn: the children inherit the imports instead of re-importing torch.
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, start_method="fork")
    shards = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    completions, ids, mos = _batch()
    whole = _preresq()
    expected = whole(prompts=[None] * len(ids), completions=completions, item_id=ids, mos=mos)
    assert shards[0]["rewards"] + shards[1]["rewards"] == pytest.approx(expected, abs=1e-7)
    assert shards[0]["metrics"] == pytest.approx(whole.last_metrics)
    assert shards[1]["metrics"] == pytest.approx(whole.last_metrics)
