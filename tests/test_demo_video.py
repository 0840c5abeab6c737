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
    args = ["--views", "local", "middle_frame", "--seeds", "42", "--steps", "1",
            "--out", str(tmp_path), "demo.warmup_steps=2", "validation.every_n_steps=1",
            "trainer.args.logging_steps=1", CACHE]
    assert ablate_views.main(args) == 0
    md = (tmp_path / "views_ablation.md").read_text()
    assert "| local | 1 |" in md and "| middle_frame | 42 |" in md and "flicker SRCC" in md
    data = json.loads((tmp_path / "views_ablation.json").read_text())
    assert data["views"] == {"local": ["video.grid=null"],
                             "middle_frame": ["video.grid=[1,1]", "video.num_local=0"]}
    run = data["runs"]["local"][0]
    assert set(run["by_kind"]) == {"flicker"} and run["n"] == 35
    capsys.readouterr()
    assert ablate_views.main(args) == 0  # finished runs are skipped
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2
