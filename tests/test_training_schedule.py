"""The schedule: a global batch in items gives the same steps on 1, 4 or 8 processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from preresq.config import compose
from preresq.paths import REPO_ROOT
from preresq.training.schedule import ScheduleError, micro_batch, plan_stage
from preresq.training.stages import stage_configs
from preresq.training.train import plan_run, train

KADID = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "kadid10k"


@pytest.fixture(scope="module")
def dmos_csv(tmp_path_factory):
    """The official KADID-10k dmos.csv layout, made from the shared list of all 10,125 items."""
    path = tmp_path_factory.mktemp("kadid10k") / "dmos.csv"
    rows = ["dist_img,ref_img,dmos,var"]
    for line in (KADID / "KADID-10K_mos.txt").read_text().splitlines():
        if line.strip():
            ref, dist, mos, std = line.split()
            rows.append(f"{dist},{ref},{mos},{float(std) ** 2!r}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _iqa_6k(dmos_csv, *extra):
    # Weights and media point nowhere: planning must need neither.
    return compose("train", ["+experiment=iqa_6k", f"data.labels={dmos_csv}",
                             "data.media_root=/nonexistent/images",
                             "model.name_or_path=/nonexistent/model", *extra])


@pytest.mark.parametrize("world_size", [1, 4, 8])
def test_iqa_6k_plan_is_the_same_on_any_number_of_gpus(dmos_csv, world_size):
    plans = plan_run(_iqa_6k(dmos_csv), world_size)
    assert [(p.name, p.num_generations, p.steps) for p in plans] == [
        ("exploration", 12, 764), ("stability", 6, 764)]  # 4 epochs x floor(6125 / 32) each
    for p in plans:
        assert p.num_items == 6125 and p.items_per_step == 32
        assert p.items_per_device == 32 // world_size
        assert p.per_device_train_batch_size * p.gradient_accumulation_steps == p.completions_per_device
        assert p.per_device_train_batch_size <= 48  # the memory cap
        assert p.completions_per_device * world_size == 32 * p.num_generations
    if world_size == 4:  # the released per-device numbers on the paper's 4 GPUs
        assert [(p.per_device_train_batch_size, p.gradient_accumulation_steps) for p in plans] == [
            (48, 2), (48, 1)]


def test_plan_only_prints_the_plan_without_weights_or_media(dmos_csv):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    cmd = [sys.executable, str(REPO_ROOT / "scripts" / "train.py"), "+experiment=iqa_6k",
           "plan_only=true", "world_size=8", f"data.labels={dmos_csv}",
           "data.media_root=/nonexistent/images", "model.name_or_path=/nonexistent/model"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    plan = json.loads(out.stdout.strip().splitlines()[-1])
    assert plan["world_size"] == 8 and plan["items_per_step"] == 32
    assert [(s["name"], s["num_generations"], s["steps"]) for s in plan["stages"]] == [
        ("exploration", 12, 764), ("stability", 6, 764)]
    assert plan["total_steps"] == 1528
    assert "exploration: 32 items x 12 responses" in out.stdout


def test_plan_refuses_numbers_that_do_not_divide(dmos_csv, capsys):
    with pytest.raises(ScheduleError, match=r"items_per_step=32 cannot be split over 3 processes"):
        train(_iqa_6k(dmos_csv, "plan_only=true", "world_size=3"))
    with pytest.raises(ScheduleError, match=r"trainer.args sets \['per_device_train_batch_size'\]"):
        plan_run(_iqa_6k(dmos_csv, "+trainer.args.per_device_train_batch_size=48"), 4)
    with pytest.raises(ScheduleError, match="fewer than trainer.items_per_step=32"):
        plan_stage("s", num_items=31, world_size=1, items_per_step=32, num_generations=6,
                   max_completions_per_device=48, epochs=1)


@pytest.mark.parametrize(("experiment", "expected"), [
    # Today's per-device values at world size 1: (K, per-device batch, accumulation, steps).
    ("demo", [(8, 64, 1, 600)]),
    ("smoke", [(4, 8, 1, 2)]),
    ("smoke_two_stage", [(4, 8, 1, 1), (2, 4, 1, 1)]),
])
def test_cpu_experiments_keep_their_per_device_numbers(experiment, expected):
    cfg = compose("train", [f"+experiment={experiment}",
                            f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}"])
    plans = plan_run(cfg, 1)
    assert [(p.num_generations, p.per_device_train_batch_size, p.gradient_accumulation_steps,
             p.steps) for p in plans] == expected
    # One generation batch per optimizer step, as TRL's default made it before.
    assert all(p.grpo_args()["steps_per_generation"] == p.gradient_accumulation_steps for p in plans)


def test_micro_batch_is_the_largest_divisor_under_the_cap():
    assert micro_batch(96, 48) == (48, 2)
    assert micro_batch(384, 48) == (48, 8)
    assert micro_batch(24, 48) == (24, 1)
    assert micro_batch(60, 25) == (20, 3)  # 25 does not divide 60: the next smaller that does
    assert micro_batch(7, 3) == (1, 7)
    with pytest.raises(ScheduleError):
        micro_batch(8, 0)


def test_a_stage_naming_another_preset_replaces_the_reward():
    cfg = compose("train", ["+experiment=smoke_two_stage", "~stages.stability.reward",
                            "+stages.stability.reward=q_insight"])
    (_, one), (_, two) = stage_configs(cfg)
    assert one.reward.preset == "preresq" and one.reward.params.lambda_std == 0.5
    assert two.reward.preset == "q_insight"
    assert set(two.reward.params) == {"threshold", "tol_margin"}  # nothing of preresq's leaks
    cfg = compose("train", ["+experiment=smoke_two_stage", "~stages.stability.reward",
                            "+stages.stability.reward.preset=q_insight",
                            "+stages.stability.reward.params.threshold=0.5"])
    two = stage_configs(cfg)[1][1]
    assert dict(two.reward.params) == {"threshold": 0.5, "tol_margin": 1e-6}
    # Same preset: merged, as before (the spread penalty switched off in stage 2).
    assert stage_configs(compose("train", ["+experiment=smoke_two_stage"]))[1][1].reward.params.w_gt_rank == 1.0


def test_a_real_run_refuses_a_world_size_it_does_not_have(tmp_path):
    cfg = compose("train", ["+experiment=smoke", "world_size=8", f"output_dir={tmp_path / 'run'}"])
    with pytest.raises(ScheduleError, match="world_size=8 but this run has 1 processes"):
        train(cfg)
    assert not (tmp_path / "run").exists()  # refused before writing anything
