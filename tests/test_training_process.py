"""How a training process is set up and what it lets go of: the one-process group without a
launcher, the release of a finished stage (vLLM engine included, with a stand-in vllm)."""

import logging
import sys
import types
import weakref

from preresq.training.process_group import (
    LAUNCHER_VARS,
    launched,
    one_process_env,
    setup_one_process,
)


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


def _grpo_args(tmp_path, *overrides):
    from preresq.config import compose
    from preresq.training.train import grpo_args

    return grpo_args(compose("train", ["+experiment=smoke", *overrides]), tmp_path, [1.0, 1.0], "main")


def test_colocated_vllm_sleeps_by_default(tmp_path):
    on = ["trainer.args.use_vllm=true"]
    assert _grpo_args(tmp_path, *on, "trainer.args.vllm_mode=colocate").vllm_enable_sleep_mode is True
    assert _grpo_args(tmp_path, *on, "trainer.args.vllm_mode=server").vllm_enable_sleep_mode is False
    assert _grpo_args(tmp_path).vllm_enable_sleep_mode is False  # no vLLM
    off = _grpo_args(tmp_path, *on, "trainer.args.vllm_enable_sleep_mode=false")
    assert off.vllm_mode == "colocate" and off.vllm_enable_sleep_mode is False


class _Accelerator:
    """What TRL's VLLMGeneration and release_trainer ask of accelerate, on one process."""

    num_processes, process_index, local_process_index, is_main_process = 1, 0, 0, True
    state = types.SimpleNamespace(deepspeed_plugin=None, fsdp_plugin=None)

    def wait_for_everyone(self):
        pass

    def free_memory(self):
        pass


def _stand_in_vllm(monkeypatch, seen):
    """A ``vllm`` module with the engine and the parallel state TRL and memory.py use."""
    import trl.generation.vllm_generation as trl_vllm

    class LLM:
        def __init__(self, **kwargs):
            seen["engine"] = kwargs
            seen["llm"] = weakref.ref(self)

        def sleep(self, level):
            seen["sleep"] = level

    fake = types.ModuleType("vllm")
    fake.LLM = LLM
    distributed = types.ModuleType("vllm.distributed")
    parallel = types.ModuleType("vllm.distributed.parallel_state")
    parallel.destroy_model_parallel = lambda: seen.setdefault("destroyed", []).append(True)
    distributed.parallel_state = parallel
    for name, module in (("vllm", fake), ("vllm.distributed", distributed),
                         ("vllm.distributed.parallel_state", parallel)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(trl_vllm, "LLM", LLM, raising=False)
    monkeypatch.setattr(trl_vllm, "is_vllm_available", lambda: True)
    for name in (*LAUNCHER_VARS, "LOCAL_WORLD_SIZE"):  # TRL sets them for vLLM: restore after
        monkeypatch.delenv(name, raising=False)
    return trl_vllm.VLLMGeneration


def test_the_colocated_vllm_engine_sleeps_and_is_torn_down_with_its_stage(tmp_path, monkeypatch):
    """TRL 1.16 builds the engine at trainer.vllm_generation.llm with our sleep setting; the
    stage's release drops it and vLLM's model-parallel groups."""
    from preresq.training.memory import release_trainer

    seen = {}
    generation_class = _stand_in_vllm(monkeypatch, seen)
    args = _grpo_args(tmp_path, "trainer.args.use_vllm=true")
    accelerator = _Accelerator()
    generation = generation_class(model=types.SimpleNamespace(name_or_path="tiny", named_modules=lambda: []),
                                  accelerator=accelerator, processing_class=None, mode=args.vllm_mode,
                                  enable_sleep_mode=args.vllm_enable_sleep_mode)
    assert seen["engine"]["enable_sleep_mode"] is True and seen["sleep"] == 2  # asleep until a rollout
    trainer = types.SimpleNamespace(accelerator=accelerator, vllm_generation=generation, model=None,
                                    ref_model=None, model_wrapped=None)
    del generation
    assert trainer.vllm_generation.llm is seen["llm"]()
    release_trainer(trainer)
    assert seen["llm"]() is None, "the stage's vLLM engine is still alive"
    assert seen["destroyed"] == [True]
