"""Reward callables for TRL's ``GRPOTrainer``: parse, gather across processes, group by item, slice.

TRL (1.x, ``GRPOTrainer._calculate_rewards``) calls every reward function on every
process with this process's completions::

    reward_func(prompts=..., completions=..., completion_ids=..., **columns,
                trainer_state=..., log_extra=..., log_metric=...)

where ``columns`` are the dataset's other columns repeated per completion (here ``mos``,
``item_id``, ``benchmark``, ``images``). A completion is a string, or for conversational
prompts a message list ``[{"role": "assistant", "content": ...}]``.

``GroupedReward`` gathers the parsed sub-scores, MOS and item ids of the whole global
batch from all processes (``torch.distributed.all_gather_object``; nothing to gather in
a single process), groups completions by ``item_id`` (never by position: TRL spreads an
item's K completions across processes), computes the preset's [B, K] rewards on the
whole batch, and returns this process's slice. Every process computes the same numbers.

Logging: after each call ``last_metrics`` holds, for the global batch, the mean of every
component over valid responses (``rewards/<name>/<component>``), the invalid-answer
rate (``rewards/<name>/invalid_rate``) and the answer histogram: ``rewards/<name>/ans_<d>``
is the share of valid answers whose score (the mean of its sub-scores) rounds to ``d``
(halves up), for d = 1..5. A collapse onto one answer shows there first. When TRL passes
``log_metric`` they are also logged through it, beside TRL's ``rewards/<name>/mean``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from preresq.parsing import completion_text, parse_answer
from preresq.rewards.presets import format_reward
from preresq.rewards.response import response_means


@dataclass(frozen=True)
class GroupedBatch:
    """A flat list of completions laid out as [B, K] groups, and where each one went."""

    subscores: torch.Tensor  # [B, K, D], zeros where invalid or padding
    mos: torch.Tensor  # [B]
    valid: torch.Tensor  # [B, K]; padding of smaller groups is invalid
    row: torch.Tensor  # [N]: the group of completion i
    col: torch.Tensor  # [N]: its position inside the group
    item_ids: list[Hashable]  # [B], in order of first appearance


def group_batch(
    item_ids: Sequence[Hashable],
    mos: Sequence[float],
    subscores: Sequence[Sequence[float] | None],
    num_scores: int,
) -> GroupedBatch:
    """Lay out N completions as groups of the same item, in order of first appearance.

    ``subscores[i]`` is None for a response with no valid answer. Groups may differ in
    size; the shorter ones are padded with invalid entries.
    """
    if not len(item_ids) == len(mos) == len(subscores):
        raise ValueError(
            f"group_batch: {len(item_ids)} item ids, {len(mos)} mos values, {len(subscores)} answers"
        )
    group_of: dict[Hashable, int] = {}
    group_mos: list[float] = []
    rows, cols, sizes = [], [], []
    for item, value in zip(item_ids, mos, strict=True):
        if item not in group_of:
            group_of[item] = len(group_mos)
            group_mos.append(float(value))
            sizes.append(0)
        g = group_of[item]
        if float(value) != group_mos[g]:
            raise ValueError(
                f"item_id {item!r} comes with two MOS values: {group_mos[g]} and {value}"
            )
        rows.append(g)
        cols.append(sizes[g])
        sizes[g] += 1
    b, k = len(group_mos), max(sizes, default=0)
    s = torch.zeros((b, k, num_scores), dtype=torch.float64)
    valid = torch.zeros((b, k), dtype=torch.bool)
    for i, (r, c, values) in enumerate(zip(rows, cols, subscores, strict=True)):
        if values is not None:
            if len(values) != num_scores:
                raise ValueError(
                    f"completion {i} (item {item_ids[i]!r}) has {len(values)} scores, expected {num_scores}"
                )
            s[r, c] = torch.tensor(values, dtype=torch.float64)
            valid[r, c] = True
    return GroupedBatch(
        subscores=s,
        mos=torch.tensor(group_mos, dtype=torch.float64),
        valid=valid,
        row=torch.tensor(rows, dtype=torch.long),
        col=torch.tensor(cols, dtype=torch.long),
        item_ids=list(group_of),
    )


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_shards(local: Any) -> tuple[list[Any], int]:
    """Every process's ``local`` object in rank order, and this process's rank."""
    if not _distributed():
        return [local], 0
    shards: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(shards, local)
    return shards, dist.get_rank()


def _column(kwargs: dict, key: str, n: int, owner: str) -> list:
    if key not in kwargs:
        columns = sorted(k for k in kwargs if k not in ("trainer_state", "log_extra", "log_metric"))
        raise KeyError(
            f"reward {owner!r} needs the dataset column {key!r}; the batch has {columns}"
        )
    values = list(kwargs[key])
    if len(values) != n:
        raise ValueError(
            f"reward {owner!r}: column {key!r} has {len(values)} values for {n} completions"
        )
    return values


class GroupedReward:
    """A TRL reward function over the global batch, for any score preset.

    Args:
        name: the reward's name in TRL's logs (``__name__``).
        score_fn: ``fn(subscores, mos, valid, **params) -> dict`` of [B, K] tensors with ``total``.
        params: keyword arguments for ``score_fn``.
        num_scores: D, sub-scores per answer.
        answer_format: ``"tagged"`` or ``"bare"``.
        mos_key, id_key: the dataset columns holding the MOS and the item id.
    """

    def __init__(
        self,
        name: str,
        score_fn: Callable[..., dict[str, torch.Tensor]],
        params: dict[str, Any],
        num_scores: int,
        answer_format: str,
        mos_key: str = "mos",
        id_key: str = "item_id",
    ):
        self.__name__ = name
        self.score_fn = score_fn
        self.params = dict(params)
        self.num_scores = num_scores
        self.answer_format = answer_format
        self.mos_key = mos_key
        self.id_key = id_key
        self.last_metrics: dict[str, float] = {}

    def __call__(
        self, prompts=None, completions=None, completion_ids=None, **kwargs
    ) -> list[float]:
        if completions is None:
            raise ValueError(f"reward {self.__name__!r} was called without completions")
        n = len(completions)
        ids = _column(kwargs, self.id_key, n, self.__name__)
        mos = [float(m) for m in _column(kwargs, self.mos_key, n, self.__name__)]
        answers = [
            parse_answer(completion_text(c), self.num_scores, self.answer_format).subscores
            for c in completions
        ]
        shards, rank = gather_shards((ids, mos, answers))
        offset = sum(len(shard[0]) for shard in shards[:rank])
        batch = group_batch(
            [i for shard in shards for i in shard[0]],
            [m for shard in shards for m in shard[1]],
            [a for shard in shards for a in shard[2]],
            self.num_scores,
        )
        out = self.score_fn(batch.subscores, batch.mos, batch.valid, **self.params)
        self.last_metrics = self._metrics(out, batch)
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:
            for key in sorted(self.last_metrics):  # same order on every process
                log_metric(key, self.last_metrics[key])
        totals = out["total"][batch.row, batch.col]
        log_extra = kwargs.get("log_extra")
        if log_extra is not None:  # TRL's completions table: each answer beside its item's MOS
            log_extra("mos", mos)
            log_extra(f"{self.__name__}/score",
                      [None if a is None else sum(a) / len(a) for a in answers])
        return totals[offset : offset + n].tolist()

    def _metrics(self, out: dict[str, torch.Tensor], batch: GroupedBatch) -> dict[str, float]:
        """Component means over the valid responses of the global batch, and the invalid rate."""
        valid = batch.valid[batch.row, batch.col]
        prefix = f"rewards/{self.__name__}"
        metrics = {
            f"{prefix}/invalid_rate": 1.0 - valid.double().mean().item() if len(valid) else 0.0
        }
        if valid.any():
            for key, values in out.items():
                if key != "total":
                    metrics[f"{prefix}/{key}"] = (
                        values[batch.row, batch.col][valid].double().mean().item()
                    )
            scores = response_means(batch.subscores)[batch.row, batch.col][valid]
            metrics.update({f"{prefix}/{key}": share
                            for key, share in answer_histogram(scores).items()})
        return metrics


SCORE_BINS = (1, 2, 3, 4, 5)


def answer_histogram(scores: torch.Tensor) -> dict[str, float]:
    """``{"ans_<d>": share}``: the share of ``scores`` (valid answers) that round to each d.

    Rounds halves up (floor(x + 0.5)), so 2.5 counts as 3; the shares sum to 1 for
    scores in [0.5, 5.5), which every valid answer on the [1, 5] scale is.
    """
    if scores.numel() == 0:
        return {}
    bins = torch.floor(scores.double() + 0.5)
    return {f"ans_{d}": (bins == d).double().mean().item() for d in SCORE_BINS}


class FormatReward:
    """TRL reward function: 1.0 for a completion in the expected layout, else 0.0 (per process)."""

    def __init__(
        self, num_scores: int, answer_format: str, rule: str = "strict", name: str = "format"
    ):
        self.__name__ = name
        self.num_scores = num_scores
        self.answer_format = answer_format
        self.rule = rule
        format_reward("", num_scores, answer_format, rule)  # reject an unknown rule or format now

    def __call__(
        self, prompts=None, completions=None, completion_ids=None, **kwargs
    ) -> list[float]:
        if completions is None:
            raise ValueError(f"reward {self.__name__!r} was called without completions")
        return [
            format_reward(completion_text(c), self.num_scores, self.answer_format, self.rule)
            for c in completions
        ]


__all__ = ["GroupedBatch", "SCORE_BINS", "answer_histogram", "group_batch", "gather_shards", "GroupedReward", "FormatReward"]
