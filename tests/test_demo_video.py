"""`make demo-video` end to end, shortened, and the views ablation's wiring.

Whether the video demo *learns* takes its full run (docs/video_demo.md records it); here a
few steps check the wiring: the clip set and its test card, the summary's keys (per kind
too), the kept weights differ from the warm-up's, the curves, the standard evaluation
folder, and the views ablation's table and resume.
"""

import json
import sys

import pytest
import torch

from preresq.config import compose
from preresq.paths import REPO_ROOT

CACHE = f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}"
SHORT = ["demo.warmup_steps=5", "trainer.max_steps=2", "trainer.args.logging_steps=1",
         "trainer.args.save_steps=2", "validation.every_n_steps=2"]


def test_video_demo_config():
    from preresq.data.benchmarks import load_card
    from preresq.data.demo_video import TEMPORAL_KINDS
    from preresq.demo import check_test_card, eval_card, run_demo

    cfg = compose("train", ["+experiment=demo_video"])
    assert (cfg.reward.preset, cfg.reward.params.w_balance, cfg.reward.params.w_gt_rank) == ("preresq", 0.0, 0.0)
    assert eval_card(cfg) == "vqa_demo" and cfg.data.modality == "video"
    card = load_card("vqa_demo", paths=cfg.paths)
    check_test_card(cfg, card)  # the shipped configs agree
    # A kind no single frame shows, and at least 32 test clips.
    assert set(card.reader_args["kinds"]) <= set(TEMPORAL_KINDS) and card.expected_count >= 32
    changed = compose("train", ["+experiment=demo_video", "data.reader_args.max_level=3"])
    with pytest.raises(ValueError, match="vqa_demo.yaml"):
        run_demo(changed)  # before anything is built or trained


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
def test_short_video_demo_writes_summary_and_trains(tmp_path, capsys):
    from preresq.demo import evaluation_overrides, run_demo

    cfg = compose("train", ["+experiment=demo_video", f"output_dir={tmp_path / 'demo'}", CACHE, *SHORT])
    summary = run_demo(cfg)

    out = tmp_path / "demo"
    assert json.loads((out / "summary.json").read_text()) == summary
    for name in ("init", "before", "after"):
        row = summary[name]
        assert {"srcc", "plcc", "valid_rate", "n", "by_kind"} <= set(row)
        assert row["n"] == summary["test_items"] == 35  # 7 photo halves x (clean + 4 levels)
        assert set(row["by_kind"]) == {"flicker"} and row["by_kind"]["flicker"]["n"] == 35
    assert summary["seed"] == 42 and summary["reward"]["preset"] == "preresq"
    assert (out / "training_curves.png").stat().st_size > 10_000
    # GRPO changed the weights the warm-up left.
    kept, warm = _weights(out / "main" / "best"), _weights(out / "warmup")
    assert any(not torch.equal(kept[k], warm[k]) for k in warm)
    rows = (out / "eval" / "predictions" / "vqa_demo.jsonl").read_text().splitlines()
    assert len(rows) == 35 == summary["evaluation"]["n"]
    printed = capsys.readouterr().out
    assert "| after GRPO |" in printed and "35 videos" in printed
    # The evaluation command shows the clips as the demo did (its pixel budget).
    assert "video.mosaic_max_pixels=12544" in evaluation_overrides(cfg, out / "main" / "best")


@pytest.mark.slow
def test_short_views_ablation_writes_table_and_resumes(tmp_path, capsys):
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import ablate_views
    finally:
        sys.path.pop(0)
    args = ["--views", "middle_frame", "--seeds", "42", "--steps", "1",
            "--out", str(tmp_path), "demo.warmup_steps=2", "validation.every_n_steps=1",
            "trainer.args.logging_steps=1", CACHE]
    assert ablate_views.main(args) == 0
    md = (tmp_path / "views_ablation.md").read_text()
    assert "| middle_frame | 1 |" in md and "| middle_frame | 42 |" in md and "flicker SRCC" in md
    data = json.loads((tmp_path / "views_ablation.json").read_text())
    assert data["views"] == {"middle_frame": ["video.grid=[1,1]", "video.num_local=0"]}
    run = data["runs"]["middle_frame"][0]
    assert set(run["by_kind"]) == {"flicker"} and run["n"] == 35
    log = (tmp_path / "middle_frame" / "seed42" / "demo.log").read_text()
    assert "video.grid=[1,1]" in (tmp_path / "middle_frame" / "seed42" / "ablate_run.json").read_text()
    assert "35 videos" in log
    capsys.readouterr()
    assert ablate_views.main(args) == 0  # finished runs are skipped
    assert capsys.readouterr().out.count("finished earlier, skipped") == 1
    report = ["--views", "middle_frame", "local", "--seeds", "42", "--out", str(tmp_path), "--report"]
    assert ablate_views.main(report) == 0
    assert "| middle_frame | 42 |" in capsys.readouterr().out  # the table, nothing run
    assert not (tmp_path / "local").exists()


def test_views_table_per_kind_from_run_folders(tmp_path):
    """The table reads each run's summary (overall and per kind) and averages over seeds."""
    from preresq.views_ablation import VIEWS, markdown_table, read_view_run

    def fake(folder, seed, srcc, by_kind):
        (folder / "main").mkdir(parents=True)
        summary = {"after": {"srcc": srcc, "plcc": srcc, "valid_rate": 1.0, "n": 35,
                             "by_kind": {k: {"srcc": v} for k, v in by_kind.items()}},
                   "before": {"srcc": 0.1}, "evaluation": {"srcc": 0.5},
                   "reward": {"preset": "preresq", "params": {}}, "seed": seed, "seconds": 9.0}
        (folder / "summary.json").write_text(json.dumps(summary))
        return read_view_run(folder)

    runs = {"mosaic+local": [fake(tmp_path / "a", 42, 0.8, {"flicker": 0.8, "stutter": 0.4}),
                             fake(tmp_path / "b", 1, 0.6, {"flicker": 0.6, "stutter": None})],
            "local": [fake(tmp_path / "c", 42, 0.3, {"flicker": 0.3, "stutter": 0.0})]}
    table = markdown_table(runs)
    assert "| views | seeds | test SRCC | flicker SRCC | stutter SRCC | valid |" in table
    assert "| mosaic+local | 2 | 0.700 ± 0.100 | 0.700 ± 0.100 | n/a |" in table  # NaN spreads
    assert "| local | 42 | 0.300 | 0.300 | 0.000 | 0.500 | 0.100 | no | 9.0 |" in table
    header, rule = table.splitlines()[5:7]  # the per-run table: a rule cell per column
    assert header.count("|") == rule.count("|")
    assert list(VIEWS) == ["mosaic+local", "local", "mosaic", "middle_frame"]
