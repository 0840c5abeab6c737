"""The fault check (``scripts/fault_check.py``): kill a training run the ways clusters do, resume.

The one-process smoke (``+experiment=smoke``) runs as a subprocess, always with
``resume=true``. Each start but the last trains a random number of steps (1 to
max_steps / (faults + 1), so the faults spread over the run), then is ended by one fault,
in a random order:

- ``save``: SIGKILL while a checkpoint folder is being written (a ``checkpoint-N`` without
  its ``CHECKPOINT_COMPLETE`` is seen, and is still without it after the kill);
- ``random``: SIGKILL at a random moment, 0-``--window`` s after that step;
- ``term``: SIGTERM at such a moment; the run must save, exit with status 75 within 60 s.

The next start must go on from the newest complete checkpoint ("a resume that worked": it
trains new steps or finishes; a start that dies by itself is a failed resume). The
summary counts steps from ``metrics.jsonl`` (one line per logged step, every step in the
smoke): a step logged by two starts was trained twice (work a kill threw away), a step of
1..max_steps never logged is lost. The last start must finish the stage: ``STAGE_DONE``,
final weights, and ``global_step`` = max_steps in ``final/run_info.json``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from preresq.paths import REPO_ROOT
from preresq.training.checkpoints import COMPLETE_MARKER, checkpoints, is_complete
from preresq.training.stop_signal import STOPPED_EXIT_STATUS

KINDS = ("save", "random", "term")
TERM_GRACE_S = 60.0


def logged_steps(metrics: Path) -> list[int]:
    """The step of every training log line of ``metrics.jsonl`` (a line cut by a kill is skipped)."""
    steps = []
    if not metrics.is_file():
        return steps
    for line in metrics.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in row:  # not the end-of-training summary (train_runtime...)
            steps.append(int(row["step"]))
    return steps


def step_figures(steps: list[int], max_steps: int) -> tuple[int, int]:
    """(steps trained twice or more: extra times, steps of 1..max_steps never logged)."""
    counts = Counter(steps)
    twice = sum(n - 1 for n in counts.values())
    lost = sum(1 for s in range(1, max_steps + 1) if s not in counts)
    return twice, lost


@dataclass
class FaultReport:
    max_steps: int
    kills: Counter = field(default_factory=Counter)
    resumes: int = 0
    resumes_ok: int = 0
    trained_twice: int = 0
    lost: int = 0
    final_step: int | None = None
    stage_done: bool = False
    set_aside: int = 0
    term_exit_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (not self.failures and self.resumes_ok == self.resumes and self.lost == 0
                and self.stage_done and self.final_step == self.max_steps)

    def line(self) -> str:
        k = self.kills
        term = f", SIGTERM exits in {max(self.term_exit_s):.1f} s at most" if self.term_exit_s else ""
        return (f"fault check: {sum(k.values())} kills ({k['save']} SIGKILL during a save, "
                f"{k['random']} SIGKILL at random, {k['term']} SIGTERM){term}; "
                f"{self.resumes_ok}/{self.resumes} resumes worked; steps trained twice "
                f"{self.trained_twice}, lost {self.lost}; final global_step {self.final_step} of "
                f"{self.max_steps}, STAGE_DONE {'yes' if self.stage_done else 'no'}; "
                f"{self.set_aside} incomplete checkpoint(s) set aside"
                + (f"; FAILED: {'; '.join(self.failures)}" if self.failures else ""))

    def to_json(self) -> dict:
        out = asdict(self)
        out["kills"] = dict(self.kills)
        out["ok"] = self.ok
        return out


def _env() -> dict:
    drop = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return env


class FaultCheck:
    def __init__(self, output_dir: Path, max_steps: int, save_steps: int, overrides: list[str],
                 seed: int = 0, window_s: float = 3.0, timeout_s: float = 600.0):
        self.run = Path(output_dir)
        self.stage = self.run / "main"
        self.metrics = self.stage / "metrics.jsonl"
        self.max_steps, self.window_s, self.timeout_s = max_steps, window_s, timeout_s
        self.rng = random.Random(seed)
        self.command = [sys.executable, str(REPO_ROOT / "scripts" / "train.py"), "+experiment=smoke",
                        f"output_dir={self.run}", f"trainer.max_steps={max_steps}",
                        f"trainer.args.save_steps={save_steps}", "resume=true", *overrides]
        self.report = FaultReport(max_steps)
        self.starts = 0

    def _start(self):
        self.starts += 1
        log = (self.run.parent / f"{self.run.name}.start{self.starts}.log").open("w")
        proc = subprocess.Popen(self.command, cwd=REPO_ROOT, env=_env(), stdout=log,
                                stderr=subprocess.STDOUT)
        return proc, log

    def _wait_for_new_steps(self, proc, before: int, count: int) -> bool:
        """Until this start has logged ``count`` steps (True), or the process ended (False)."""
        deadline = time.monotonic() + self.timeout_s
        while proc.poll() is None and time.monotonic() < deadline:
            if len(logged_steps(self.metrics)) >= before + count:
                return True
            time.sleep(0.05)
        return proc.poll() is None

    def _kill_in_save(self, proc) -> bool:
        """SIGKILL once a checkpoint folder without its marker is seen; True if it stayed incomplete."""
        deadline = time.monotonic() + self.timeout_s
        while proc.poll() is None and time.monotonic() < deadline:
            for folder in checkpoints(self.stage):
                if not (folder / COMPLETE_MARKER).exists():
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return folder.is_dir() and not is_complete(folder)
            time.sleep(0.002)
        return False

    def _fault(self, kind: str, gap: int) -> str:
        """One start ended by ``kind`` after 1-``gap`` new steps: 'killed', 'finished', or a failure."""
        before = len(logged_steps(self.metrics))
        proc, log = self._start()
        try:
            if not self._wait_for_new_steps(proc, before, self.rng.randint(1, max(gap, 1))):
                return self._ended(proc)
            if kind == "save":
                if self._kill_in_save(proc):
                    return "killed"
                if proc.poll() is None:
                    proc.kill()
                    return f"start {self.starts}: no save seen in {self.timeout_s:.0f} s"
                return "missed" if proc.returncode == -signal.SIGKILL else self._ended(proc)
            time.sleep(self.rng.uniform(0.0, self.window_s))
            if proc.poll() is not None:
                return self._ended(proc)
            if kind == "random":
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return "killed"
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                return f"start {self.starts}: no exit within {TERM_GRACE_S:.0f} s of SIGTERM"
            self.report.term_exit_s.append(time.monotonic() - sent)
            text = Path(log.name).read_text()
            if rc == 0 and "training finished" in text:
                return "finished"  # the signal came after the last step's save
            if rc != STOPPED_EXIT_STATUS or "stopped by SIGTERM at step" not in text:
                return f"start {self.starts}: SIGTERM gave exit status {rc}, not a stop and save"
            return "killed"
        finally:
            log.close()

    def _ended(self, proc) -> str:
        rc = proc.wait()
        return "finished" if rc == 0 else f"start {self.starts} died by itself (exit status {rc})"

    def _judge(self, outcome: str) -> bool:
        """Count the start; a start that is not ended by us or by finishing is a failure."""
        worked = outcome in ("killed", "missed", "finished")
        if self.starts > 1:
            self.report.resumes += 1
            self.report.resumes_ok += worked
        if not worked:
            self.report.failures.append(outcome)
        return worked

    def run_all(self, faults: list[str]) -> FaultReport:
        self.run.parent.mkdir(parents=True, exist_ok=True)
        pending, misses = list(faults), 0
        gap = self.max_steps // (len(faults) + 1)  # spread the faults over the run
        while pending:
            outcome = self._fault(pending[0], gap)
            if not self._judge(outcome):
                return self._finish()
            if outcome == "finished":
                self.report.failures.append(f"the run finished before {len(pending)} fault(s) "
                                            f"could land: give it more steps")
                return self._finish()
            if outcome == "missed":  # killed just after the save ended: a random moment after all
                self.report.kills["random"] += 1
                misses += 1
                if misses > 10:
                    self.report.failures.append("no kill landed inside a save in 10 tries")
                    return self._finish()
                continue
            self.report.kills[pending.pop(0)] += 1
        proc, log = self._start()  # the last start: it must finish the stage
        try:
            self._judge(self._ended(proc))
        finally:
            log.close()
        return self._finish()

    def _finish(self) -> FaultReport:
        twice, lost = step_figures(logged_steps(self.metrics), self.max_steps)
        self.report.trained_twice, self.report.lost = twice, lost
        info = self.stage / "final" / "run_info.json"
        if info.is_file():
            self.report.final_step = json.loads(info.read_text()).get("global_step")
        self.report.stage_done = ((self.stage / "STAGE_DONE").is_file()
                                  and (self.stage / "final" / "model.safetensors").is_file())
        self.report.set_aside = sum(1 for p in self.stage.glob("incomplete-checkpoint-*"))
        return self.report


def fault_plan(save: int, random_kills: int, term: int, seed: int) -> list[str]:
    faults = ["save"] * save + ["random"] * random_kills + ["term"] * term
    random.Random(seed).shuffle(faults)
    return faults
