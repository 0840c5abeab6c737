"""Logs sized for real runs: what a smoke run writes to its wandb offline folder per step."""

import pytest

from preresq.config import compose
from preresq.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def _folder_bytes(folder):
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _wandb_run(tmp_path, monkeypatch, name, *extra):
    """One smoke run logging to wandb offline; its offline-run folder and its step count."""
    import wandb

    from preresq.training import train

    # wandb keeps its settings for the process: one WANDB_DIR, runs told apart by folder.
    root = tmp_path / "wandb_dir"
    root.mkdir(exist_ok=True)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(root))
    monkeypatch.setenv("WANDB_SILENT", "true")
    before = set(root.rglob("offline-run-*"))
    cfg = compose("train", ["+experiment=smoke", f"output_dir={tmp_path / name}",
                            f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}",
                            "trainer.args.report_to=[wandb]", "trainer.args.log_completions=true",
                            "trainer.args.logging_steps=1", "trainer.max_steps=2", *extra])
    try:
        train(cfg)
    finally:
        wandb.finish()
    runs = sorted(set(root.rglob("offline-run-*")) - before)
    assert len(runs) == 1, runs
    return runs[0], int(cfg.trainer.max_steps)


def test_wandb_bytes_per_step(tmp_path, monkeypatch):
    trainer = compose("train", []).trainer
    assert trainer.args.logging_steps >= 5 and trainer.args.log_completions and trainer.log_images == 0

    run, steps = _wandb_run(tmp_path, monkeypatch, "text")
    per_step = _folder_bytes(run) / steps
    tables = list(run.rglob("completions_*.table.json"))
    print(f"wandb offline bytes per step, completions table without images: {per_step:,.0f}")
    assert tables, "no completions table was logged"
    assert "<image>" in tables[0].read_text()  # prompts as text: wandb could type the column
    assert not list(run.rglob("*.png")), "the default completions log wrote images"
    # Scalars and a table of 8 short completions per step: tens of kB, not megabytes.
    assert per_step < 150_000

    run, steps = _wandb_run(tmp_path, monkeypatch, "images", "trainer.log_images=1")
    logged = list(run.rglob("*.png"))
    print(f"... with trainer.log_images=1: {_folder_bytes(run) / steps:,.0f} bytes per step, "
          f"{len(logged)} images")
    assert 1 <= len(logged) <= 3  # one per log (2 steps and the final log)


def test_each_stage_logs_to_its_own_wandb_run(tmp_path, monkeypatch):
    """Two stages, two offline runs grouped under the run name: stage 2's steps and config
    never land in stage 1's run."""
    import wandb
    from wandb_offline import read_run

    from preresq.training import train

    root = tmp_path / "wandb_dir"
    root.mkdir()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(root))
    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb.teardown()  # settings (WANDB_DIR) are read once per wandb session: read them again
    cfg = compose("train", ["+experiment=smoke_two_stage", f"output_dir={tmp_path / 'run'}",
                            f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}",
                            "trainer.args.report_to=[wandb]", "stages.exploration.trainer.max_steps=2"])
    try:
        train(cfg)
        left_open = wandb.run
    finally:
        wandb.teardown()
    runs = {run["name"]: run for run in map(read_run, root.rglob("offline-run-*/run-*.wandb"))}
    assert sorted(runs) == ["smoke_two_stage/exploration", "smoke_two_stage/stability"]
    for stage, k, steps in (("exploration", 4, 2), ("stability", 2, 1)):
        run = runs[f"smoke_two_stage/{stage}"]
        assert (run["group"], run["job_type"]) == ("smoke_two_stage", stage)
        assert run["config"]["num_generations"] == k  # its own config, not the next stage's
        logged = [row["train/global_step"] for row in run["history"] if "train/loss" in row]
        assert logged == list(range(1, steps + 1)), logged  # one curve per run, steps from 1
        assert run["summary"]["train/global_step"] == steps
    assert left_open is None, "the last stage's run was not finished"
