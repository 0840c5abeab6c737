"""What each reward call saw and returned, per process: a record for tests and debugging.

With ``record_rewards: true`` every reward function is wrapped so that each call appends
one JSON line to ``<stage folder>/rewards_rank<rank>.jsonl``: the step, this process's
item ids, MOS, completion texts and rewards, and the item ids of the whole global batch
(gathered from every process). Two processes that computed a grouped reward over the same
global batch write the same ``global_item_id``; recomputing the reward on the union of both
processes' rows in one process must give the values they returned. Off by default: the
file grows by one line per reward function per step.
"""

from __future__ import annotations

import json
from pathlib import Path

from preresq.parsing import completion_text
from preresq.rewards.trl import gather_shards


class RecordedReward:
    """A TRL reward function that writes its inputs and outputs before returning them."""

    def __init__(self, func, directory: str | Path):
        self.func = func
        self.__name__ = func.__name__  # TRL logs a reward under its __name__
        self.directory = Path(directory)

    def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs):
        rewards = self.func(prompts=prompts, completions=completions,
                            completion_ids=completion_ids, **kwargs)
        ids = list(kwargs.get("item_id", []))
        shards, rank = gather_shards(ids)
        state = kwargs.get("trainer_state")
        line = {"reward": self.__name__, "rank": rank,
                "step": None if state is None else state.global_step,
                "item_id": ids, "mos": [float(m) for m in kwargs.get("mos", [])],
                "completions": [completion_text(c) for c in completions],
                "rewards": [None if r is None else float(r) for r in rewards],
                "global_item_id": [i for shard in shards for i in shard]}
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / f"rewards_rank{rank}.jsonl").open("a") as f:
            f.write(json.dumps(line) + "\n")
        return rewards


def read_records(directory: str | Path, rank: int) -> list[dict]:
    """The lines one process wrote, in order."""
    path = Path(directory) / f"rewards_rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
