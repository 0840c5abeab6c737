"""How a training process is set up and what it lets go of: the one-process group without a
launcher, the release of a finished stage (vLLM engine included, with a stand-in vllm)."""

import logging
import os
import sys
import types
import weakref

import pytest

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


def test_several_gpus_without_a_launcher_use_one(caplog):
    """transformers would set n_gpu to the device count and TRL refuse DataParallel after the
    model loaded: a one-process run is pinned to the first visible GPU, and says so."""
    env = {}
    with caplog.at_level(logging.WARNING, logger="preresq.train"):
        assert setup_one_process(deepspeed=False, gpus=4, environ=env) == {"CUDA_VISIBLE_DEVICES": "0"}
    assert env == {"CUDA_VISIBLE_DEVICES": "0"}
    assert "torchrun --nproc_per_node=4 scripts/train.py" in caplog.text and "uses GPU 0 only" in caplog.text
    env = {"CUDA_VISIBLE_DEVICES": "3, 5"}
    added = setup_one_process(deepspeed=True, gpus=2, environ=env)
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and added["WORLD_SIZE"] == "1"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="preresq.train"):
        assert setup_one_process(deepspeed=False, gpus=1, environ={}) == {}
    assert "torchrun" not in caplog.text
    launched_env = {"RANK": "0", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}
    assert setup_one_process(deepspeed=False, gpus=4, environ=launched_env) == {}


def test_several_gpus_after_cuda_initialised_stop_with_the_way_out():
    with pytest.raises(RuntimeError, match="CUDA_VISIBLE_DEVICES=0"):
        setup_one_process(deepspeed=False, gpus=2, environ={}, cuda_initialized=True)


def test_train_pins_a_plain_run_before_anything_loads(monkeypatch, tmp_path):
    """``train`` with a monkeypatched device count of 4 (no launcher, not use_cpu): the
    process sees one GPU before accelerate's state exists."""
    import importlib

    import torch

    from preresq.config import compose

    training = importlib.import_module("preresq.training.train")
    for name in (*LAUNCHER_VARS, "LOCAL_WORLD_SIZE", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.setenv(name, "")   # so that monkeypatch restores what train() sets
        monkeypatch.delenv(name)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    seen = {}

    def stop(cfg):
        seen["visible"] = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise _Stop

    monkeypatch.setattr(training, "_process_state", stop)
    cfg = compose("train", ["+experiment=smoke", "trainer.args.use_cpu=false", f"output_dir={tmp_path}"])
    with pytest.raises(_Stop):
        training.train(cfg)
    assert seen["visible"] == "0"


class _Stop(Exception):
    pass


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
    """A ``vllm`` module with the engine and the parallel state TRL and memory.py use, behaving
    as vLLM's sources say: ``sleep(level=2)`` releases weights and KV cache, ``wake_up`` maps
    them again (a no-op when awake), ``llm_engine.model_executor.shutdown()`` frees the engine's
    memory; an engine garbage-collected while asleep frees memory sleep already released and
    leaves a sticky CUDA error that the next engine on the allocator dies of (vLLM issue 36651,
    PR 45565); one dropped without shutdown keeps its memory (vLLM issue 21073)."""
    import trl.generation.vllm_generation as trl_vllm

    allocator = {"error": None}
    seen["default_group"] = True

    def finalize(state):
        if state["asleep"]:
            allocator["error"] = "cuMemUnmap of memory that sleep released"
        if not state["shut_down"]:
            seen.setdefault("leaked", []).append(state["number"])
        seen["default_group"] = False   # destroy_distributed_environment

    class Executor:
        def __init__(self, state):
            self.state = state

        def shutdown(self):
            self.state["shut_down"] = True

    class LLM:
        def __init__(self, **kwargs):
            if allocator["error"]:
                raise RuntimeError(f"CUDA driver error (sticky): {allocator['error']}")
            if not seen["default_group"]:
                raise RuntimeError("external_launcher: torch.distributed is not initialized")
            seen.setdefault("engines", []).append(kwargs)
            self.state = {"asleep": False, "shut_down": False, "number": len(seen["engines"])}
            self.llm_engine = types.SimpleNamespace(model_executor=Executor(self.state))
            weakref.finalize(self, finalize, self.state)
            seen["llm"] = weakref.ref(self)

        def sleep(self, level=1):
            seen["sleep"] = level
            self.state["asleep"] = True

        def wake_up(self, tags=None):
            self.state["asleep"] = False

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


class _Trainer(types.SimpleNamespace):
    __slots__ = ("__weakref__",)


def test_the_colocated_vllm_engine_sleeps_and_is_torn_down_with_its_stage(tmp_path, monkeypatch):
    """TRL 1.16 builds the engine at trainer.vllm_generation.llm with our sleep setting and
    leaves it asleep after every rollout; the stage's release wakes it, shuts it down through
    vLLM's API (kept, not collected: that would end torch's default group), and destroys
    vLLM's model-parallel groups and TRL's tensor-parallel subgroup: stage 2's engine then
    starts clean, on the same process group."""
    import torch

    from preresq.training import memory
    from preresq.training.memory import collect, release_trainer

    seen = {}
    generation_class = _stand_in_vllm(monkeypatch, seen)
    destroyed_groups = []
    monkeypatch.setattr(torch.distributed, "destroy_process_group", destroyed_groups.append)
    monkeypatch.setattr(memory, "SHUT_DOWN_VLLM_ENGINES", [])
    args = _grpo_args(tmp_path, "trainer.args.use_vllm=true")
    accelerator = _Accelerator()

    def stage():
        generation = generation_class(
            model=types.SimpleNamespace(name_or_path="tiny", named_modules=lambda: []),
            accelerator=accelerator, processing_class=None, mode=args.vllm_mode,
            enable_sleep_mode=args.vllm_enable_sleep_mode)
        return _Trainer(accelerator=accelerator, vllm_generation=generation, model=None,
                        ref_model=None, model_wrapped=None, _buffered_inputs=[{"pixel_values": 1}])

    trainer = stage()
    assert seen["engines"][0]["enable_sleep_mode"] is True and seen["sleep"] == 2  # asleep until a rollout
    trainer.vllm_generation.tp_group = tp_group = object()   # as TRL makes for tensor_parallel_size > 1
    engine = seen["llm"]
    release_trainer(trainer)
    del trainer
    collect()
    assert memory.SHUT_DOWN_VLLM_ENGINES == [engine()]   # kept until the process ends
    assert engine().state == {"asleep": False, "shut_down": True, "number": 1}   # woken, then shut down
    assert seen["destroyed"] == [True] and destroyed_groups == [tp_group]
    second = stage()   # stage 2: a new engine on the same allocator and process group
    assert len(seen["engines"]) == 2 and "leaked" not in seen and seen["default_group"]
    assert second.vllm_generation.llm is seen["llm"]()

