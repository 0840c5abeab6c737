"""The reward ablation: a run's figures from its folder, the table and plot, resuming, the script."""

from __future__ import annotations

import json
import sys

import pytest

from preresq.ablation import COLLAPSE_SHARE, VARIANTS, aggregate, markdown_table, read_run
from preresq.paths import REPO_ROOT
from preresq.rewards import build_reward_funcs


def _fake_run(folder, seed, collapse_from=None, steps=100, srcc=0.7):
    """A finished demo folder: summary.json and the training logs the ablation reads."""
    (folder / "main").mkdir(parents=True)
    summary = {"after": {"srcc": srcc, "plcc": srcc - 0.05, "valid_rate": 1.0},
               "before": {"srcc": 0.1}, "evaluation": {"srcc": None},
               "reward": {"preset": "preresq", "params": {}}, "seed": seed, "seconds": 9.0}
    (folder / "summary.json").write_text(json.dumps(summary))
    with (folder / "main" / "metrics.jsonl").open("w") as f:
        for step in range(10, steps + 1, 10):
            hist = [0.2] * 5
            if collapse_from is not None and step >= collapse_from:
                hist = [0.0, 0.0, 0.96, 0.02, 0.02]
            row = {"step": step, "entropy": 1.5 if hist[2] < 0.5 else 0.05,
                   "frac_reward_zero_std": 0.0 if hist[2] < 0.5 else 0.8}
            row.update({f"rewards/preresq/ans_{d}": v for d, v in zip(range(1, 6), hist, strict=True)})
            f.write(json.dumps(row) + "\n")
    (folder / "main" / "validation.jsonl").write_text(
        "".join(json.dumps({"step": s, "val/srcc": 0.1 * s / steps}) + "\n" for s in (0, 50, 100)))


def test_a_run_that_collapses_reads_as_collapsed(tmp_path):
    _fake_run(tmp_path / "a", 42, collapse_from=60)
    _fake_run(tmp_path / "b", 1)
    a, b = read_run(tmp_path / "a"), read_run(tmp_path / "b")
    assert a["collapsed"] and a["collapse_step"] == 60 and a["dominant_share"] >= COLLAPSE_SHARE
    assert (a["entropy"], a["zero_spread"]) == (0.05, 0.8)  # last entropy, mean over the tail
    assert not b["collapsed"] and b["collapse_step"] is None and b["zero_spread"] == 0.0
    assert a["greedy_srcc"] != a["greedy_srcc"]  # no greedy score: NaN, never a made-up number
    assert a["val_steps"] == [0, 50, 100]

    row = aggregate([a, b])
    assert row["collapsed"] == 1 and row["srcc"] == pytest.approx(0.7) and row["srcc_sd"] == 0.0
    table = markdown_table({"preresq": [a, b]})
    assert "| preresq | 2 | 0.700 ± 0.000 |" in table and "| 1/2 |" in table
    assert "| preresq | 42 |" in table and "yes (step 60)" in table and "| n/a |" in table


def test_variants_are_the_issues_five_rewards():
    from preresq.config import compose

    assert list(VARIANTS) == ["q_insight", "visualquality_r1", "preresq", "preresq_pref",
                              "preresq_no_balance"]
    for name, overrides in VARIANTS.items():  # each builds for the demo's one-digit answers
        cfg = compose("train", ["+experiment=demo", *overrides])
        funcs, _ = build_reward_funcs(cfg.reward, 1, "bare")
        assert funcs[0].__name__ == cfg.reward.preset == name.split("_no_")[0].replace("_pref", "")
    released = compose("train", ["+experiment=demo", *VARIANTS["preresq"]]).reward.params
    assert (released.w_balance, released.w_gt_rank) == (0.5, 1.0)


@pytest.mark.slow
def test_short_ablation_writes_table_and_plot_and_resumes(tmp_path, capsys):
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import ablate
    finally:
        sys.path.pop(0)
    args = ["--rewards", "q_insight", "preresq_pref", "--seeds", "42", "--steps", "2",
            "--out", str(tmp_path), "demo.warmup_steps=5", "validation.every_n_steps=2",
            "trainer.args.logging_steps=1", f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}"]
    assert ablate.main(args) == 0
    md = (tmp_path / "ablation.md").read_text()
    rows = [line.split(" | ")[0] for line in md.splitlines() if line.startswith("| ")]
    assert rows.count("| q_insight") == 2 and rows.count("| preresq_pref") == 2  # mean row + run row
    assert not any(r in rows for r in ("| preresq", "| visualquality_r1", "| preresq_no_balance"))
    assert (tmp_path / "val_srcc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((tmp_path / "ablation.json").read_text())
    assert [r["val_steps"] for r in results["q_insight"]] == [[0, 2]]
    summary = json.loads((tmp_path / "preresq_pref" / "seed42" / "summary.json").read_text())
    assert summary["reward"]["params"]["w_gt_rank"] == 0.0 and summary["seed"] == 42

    capsys.readouterr()
    assert ablate.main(args) == 0  # resumes: both runs are finished
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2
    with pytest.raises(SystemExit, match="holds a run made with"):
        ablate.main([a if a != "2" else "3" for a in args])
