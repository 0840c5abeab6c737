"""`make demo` end to end, shortened: every stage runs and writes what the README promises.

Whether the demo *learns* takes its full 600 steps (minutes); `make demo` prints that and
the README records it. Here a few steps check the wiring: the summary's keys and values,
the best-on-val checkpoint, the curves, the printed table, and the standard evaluation
folder that the demo's last step writes (the same numbers as the README's eval command).
"""

import json
import math

import pytest

from preresq.config import compose
from preresq.paths import REPO_ROOT


def test_demo_trains_with_the_preference_branch_of_the_prpo_reward():
    cfg = compose("train", ["+experiment=demo"])
    assert cfg.reward.preset == "preresq"
    assert (cfg.reward.params.w_balance, cfg.reward.params.w_gt_rank) == (0.0, 0.0)
    assert cfg.reward.params.w_pairwise > 0 and cfg.reward.params.w_triplet_rank > 0


def test_demo_test_split_is_the_iqa_demo_card():
    """`scripts/eval.py suite=iqa_demo` reads the split the demo holds out, and says so if not."""
    from preresq.data.benchmarks import load_card
    from preresq.demo import check_test_card, run_demo

    cfg = compose("train", ["+experiment=demo"])
    card = load_card("iqa_demo", paths=cfg.paths)
    check_test_card(cfg, card)  # the shipped configs agree
    assert card.split == "test" and card.reader_args["kinds"] == ["white_noise"]
    changed = compose("train", ["+experiment=demo", "data.reader_args.noise_std=0.2"])
    with pytest.raises(ValueError, match="iqa_demo.yaml"):
        run_demo(changed)  # before anything is built or trained


@pytest.mark.slow
def test_short_demo_writes_summary_curves_and_table(tmp_path, capsys):
    from preresq.demo import run_demo

    cfg = compose("train", ["+experiment=demo", f"output_dir={tmp_path / 'demo'}",
                            f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}",
                            "demo.warmup_steps=20", "trainer.max_steps=4",
                            "trainer.args.logging_steps=1", "trainer.args.save_steps=2",
                            "validation.every_n_steps=2"])
    summary = run_demo(cfg)

    out = tmp_path / "demo"
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["readout"] == "expected" and summary["test_items"] > 0
    for name in ("init", "before", "after"):
        row = summary[name]
        assert {"srcc", "plcc", "valid_rate", "srcc_greedy"} <= set(row)
        assert 0.0 <= row["valid_rate"] <= 1.0
        # The expected-score readout always gives a score, so SRCC is a number.
        assert -1.0 <= row["srcc"] <= 1.0 and not math.isnan(row["srcc"])
    # 20 warm-up steps on random digits teach the one-digit layout.
    assert summary["before"]["valid_rate"] > summary["init"]["valid_rate"]
    assert summary["before"]["valid_rate"] >= 0.9

    stage = out / "main"
    val = [json.loads(line) for line in (stage / "validation.jsonl").read_text().splitlines()]
    assert [v["step"] for v in val] == [0, 2, 4]
    best = json.loads((stage / "best" / "validation.json").read_text())
    assert best["val/srcc"] == max(v["val/srcc"] for v in val)
    assert summary["checkpoint"] == str(stage / "best")
    assert (out / "training_curves.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "| after GRPO |" in printed and "summary.json" in printed
    assert summary["seed"] == 42
    assert summary["reward"] == {"preset": "preresq", "params": dict(cfg.reward.params)}

    # The last step: evaluate() on the kept weights, the standard results folder.
    ev = out / "eval"
    assert summary["evaluation"]["dir"] == str(ev)
    rows = [json.loads(x) for x in (ev / "predictions" / "iqa_demo.jsonl").read_text().splitlines()]
    assert len(rows) == summary["test_items"] == summary["evaluation"]["n"]
    results = json.loads((ev / "results.json").read_text())
    assert results["model_path"] == str(stage / "best")
    assert (ev / "results.md").is_file()
    assert (ev / "plots" / "iqa_demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Greedy answers both times: the evaluation agrees with the demo's own greedy readout.
    bench = results["benchmarks"]["iqa_demo"]
    assert bench["n_valid"] / bench["n"] == pytest.approx(summary["after"]["valid_rate"])
    if summary["after"]["srcc_greedy"] is not None:
        assert bench["srcc"] == pytest.approx(summary["after"]["srcc_greedy"])
    # README's command (scripts/eval.py with these overrides) gives the same numbers.
    from preresq.demo import evaluation_overrides
    from preresq.evaluation import evaluate

    again_dir = tmp_path / "eval_again"
    overrides = [o for o in evaluation_overrides(cfg, stage / "best") if not o.startswith("output_dir=")]
    evaluate(compose("eval", [*overrides, f"output_dir={again_dir}",
                              f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}"]))
    again = json.loads((again_dir / "results.json").read_text())["benchmarks"]["iqa_demo"]
    assert {k: again[k] for k in ("n_valid", "srcc", "plcc")} == {k: bench[k] for k in ("n_valid", "srcc", "plcc")}
    assert (again_dir / "predictions" / "iqa_demo.jsonl").read_text() == \
        (ev / "predictions" / "iqa_demo.jsonl").read_text()

    # Running the demo again replaces the first run (same seed: the same summary).
    rerun = run_demo(cfg)
    assert {k: v for k, v in rerun.items() if k != "seconds"} == \
        {k: v for k, v in summary.items() if k != "seconds"}
