"""Stop signals: recorded, never fatal; the callback saves and stops; the fault check's figures."""

import os
import signal

import pytest
from transformers import TrainerControl, TrainerState

from preresq.training.fault_check import FaultReport, fault_plan, logged_steps, step_figures
from preresq.training.stop_signal import (
    STOPPED_EXIT_STATUS,
    StopOnSignal,
    StoppedBySignal,
    StopSignals,
    signal_numbers,
    stop_before_stage,
    stop_message,
)


def test_signal_names_are_checked():
    assert signal_numbers(["SIGTERM", "usr1"]) == [signal.SIGTERM, signal.SIGUSR1]
    assert signal_numbers([]) == []
    for bad in ("SIGKILL", "SIGNOPE", "SIG_IGN"):
        with pytest.raises(ValueError, match="trainer.stop_signals"):
            signal_numbers([bad])


def test_signals_are_recorded_and_the_old_handlers_come_back():
    before = signal.getsignal(signal.SIGUSR1)
    with StopSignals(["SIGUSR1", "SIGTERM"]) as signals:
        os.kill(os.getpid(), signal.SIGUSR1)  # would end the process without the handler
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal: recorded, the first one stays
        assert signals.name == "SIGUSR1" and signals.count == 2
    assert signal.getsignal(signal.SIGUSR1) is before


def test_the_callback_saves_and_stops_once_a_signal_came():
    signals = StopSignals([])
    callback = StopOnSignal(signals)
    state, control = TrainerState(), TrainerControl()
    state.global_step = 7
    callback.on_step_end(None, state, control)
    assert not control.should_save and not control.should_training_stop and callback.stopped_at is None
    signals.received = signal.SIGTERM
    callback.on_step_end(None, state, control)
    assert control.should_save and control.should_training_stop
    assert (callback.stopped_at, callback.signal_name) == (7, "SIGTERM")


def test_a_stop_before_a_stage_exits_with_the_documented_status():
    signals = StopSignals([])
    stop_before_stage(signals, "main", 0)  # no signal: nothing happens
    signals.received = signal.SIGUSR1
    with pytest.raises(StoppedBySignal) as raised:
        stop_before_stage(signals, "stability", 12)
    assert raised.value.code == STOPPED_EXIT_STATUS == 75
    assert raised.value.message == stop_message("SIGUSR1", 12, "stability") == \
        "stopped by SIGUSR1 at step 12 of stage stability; resume=true continues"


def test_fault_figures_count_repeated_and_missing_steps(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "loss": 0.0} for s in (1, 2, 3, 2, 3, 4, 6)] + [{"step": 6, "train_runtime": 1}]
    metrics.write_text("".join(f'{{"step": {r["step"]}, ' + ('"loss": 0}' if "loss" in r else
                       '"train_runtime": 1}') + "\n" for r in rows) + '{"step": 7, "lo')  # cut line
    steps = logged_steps(metrics)
    assert steps == [1, 2, 3, 2, 3, 4, 6]
    assert step_figures(steps, 6) == (2, 1)  # 2 and 3 twice; 5 never
    report = FaultReport(max_steps=6, resumes=2, resumes_ok=2, final_step=6, stage_done=True)
    assert report.ok and "2/2 resumes worked" in report.line()
    report.lost = 1
    assert not report.ok
    assert sorted(fault_plan(2, 1, 1, seed=3)) == ["random", "save", "save", "term"]
