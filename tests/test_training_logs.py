"""Logs sized for real runs: what a smoke run writes to its wandb offline folder per step."""

import pytest

from preresq.config import compose
from preresq.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def _folder_bytes(folder):
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _wandb_run(tmp_path, monkeypatch, name, *extra):
    import wandb

    from preresq.training import train

    out = tmp_path / name
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(out / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (out / "wandb_dir").mkdir(parents=True)
    cfg = compose("train", ["+experiment=smoke", f"output_dir={out / 'run'}",
                            f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}",
                            "trainer.args.report_to=[wandb]", "trainer.args.log_completions=true",
                            "trainer.args.logging_steps=1", "trainer.max_steps=2", *extra])
    try:
        train(cfg)
    finally:
        wandb.finish()
    runs = list((out / "wandb_dir" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    return runs[0], int(cfg.trainer.max_steps)


def test_wandb_bytes_per_step(tmp_path, monkeypatch):
    defaults = compose("train", []).trainer.args
    assert defaults.logging_steps >= 5 and defaults.log_completions and not defaults.log_multimodal

    run, steps = _wandb_run(tmp_path, monkeypatch, "text")
    per_step = _folder_bytes(run) / steps
    images = [p for p in run.rglob("*.png")]
    print(f"wandb offline bytes per step, completions table without images: {per_step:,.0f}")
    assert not images, "the default completions table logged images"
    assert (run / "files").is_dir() and any(run.rglob("*.wandb"))  # it did log
    # Every step's table (text of 8 completions) and scalars: tens of kB, not megabytes.
    assert per_step < 150_000

    run, steps = _wandb_run(tmp_path, monkeypatch, "images", "trainer.args.log_multimodal=true",
                            "trainer.args.log_unique_prompts=true")
    with_images = _folder_bytes(run) / steps
    logged = list(run.rglob("*.png"))
    print(f"... opt-in images (one row per phrasing): {with_images:,.0f} bytes, {len(logged)} images")
    # One row per prompt phrasing per log: the smoke's one template, one image per log.
    assert 1 <= len(logged) <= steps
