"""The SLURM template requeues and resumes by itself: its directives, and its shell run
against stand-ins for srun, torchrun and scontrol (no SLURM here) that record what they get."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from omegaconf import OmegaConf

from preresq.paths import CONFIG_DIR, REPO_ROOT

TEMPLATE = REPO_ROOT / "scripts" / "slurm" / "train_iqa_6k.sbatch"

FAKE_TORCHRUN = """#!/bin/bash
echo "torchrun $*" >> "$FAKE_LOG"
trap 'echo "torchrun got TERM" >> "$FAKE_LOG"; exit 75' TERM
echo started >> "$FAKE_LOG"
while :; do sleep 0.05; done
"""
FAKE_SRUN = '#!/bin/bash\nexec "$@"\n'  # one task; the real srun forwards signals to its tasks
FAKE_SCONTROL = """#!/bin/bash
if [ "$1" = show ]; then echo node1; echo node2; else echo "scontrol $*" >> "$FAKE_LOG"; fi
"""


def _directives() -> dict:
    out = {}
    for line in TEMPLATE.read_text().splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --"):].partition("=")
            out[key.strip()] = value.strip()
    return out


def test_the_template_asks_for_a_notice_a_requeue_and_always_resumes():
    directives = _directives()
    assert "requeue" in directives
    match = re.fullmatch(r"B:(\w+)@(\d+)", directives["signal"])
    assert match, directives["signal"]
    assert int(match.group(2)) >= 300  # a 7B step (1-2 min) + a save (docs/fault_tolerance.md)
    text = TEMPLATE.read_text()
    assert f"trap time_limit_notice {match.group(1)}" in text
    # what the shell forwards must be a signal training saves on
    stop = OmegaConf.load(CONFIG_DIR / "trainer" / "grpo.yaml").stop_signals
    assert "SIGTERM" in stop and "kill -TERM" in text
    assert "resume=true" in text and "--shutdown-timeout=" in text


def _run(tmp_path, send):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("torchrun", FAKE_TORCHRUN), ("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log),
           "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_NNODES": "2",
           "SLURM_NODEID": "0", "SLURM_SUBMIT_DIR": str(tmp_path)}
    shell = subprocess.Popen(["bash", str(TEMPLATE)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while "started" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline and shell.poll() is None
        time.sleep(0.05)
    send(shell)
    output = shell.communicate(timeout=30)[0]
    return shell.returncode, log.read_text(), output


def test_the_time_limit_notice_stops_training_and_requeues_the_job(tmp_path):
    status, calls, output = _run(tmp_path, lambda shell: shell.send_signal(signal.SIGUSR1))
    assert "torchrun got TERM" in calls  # forwarded by the shell (B: signals only the shell)
    launch = next(line for line in calls.splitlines() if line.startswith("torchrun "))
    assert "resume=true" in launch and "run_name=iqa_6k" in launch and "--node_rank=0" in launch
    assert "scontrol requeue 4242" in calls
    assert status == 75, output


def test_a_preemption_leaves_the_shell_waiting_for_the_save_and_slurm_requeues(tmp_path):
    def preempt(shell):  # SLURM signals the batch shell and the step's processes itself
        shell.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        children = Path(f"/proc/{shell.pid}/task/{shell.pid}/children").read_text().split()
        for pid in children:  # srun's task: the torchrun stand-in
            os.kill(int(pid), signal.SIGTERM)

    status, calls, output = _run(tmp_path, preempt)
    assert "torchrun got TERM" in calls and "training ended with status 75" in output
    assert "scontrol requeue" not in calls  # SLURM requeues a preempted --requeue job itself
