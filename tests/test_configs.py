"""Every experiment composes; paths are anchored at the repo, not the working directory."""

import os

import pytest

from preresq.config import compose
from preresq.paths import CONFIG_DIR, REPO_ROOT

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes(name):
    from omegaconf import OmegaConf

    cfg = compose("train", [f"+experiment={name}"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["run_name"] == name
    # The demos write where the README says: outputs/demo/ and outputs/demo_video/summary.json.
    demos = ("demo", "demo_video")
    assert resolved["output_dir"].endswith(f"outputs/{name}" if name in demos else f"train/{name}")
    assert resolved["trainer"]["args"]["num_generations"] >= 2


def test_iqa_6k_is_the_paper_recipe():
    cfg = compose("train", ["+experiment=iqa_6k"])
    assert cfg.model.name_or_path == os.environ.get("PRERESQ_MODEL_7B", "Qwen/Qwen2.5-VL-7B-Instruct")
    args = cfg.trainer.args
    assert (args.learning_rate, args.beta, args.max_completion_length, args.temperature) == (1e-6, 0.04, 256, 1.0)
    assert list(cfg.stages) == ["exploration", "stability"]
    assert cfg.stages.exploration.trainer.args.num_generations == 12
    assert cfg.stages.stability.trainer.args.num_generations == 6
    assert len(cfg.stages.exploration.prompt.image.templates) > 1


def test_paths_are_anchored_at_the_repo(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PRERESQ_DATA_ROOT", raising=False)
    cfg = compose("train", [])
    assert cfg.paths.data_root == str(REPO_ROOT / "data")
