"""Runs that survive kills: a full disk, SIGTERM (one process and torchrun), SIGKILL in a save."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from preresq.config import compose
from preresq.paths import REPO_ROOT
from preresq.training.checkpoints import DiskFullError, checkpoints, is_complete
from preresq.training.fault_check import logged_steps

pytestmark = pytest.mark.slow


def _cfg(tmp_path, *extra):
    return compose("train", ["+experiment=smoke", f"output_dir={tmp_path / 'run'}",
                             f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}", *extra])


def _global_step(stage: Path) -> int:
    return json.loads((stage / "final" / "run_info.json").read_text())["global_step"]


def test_a_full_disk_keeps_the_previous_checkpoint_and_resume_goes_on(tmp_path, monkeypatch):
    """The second save fails half-way for lack of space: checkpoint-1 stays the complete one,
    the run ends naming the folder and the space needed, resume=true sets the torn
    checkpoint-2 aside and finishes; rotation (save_total_limit=2) never took a complete one
    before its successor was complete."""
    from preresq.training import train
    from preresq.training.trainer import PreresqGRPOTrainer

    real = PreresqGRPOTrainer._save_optimizer_and_scheduler
    saves = []

    def disk_fills_up(self, output_dir):
        saves.append(output_dir)
        if len(saves) == 2:
            Path(output_dir, "optimizer.pt").write_bytes(b"\0" * 10)  # what fitted
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, output_dir)

    monkeypatch.setattr(PreresqGRPOTrainer, "_save_optimizer_and_scheduler", disk_fills_up)
    with pytest.raises(DiskFullError) as raised:
        train(_cfg(tmp_path, "trainer.max_steps=3"))
    stage = tmp_path / "run" / "main"
    message = str(raised.value)
    assert "writing checkpoint-2" in message and str(stage) in message
    assert "(the size of checkpoint-1)" in message and f"{stage / 'checkpoint-1'} is complete" in message
    assert is_complete(stage / "checkpoint-1") and not is_complete(stage / "checkpoint-2")
    assert not (stage / "STAGE_DONE").exists()

    monkeypatch.undo()
    final = train(_cfg(tmp_path, "trainer.max_steps=3", "resume=true"))
    assert (stage / "incomplete-checkpoint-2" / "optimizer.pt").stat().st_size == 10  # kept, not deleted
    assert [p.name for p in checkpoints(stage)] == ["checkpoint-2", "checkpoint-3"]
    assert all(is_complete(p) for p in checkpoints(stage))
    assert _global_step(stage) == 3 and (final / "model.safetensors").is_file()
    assert logged_steps(stage / "metrics.jsonl") == [1, 2, 2, 3]  # step 2 again, nothing lost

    # Killed while final/ was written: the stage is not finished; its last step is
    # checkpointed, so final/ comes from checkpoint-3 (resuming would train a step 4).
    import shutil

    (stage / "STAGE_DONE").unlink()
    shutil.rmtree(final)
    final.mkdir()
    (final / "model.safetensors").write_bytes(b"cut")
    assert train(_cfg(tmp_path, "trainer.max_steps=3", "resume=true")) == final
    assert _global_step(stage) == 3 and (stage / "STAGE_DONE").read_text() == "3\n"
    assert (final / "model.safetensors").read_bytes() == (stage / "checkpoint-3" / "model.safetensors").read_bytes()
    assert (stage / "incomplete-final" / "model.safetensors").read_bytes() == b"cut"
    assert logged_steps(stage / "metrics.jsonl") == [1, 2, 2, 3]  # no step trained


def test_sigterm_saves_the_step_reached_and_resume_finishes(tmp_path, monkeypatch):
    """SIGTERM after step 5 of a 40-step stage that saves every 1000 steps: the run finishes
    step 6, saves it (a second SIGTERM in the middle of that save changes nothing), exits
    with status 75 and the stop message; resume=true finishes at step 40."""
    import importlib

    from transformers import TrainerCallback

    from preresq.training.stop_signal import STOPPED_EXIT_STATUS
    from preresq.training.trainer import PreresqGRPOTrainer

    training = importlib.import_module("preresq.training.train")
    sent = {}

    class Scheduler(TrainerCallback):  # plays SLURM: a real signal to this process
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.global_step == 5 and "loss" in (logs or {}) and "at" not in sent:
                sent["at"] = time.monotonic()
                os.kill(os.getpid(), signal.SIGTERM)

    real_build, real_rng = training.build_trainer, PreresqGRPOTrainer._save_rng_state

    def build(*args, **kwargs):
        trainer = real_build(*args, **kwargs)
        trainer.add_callback(Scheduler())
        return trainer

    def second_sigterm_mid_save(self, output_dir):  # model and optimizer written, RNG next
        os.kill(os.getpid(), signal.SIGTERM)
        return real_rng(self, output_dir)

    monkeypatch.setattr(training, "build_trainer", build)
    monkeypatch.setattr(PreresqGRPOTrainer, "_save_rng_state", second_sigterm_mid_save)
    cfg = _cfg(tmp_path, "trainer.max_steps=40", "trainer.args.save_steps=1000")
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as raised:
        training.train(cfg)
    seconds = time.monotonic() - sent["at"]
    assert raised.value.code == STOPPED_EXIT_STATUS
    assert raised.value.message == "stopped by SIGTERM at step 6 of stage main; resume=true continues"
    assert seconds < 60, f"{seconds:.1f} s from SIGTERM to exit"
    stage = tmp_path / "run" / "main"
    assert [p.name for p in checkpoints(stage)] == ["checkpoint-6"] and is_complete(stage / "checkpoint-6")
    assert json.loads((stage / "checkpoint-6" / "trainer_state.json").read_text())["global_step"] == 6
    assert not (stage / "final").exists() and not (stage / "STAGE_DONE").exists()
    assert signal.getsignal(signal.SIGTERM) is handler  # the run's handler is gone with it

    monkeypatch.undo()
    training.train(_cfg(tmp_path, "trainer.max_steps=40", "trainer.args.save_steps=1000", "resume=true"))
    assert _global_step(stage) == 40 and (stage / "STAGE_DONE").is_file()
    assert logged_steps(stage / "metrics.jsonl") == list(range(1, 41))  # no step twice, none lost
    print(f"SIGTERM to the end of train(): {seconds:.2f} s (one step, a save, the trainer's end)")


def _env():
    from preresq.training.process_group import LAUNCHER_VARS

    env = {k: v for k, v in os.environ.items() if k not in (*LAUNCHER_VARS, "LOCAL_WORLD_SIZE")}
    return {**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
            "PYTHONPATH": str(REPO_ROOT)}


def test_sigterm_through_torchrun_stops_both_ranks_at_one_step(tmp_path):
    """torchrun --nproc_per_node=2 (gloo) gets SIGTERM and forwards it: both ranks stop after
    the same step, the checkpoint holds both ranks' files, and the run resumes to the end."""
    stage = tmp_path / "run" / "main"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29561",
               str(REPO_ROOT / "scripts" / "train.py"), "+experiment=smoke", f"output_dir={tmp_path / 'run'}",
               "trainer.items_per_step=4", "trainer.max_steps=10", "trainer.args.save_steps=1000",
               "resume=true"]
    log = tmp_path / "start1.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command, env=_env(), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while len(logged_steps(stage / "metrics.jsonl")) < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        assert proc.poll() is None, log.read_text()[-3000:]
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    seconds = time.monotonic() - sent
    text = log.read_text()
    stops = [line.split("stopped by SIGTERM at step ")[1].split()[0] for line in text.splitlines()
             if "stopped by SIGTERM at step " in line]
    assert len(stops) == 2 and stops[0] == stops[1], text[-5000:]  # one line per rank, one step
    step = int(stops[0])
    assert 2 <= step < 10
    folder = stage / f"checkpoint-{step}"
    assert [p.name for p in checkpoints(stage)] == [folder.name] and is_complete(folder)
    assert json.loads((folder / "CHECKPOINT_COMPLETE").read_text())["world_size"] == 2
    assert (folder / "rng_state_0.pth").is_file() and (folder / "rng_state_1.pth").is_file()
    print(f"torchrun: SIGTERM to exit {seconds:.1f} s, both ranks stopped at step {step}")

    again = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert f"resuming from checkpoint-{step}" in again.stdout + again.stderr
    assert _global_step(stage) == 10
    assert sorted(set(logged_steps(stage / "metrics.jsonl"))) == list(range(1, 11))


def test_fault_check_kills_in_a_save_and_at_random_and_the_run_finishes(tmp_path):
    """The CI-size fault check: SIGKILL once while a checkpoint is written, once at random."""
    figures = tmp_path / "fault.json"
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "fault_check.py"), "--steps", "6", "--save-kills", "1",
         "--random-kills", "1", "--sigterms", "0", "--window", "1", "--output-dir", str(tmp_path / "run"),
         "--json", str(figures)],
        env=_env(), capture_output=True, text=True, timeout=900)
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    report = json.loads(figures.read_text())
    assert report["ok"] and report["kills"]["save"] == 1 and report["kills"]["random"] >= 1
    assert report["resumes"] == report["resumes_ok"] >= 2
    assert report["lost"] == 0 and report["final_step"] == 6 and report["stage_done"]
    assert report["set_aside"] >= 1  # the checkpoint the save kill cut is kept, renamed
    assert out.stdout.count("\n") == 1 and out.stdout.startswith("fault check: ")


AGREE = """
import os, signal, torch.distributed as dist
from preresq.training.stop_signal import agree
dist.init_process_group("gloo")
rank = dist.get_rank()
line = f"rank {rank} agrees on {agree(signal.SIGUSR1 if rank == 1 else None)} {agree(None)}\\n"
os.write(1, line.encode())  # one write: the two ranks share torchrun's stdout (print interleaved)
dist.barrier()
dist.destroy_process_group()  # a live gloo group at exit can abort the process (SIGABRT)
"""


def test_ranks_agree_on_a_signal_only_one_of_them_got(tmp_path):
    script = tmp_path / "agree.py"
    script.write_text(AGREE)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          "--master_port=29563", str(script)],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    for rank in (0, 1):
        assert f"rank {rank} agrees on {int(signal.SIGUSR1)} None" in out.stdout


def _eval_argv(out, tmp_path):
    return ["suite=iqa_demo", "model=tiny", f"output_dir={out}", "batch_size=1", "max_new_tokens=8",
            "bootstrap_samples=50", "progress=false", f"hydra.run.dir={tmp_path / 'hydra'}",
            f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}"]


def test_evaluation_killed_mid_run_is_completed_by_a_rerun(tmp_path, monkeypatch):
    """scripts/eval.py SIGKILLed after 10 predictions; run again, it predicts the rest only and
    its files are those of a run never killed (the cut last line, if any, is predicted again)."""
    import runpy

    killed = tmp_path / "killed"
    predictions = killed / "predictions" / "iqa_demo.jsonl"
    partial = killed / "predictions" / "partial" / "iqa_demo.rank0.jsonl"  # appended row by row
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "scripts" / "eval.py"),
                             *_eval_argv(killed, tmp_path)], env=_env(), cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while (len(partial.read_text().splitlines()) if partial.exists() else 0) < 10:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    done = len(partial.read_text().splitlines())
    assert done < 45 and not predictions.exists(), "the run finished before the kill: the check is void"

    monkeypatch.chdir(REPO_ROOT)
    for out in (killed, tmp_path / "whole"):  # the rerun, then a run never killed
        monkeypatch.setattr(sys, "argv", ["scripts/eval.py", *_eval_argv(out, tmp_path)])
        runpy.run_path(str(REPO_ROOT / "scripts" / "eval.py"), run_name="__main__")
    whole = tmp_path / "whole"
    assert predictions.read_bytes() == (whole / "predictions" / "iqa_demo.jsonl").read_bytes()
    assert (killed / "results.json").read_bytes() == (whole / "results.json").read_bytes()
    print(f"evaluation killed after {done} of 45 predictions; the rerun completed it")
