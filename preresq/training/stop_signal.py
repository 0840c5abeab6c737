"""A stop signal (SIGTERM, SIGUSR1...) saves a checkpoint of the step reached, then the run exits.

Schedulers announce the end of a job with a signal: SLURM sends SIGTERM before it kills (or
the signal of ``#SBATCH --signal``), ``torchrun`` forwards SIGTERM to its workers and
SIGKILLs them ``--shutdown-timeout`` seconds later (default 30). Python's default for
SIGTERM is to die on the spot, losing every step since the last save.

- ``StopSignals``: handlers for ``trainer.stop_signals`` that only record the signal
  (safe at any moment: nothing is written, nothing is interrupted). A second signal during
  the save is recorded too and changes nothing, so it cannot cut the save short.
- ``StopOnSignal``: a trainer callback; at every optimizer step's end it agrees across
  ranks (a MAX all-reduce of the signal number, so every rank stops at the same step, even
  when the signal reached only some of them) and asks the trainer to save and stop.
- ``train`` then raises ``StoppedBySignal``: the log says ``stopped by SIGTERM at step N
  of stage S; resume=true continues`` and the process exits with ``STOPPED_EXIT_STATUS``
  (75, EX_TEMPFAIL: "try again"), without writing the stage's ``final/`` or ``STAGE_DONE``.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable

from transformers import TrainerCallback

log = logging.getLogger("preresq.train")

STOPPED_EXIT_STATUS = 75  # sysexits' EX_TEMPFAIL: stopped cleanly, resume=true continues
UNCATCHABLE = {"SIGKILL", "SIGSTOP"}


def signal_numbers(names: Iterable[str]) -> list[int]:
    """``["SIGTERM", "USR1"]`` -> signal numbers; a clear error for a name that is not one."""
    out = []
    for name in names or []:
        full = str(name).upper()
        full = full if full.startswith("SIG") else f"SIG{full}"
        if full in UNCATCHABLE or not hasattr(signal.Signals, full) or full.startswith("SIG_"):
            known = "SIGTERM, SIGUSR1, SIGUSR2, SIGINT, SIGHUP"
            raise ValueError(f"trainer.stop_signals: {name!r} is not a signal a run can catch "
                             f"(e.g. {known})")
        out.append(int(signal.Signals[full]))
    return out


class StopSignals:
    """Record stop signals instead of dying; ``install`` / ``restore`` around a run."""

    def __init__(self, names: Iterable[str]):
        self.numbers = signal_numbers(names)
        self.received: int | None = None  # the first signal
        self.count = 0
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        # Only records: a handler runs between two bytecodes of whatever the main thread
        # does (a save included), so it must not write, raise or exit.
        self.count += 1
        if self.received is None:
            self.received = signum

    @property
    def name(self) -> str | None:
        return signal.Signals(self.received).name if self.received is not None else None

    def install(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            if self.numbers:
                log.warning("stop signals are not handled: the run is not in the main thread")
            return self
        for num in self.numbers:
            self._previous[num] = signal.signal(num, self._handle)
        return self

    def restore(self) -> None:
        for num, handler in self._previous.items():
            signal.signal(num, handler)
        self._previous.clear()

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()


def agree(signum: int | None) -> int | None:
    """The signal every rank acts on: the highest signal number any rank received (None: none).

    A collective: every rank must call it at the same point (the end of every optimizer step).
    """
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return signum
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    flag = torch.tensor([signum or 0], dtype=torch.int64, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item()) or None


class StopOnSignal(TrainerCallback):
    """At a step's end, once any rank got a stop signal: save this step and stop, on every rank."""

    def __init__(self, signals: StopSignals):
        self.signals = signals
        self.stopped_at: int | None = None
        self.signal_name: str | None = None

    def on_step_end(self, args, state, control, **kwargs):
        agreed = agree(self.signals.received)
        if agreed is not None and self.stopped_at is None:
            self.stopped_at = state.global_step
            self.signal_name = signal.Signals(agreed).name
            control.should_save = True
            control.should_training_stop = True
            log.info("%s received: saving step %d, then stopping", self.signal_name, state.global_step)
        return control


class StoppedBySignal(SystemExit):
    """The run saved and stopped on a signal; exits with ``STOPPED_EXIT_STATUS``."""

    def __init__(self, message: str):
        super().__init__(STOPPED_EXIT_STATUS)
        self.message = message


def stop_message(signal_name: str, step: int, stage: str) -> str:
    return f"stopped by {signal_name} at step {step} of stage {stage}; resume=true continues"


def stop_before_stage(signals: StopSignals, stage: str, step: int) -> None:
    """Between stages (or before the first step): stop now if any rank got a signal."""
    agreed = agree(signals.received)
    if agreed is not None:
        message = stop_message(signal.Signals(agreed).name, step, stage)
        log.warning(message)
        raise StoppedBySignal(message)
