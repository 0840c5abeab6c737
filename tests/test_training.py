"""End-to-end GRPO on the tiny model: parameters change, checkpoints load, resume, stages."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from preresq.config import compose
from preresq.paths import REPO_ROOT
from preresq.training.stages import stage_configs

pytestmark = pytest.mark.slow


def _cfg(tmp_path, experiment="smoke", *extra):
    return compose("train", [f"+experiment={experiment}", f"output_dir={tmp_path / 'run'}",
                             f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}", *extra])


def _params(path):
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


def test_stage_configs_merge_overrides(tmp_path):
    cfg = _cfg(tmp_path, "smoke_two_stage")
    stages = stage_configs(cfg)
    assert [n for n, _ in stages] == ["exploration", "stability"]
    assert stages[0][1].trainer.args.num_generations == 4
    assert stages[1][1].trainer.args.num_generations == 2
    assert stages[1][1].reward.params.lambda_std == 0.0
    assert "stages" not in stages[0][1]


def test_smoke_trains_checkpoints_and_resumes(tmp_path):
    """One smoke run, then the two ways of rerunning it (refused, resumed).

    A random policy's answers are all unparseable, every reward in a group is equal, the
    advantages are zero and GRPO rightly changes nothing. So the policy first gets the demo's
    format warm-up (20 supervised steps on random digits), samples at temperature 0.3 so
    that most answers are one digit, and is scored by the q_insight preset: some answers in
    a group are right, some wrong, and the weights must move.
    """
    import shutil

    from preresq.data.benchmarks import card_from_config, read_benchmark
    from preresq.demo import format_warmup
    from preresq.models import resolve_model_path
    from preresq.training import train

    digit = ["prompt=demo_digit", "reward=q_insight", "trainer.args.max_completion_length=1",
             "trainer.args.temperature=0.3", "+demo.warmup_steps=20", "+demo.warmup_lr=1e-3",
             "+demo.warmup_batch_size=16"]
    cfg = _cfg(tmp_path, "smoke", *digit)
    card = card_from_config(cfg.data)
    warm = format_warmup(cfg, resolve_model_path(cfg.model, cfg.paths.cache_dir),
                         read_benchmark(card), card, tmp_path / "warm")
    digit.append(f"model.name_or_path={warm}")
    cfg = _cfg(tmp_path, "smoke", *digit)
    init = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    final = train(cfg)
    before, after = _params(init), _params(final)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "GRPO left every parameter unchanged"
    run, stage = tmp_path / "run", tmp_path / "run" / "main"
    assert (run / "config.yaml").is_file()
    info = json.loads((run / "run_info.json").read_text())
    assert "commit" in info["git"]
    assert (stage / "checkpoint-1").is_dir() and (stage / "checkpoint-2").is_dir()
    logged = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/q_insight/invalid_rate" in m for m in logged)
    assert any(m.get("frac_reward_zero_std", 1.0) < 1.0 for m in logged), "no reward spread"

    # The saved weights load back for generation.
    from preresq.models import load_model, load_processor

    model, processor = load_model(cfg.model, path=str(final)), load_processor(cfg.model, path=str(final))
    ids = processor.tokenizer("hello", return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=2).shape[1] >= ids["input_ids"].shape[1] + 1

    # Rerunning without resume refuses to overwrite; with resume, a finished run is kept.
    with pytest.raises(FileExistsError):
        train(cfg)
    assert train(_cfg(tmp_path, "smoke", *digit, "resume=true")) == final

    # Interrupted after step 1: resume continues from checkpoint-1 to step 2.
    (stage / "STAGE_DONE").unlink()
    shutil.rmtree(stage / "final")
    shutil.rmtree(stage / "checkpoint-2")
    assert train(_cfg(tmp_path, "smoke", *digit, "resume=true")) == final
    state = json.loads((stage / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert (final / "model.safetensors").is_file()


def test_two_stages_run_in_order(tmp_path):
    from preresq.training import train

    final = train(_cfg(tmp_path, "smoke_two_stage"))
    run = tmp_path / "run"
    for stage in ("exploration", "stability"):  # the PRPO reward's components were logged
        logged = (run / stage / "metrics.jsonl").read_text()
        assert "rewards/preresq/invalid_rate" in logged
    assert final == run / "stability" / "final"
    info = json.loads((run / "stability" / "run_info.json").read_text())
    assert info["init"] == str(run / "exploration" / "final")


def test_torchrun_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           str(REPO_ROOT / "scripts" / "train.py"), "+experiment=smoke", f"output_dir={tmp_path / 'run'}",
           "trainer.args.max_steps=1"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "run" / "main" / "final" / "model.safetensors").is_file()
