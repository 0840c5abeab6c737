"""Complete-or-absent checkpoints: the marker, what resume picks, rotation, a full disk."""

import errno
import json

import pytest

from preresq.training import checkpoints as ck
from preresq.training.stages import DONE_MARKER, FINAL, stage_done


def _checkpoint(stage, step, complete=True, size=100):
    folder = stage / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w" * size)
    if complete:
        ck.mark_complete(folder, step, world_size=2)
    return folder


def test_resume_picks_the_newest_complete_checkpoint(tmp_path):
    _checkpoint(tmp_path, 2)
    _checkpoint(tmp_path, 10)  # numeric order, not the names' order
    _checkpoint(tmp_path, 11, complete=False)  # a save cut short
    (tmp_path / "checkpoint-x").mkdir()
    assert [p.name for p in ck.checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-10", "checkpoint-11"]
    assert ck.newest_complete(tmp_path) == tmp_path / "checkpoint-10"
    info = json.loads((tmp_path / "checkpoint-10" / ck.COMPLETE_MARKER).read_text())
    assert info == {"step": 10, "world_size": 2, "bytes": 100}
    assert ck.newest_complete(tmp_path / "nothing") is None


def test_incomplete_checkpoints_are_renamed_never_deleted(tmp_path, caplog):
    _checkpoint(tmp_path, 1)
    cut = _checkpoint(tmp_path, 2, complete=False)
    (tmp_path / "incomplete-checkpoint-2").mkdir()  # an earlier cut save of the same step
    with caplog.at_level("WARNING"):
        moved = ck.set_aside_incomplete(tmp_path)
    assert moved == [tmp_path / "incomplete-checkpoint-2.2"]
    assert not cut.exists() and (moved[0] / "model.safetensors").read_bytes() == b"w" * 100
    assert str(cut) in caplog.text and "incomplete-checkpoint-2.2" in caplog.text
    assert [p.name for p in ck.checkpoints(tmp_path)] == ["checkpoint-1"]
    assert ck.set_aside_incomplete(tmp_path) == []


def test_rotation_keeps_the_newest_complete_ones(tmp_path):
    for step in (1, 2, 3, 4):
        _checkpoint(tmp_path, step)
    _checkpoint(tmp_path, 5, complete=False)  # being written: neither counted nor removed
    removed = ck.rotate(tmp_path, keep=2)
    assert [p.name for p in removed] == ["checkpoint-1", "checkpoint-2"]
    assert [p.name for p in ck.checkpoints(tmp_path)] == ["checkpoint-3", "checkpoint-4", "checkpoint-5"]
    assert ck.rotate(tmp_path, keep=0) == [] and ck.rotate(tmp_path, keep=None) == []
    ck.rotate(tmp_path, keep=1)
    assert ck.newest_complete(tmp_path) == tmp_path / "checkpoint-4"


def test_rotation_cut_short_leaves_no_torn_complete_checkpoint(tmp_path, monkeypatch):
    for step in (1, 2, 3):
        _checkpoint(tmp_path, step)

    def killed(path):
        raise KeyboardInterrupt  # the process dies inside rmtree

    monkeypatch.setattr(ck.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        ck.rotate(tmp_path, keep=1)
    assert not ck.is_complete(tmp_path / "checkpoint-1")  # the marker went first
    assert ck.newest_complete(tmp_path) == tmp_path / "checkpoint-3"


def test_a_final_folder_without_stage_done_is_not_finished(tmp_path):
    (tmp_path / FINAL).mkdir()
    assert not stage_done(tmp_path) and ck.final_incomplete(tmp_path, FINAL, DONE_MARKER)
    ck.write_done_marker(tmp_path / DONE_MARKER, 60)
    assert stage_done(tmp_path) and not ck.final_incomplete(tmp_path, FINAL, DONE_MARKER)
    assert (tmp_path / DONE_MARKER).read_text() == "60\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_full_disk_names_the_folder_and_the_space_needed(tmp_path):
    previous = _checkpoint(tmp_path, 4, size=3_000_000)
    folder = tmp_path / "checkpoint-5"
    wrapped = RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    err = ck.disk_full(wrapped, folder, previous)
    assert isinstance(err, ck.DiskFullError) and err.errno == errno.ENOSPC
    text = str(err)
    assert "writing checkpoint-5" in text and str(tmp_path) in text
    assert "needs about 3.0 MB (the size of checkpoint-4)" in text
    assert f"{previous} is complete and intact" in text and "resume=true" in text
    # safetensors says it in its own words
    assert ck.disk_full(Exception("IoError(Os { kind: StorageFull })"), folder, None) is not None
    # any other error is left alone (this disk has more room than 3 MB)
    assert ck.disk_full(ValueError("bad dtype"), folder, previous) is None


def test_final_weights_from_a_checkpoint_leave_the_training_state(tmp_path):
    folder = _checkpoint(tmp_path, 6)
    for name in ("config.json", "optimizer.pt", "scheduler.pt", "rng_state_1.pth", "trainer_state.json",
                 "latest", "zero_to_fp32.py", "adapter_model.safetensors"):
        (folder / name).write_text(name)
    (folder / "global_step6").mkdir()
    copied = ck.weights_from_checkpoint(folder, tmp_path / "final")
    assert copied == ["adapter_model.safetensors", "config.json", "model.safetensors"]
    assert sorted(p.name for p in (tmp_path / "final").iterdir()) == copied


def test_a_full_disk_ends_the_command_with_its_message_and_status_2(tmp_path, capsys):
    from preresq.user_errors import USER_ERROR_STATUS, stop_on_user_errors

    with pytest.raises(SystemExit) as raised, stop_on_user_errors():
        raise ck.DiskFullError(tmp_path / "checkpoint-5", 3_000_000, 10, tmp_path / "checkpoint-4")
    assert raised.value.code == USER_ERROR_STATUS
    assert "error: no space left on the disk of" in capsys.readouterr().err
