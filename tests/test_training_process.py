"""How a training process is set up and what it lets go of: the one-process group without a
launcher, the release of a finished stage (vLLM engine included, with a stand-in vllm)."""

import logging

from preresq.training.one_process import LAUNCHER_VARS, launched, one_process_env, setup_one_process


def test_one_process_env_fills_only_what_is_missing():
    added = one_process_env({"MASTER_ADDR": "10.0.0.1"}, 12345)
    assert added == {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                     "MASTER_PORT": "12345"}


def test_a_plain_deepspeed_run_becomes_a_one_process_group():
    env = {"PATH": "/bin"}
    added = setup_one_process(deepspeed=True, gpus=0, environ=env)
    assert set(LAUNCHER_VARS) <= set(env) and added["WORLD_SIZE"] == "1" and env["RANK"] == "0"
    assert 0 < int(env["MASTER_PORT"]) < 65536
    assert launched(env)


def test_a_launched_or_plain_run_is_left_as_it_is():
    torchrun = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1"}
    assert setup_one_process(deepspeed=True, gpus=2, environ=dict(torchrun)) == {}
    plain = {}
    assert setup_one_process(deepspeed=False, gpus=0, environ=plain) == {} and plain == {}


def test_several_gpus_without_a_launcher_say_how_to_use_them(caplog):
    with caplog.at_level(logging.WARNING, logger="preresq.train"):
        setup_one_process(deepspeed=False, gpus=4, environ={})
    assert "torchrun --nproc_per_node=4 scripts/train.py" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="preresq.train"):
        setup_one_process(deepspeed=False, gpus=1, environ={})
    assert "torchrun" not in caplog.text
