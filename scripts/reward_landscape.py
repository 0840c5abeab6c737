"""Which answers does a reward push the demo's policy towards? (preresq.rewards.landscape)

    python scripts/reward_landscape.py reward=preresq_pref
    python scripts/reward_landscape.py reward=preresq reward.params.balance_dims=1 --json
    python scripts/reward_landscape.py reward=q_insight --batches 4000 --share 0.8

Arguments with ``=`` are Hydra overrides of the demo experiment (``+experiment=demo`` is
always applied): the answer space (one digit 1..5), the true score levels (the demo set's
``max_level``), the training shape (B images x K answers) and TRL's ``scale_rewards`` come
from it. Prints the expected GRPO advantage of each answer given each true score, under a
uniform policy and under a policy collapsed on the middle answer, then ``pull_to_middle``
and ``wrong_mode_reinforced``; ``--json`` prints one JSON line instead. A positive
``wrong_mode_reinforced`` means the reward keeps a collapse: a warning goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

import preresq.config  # noqa: F401  (registers the repo_root resolver)
from preresq.config import check_overrides, compose


def training_shape(cfg: DictConfig) -> tuple[int, int]:
    """(B, K) of one reward call on one process: the items of a generation batch and the
    answers per item. The schedule (preresq.training.schedule) makes one generation batch
    per optimizer step, so B is the step's items per process."""
    k = int(cfg.trainer.args.num_generations)
    items = cfg.trainer.get("items_per_step")
    if items is None:
        raise SystemExit("cannot tell the training shape: trainer.items_per_step is not set")
    return int(items), k


def score_levels(cfg: DictConfig) -> list[float]:
    """The demo training split's score levels (equally common: the split is class balanced)."""
    from preresq.data.demo import DemoConfig, level_score

    if cfg.data.reader != "demo_set":
        raise SystemExit(f"the landscape needs the demo set's score levels; data.reader is {cfg.data.reader!r}")
    demo = DemoConfig.from_mapping(OmegaConf.to_container(cfg.data.reader_args, resolve=True))
    return sorted(level_score(level, demo.max_level) for level in range(demo.max_level + 1))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. reward=preresq_pref")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--batches", type=int, default=2000, help="random batches per policy")
    parser.add_argument("--share", type=float, default=0.6,
                        help="the collapsed policy's share of the middle answer")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run(argv: Sequence[str] | None = None) -> dict:
    """Parse ``argv``, compute, print; return the JSON object."""
    from preresq.rewards.landscape import DIGITS, landscape_report, markdown
    from preresq.rewards.registry import build_reward_funcs

    ns = build_parser().parse_args(argv)
    check_overrides(ns.overrides)
    cfg = compose("train", ["+experiment=demo", *ns.overrides])
    prompt = cfg.prompt.image
    if int(prompt.num_scores) != 1 or prompt.answer_format != "bare":
        raise SystemExit("the landscape covers one-digit bare answers (prompt=demo_digit)")
    if cfg.trainer.args.get("multi_objective_aggregation", "sum_then_normalize") != "sum_then_normalize":
        raise SystemExit("only TRL's multi_objective_aggregation=sum_then_normalize is modelled")
    try:  # the same checks and callables as training (unknown params, balance_dims...)
        funcs, _ = build_reward_funcs(cfg.reward, 1, "bare")
    except ValueError as e:
        raise SystemExit(f"{e}\n(one-digit answers: the preresq preset needs reward.params.balance_dims=1)") from None
    score = funcs[0]
    images, k = training_shape(cfg)
    scale = str(cfg.trainer.args.get("scale_rewards", "group"))
    report = landscape_report(score.score_fn, score.params, scores=score_levels(cfg), answers=DIGITS,
                              share=ns.share, images=images, answers_per_image=k,
                              batches=ns.batches, scale=scale, seed=ns.seed)
    result = {
        "reward": {"preset": str(cfg.reward.preset), "params": score.params},
        "pull_to_middle": round(report["pull_to_middle"], 4),
        "wrong_mode_reinforced": round(report["wrong_mode_reinforced"], 4),
        "mode": report["mode"],
        "share": ns.share,
        "shape": [images, k],
        "scale_rewards": scale,
        "batches": ns.batches,
        "seed": ns.seed,
    }
    if ns.json:
        print(json.dumps(result))
    else:
        print(f"reward {result['reward']['preset']} {score.params}\n"
              f"{images} images x {k} answers per batch, {ns.batches} batches, scale_rewards={scale}\n")
        print(f"Expected GRPO advantage, uniform policy:\n\n{markdown(report['uniform'])}\n")
        print(f"Expected GRPO advantage, policy answering {report['mode']:g} "
              f"{ns.share:.0%} of the time:\n\n{markdown(report['collapsed'])}\n")
        print(f"pull_to_middle:        {result['pull_to_middle']:+.3f}  "
              f"(answer {report['mode']:g}, uniform policy, any image)")
        print(f"wrong_mode_reinforced: {result['wrong_mode_reinforced']:+.3f}  "
              f"(a wrong {report['mode']:g} under the collapsed policy)")
    if result["wrong_mode_reinforced"] > 0:
        print(f"warning: wrong_mode_reinforced = {result['wrong_mode_reinforced']:+.3f} > 0: this reward "
              "rewards a wrong dominant answer, so a policy that collapses onto one answer stays "
              "collapsed (see shared/notes/prpo_on_the_demo.md)", file=sys.stderr)
    return result


def main() -> None:
    run()


if __name__ == "__main__":
    main()
