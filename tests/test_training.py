"""End-to-end GRPO on the tiny model: parameters change, checkpoints load, resume, stages."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from preresq.config import compose
from preresq.paths import REPO_ROOT
from preresq.training.stages import stage_configs

pytestmark = pytest.mark.slow


def _cfg(tmp_path, experiment="smoke", *extra):
    return compose("train", [f"+experiment={experiment}", f"output_dir={tmp_path / 'run'}",
                             f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}", *extra])


def _params(path):
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


def test_stage_configs_merge_overrides(tmp_path):
    cfg = _cfg(tmp_path, "smoke_two_stage")
    stages = stage_configs(cfg)
    assert [n for n, _ in stages] == ["exploration", "stability"]
    assert stages[0][1].trainer.args.num_generations == 4
    assert stages[1][1].trainer.args.num_generations == 2
    assert stages[1][1].reward.params.lambda_std == 0.0
    assert "stages" not in stages[0][1]


# A random policy's answers are all unparseable, every reward in a group is equal, the
# advantages are zero and GRPO rightly changes nothing. So the policy first gets the demo's
# format warm-up (20 supervised steps on random digits) and samples at temperature 1, so
# that the answers are one digit and spread over the digits: then some answers of a group
# hit the score and the rewards of a group differ (at 0.3, all 8 answers of the first
# steps missed both images' scores and GRPO rightly did nothing).
DIGIT = ["prompt=demo_digit", "reward=q_insight", "trainer.args.max_completion_length=1",
         "trainer.args.temperature=1.0"]


@pytest.fixture(scope="module")
def warm_model(tmp_path_factory):
    from preresq.data.benchmarks import card_from_config, read_benchmark
    from preresq.demo import format_warmup
    from preresq.models import resolve_model_path

    tmp = tmp_path_factory.mktemp("warm")
    cfg = _cfg(tmp, "smoke", *DIGIT, "+demo.warmup_steps=20", "+demo.warmup_lr=1e-3",
               "+demo.warmup_batch_size=16")
    card = card_from_config(cfg.data)
    return str(format_warmup(cfg, resolve_model_path(cfg.model, cfg.paths.cache_dir),
                             read_benchmark(card), card, tmp / "warm"))


def test_smoke_trains_checkpoints_and_resumes(tmp_path, warm_model):
    """One smoke run, then the two ways of rerunning it (refused, resumed)."""
    import shutil

    from preresq.models import resolve_model_path
    from preresq.training import train

    digit = [*DIGIT, f"model.name_or_path={warm_model}"]
    cfg = _cfg(tmp_path, "smoke", *digit)
    init = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    final = train(cfg)
    before, after = _params(init), _params(final)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "GRPO left every parameter unchanged"
    run, stage = tmp_path / "run", tmp_path / "run" / "main"
    assert (run / "config.yaml").is_file()
    info = json.loads((run / "run_info.json").read_text())
    assert "commit" in info["git"]
    assert (stage / "checkpoint-1").is_dir() and (stage / "checkpoint-2").is_dir()
    from huggingface_hub import ModelCard  # final/ gets the project's card, without results

    card = ModelCard.load(final / "README.md")
    assert card.data.library_name == "transformers" and "| stages | main |" in card.text
    logged = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/q_insight/invalid_rate" in m for m in logged)
    assert any(m.get("frac_reward_zero_std", 1.0) < 1.0 for m in logged), "no reward spread"

    # The saved weights load back for generation.
    from preresq.models import load_model, load_processor

    model, processor = load_model(cfg.model, path=str(final)), load_processor(cfg.model, path=str(final))
    ids = processor.tokenizer("hello", return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=2).shape[1] >= ids["input_ids"].shape[1] + 1

    # Rerunning without resume refuses to overwrite; with resume, a finished run is kept.
    with pytest.raises(FileExistsError):
        train(cfg)
    assert train(_cfg(tmp_path, "smoke", *digit, "resume=true")) == final

    # Interrupted after step 1: resume continues from checkpoint-1 to step 2.
    (stage / "STAGE_DONE").unlink()
    shutil.rmtree(stage / "final")
    shutil.rmtree(stage / "checkpoint-2")
    assert train(_cfg(tmp_path, "smoke", *digit, "resume=true")) == final
    state = json.loads((stage / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert (final / "model.safetensors").is_file()



def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _loaded(path) -> dict:
    from transformers import AutoModelForImageTextToText

    return _state(AutoModelForImageTextToText.from_pretrained(str(path)))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_stages_continue_one_run(tmp_path, warm_model, monkeypatch):
    """Stage 2 uses its own K, starts from stage 1's final weights, keeps the initial KL
    reference, switches the reward preset, and the stage-1 trainer is freed first."""
    import gc
    import importlib
    import weakref

    # the module (the package's `train` attribute is the function of the same name)
    training = importlib.import_module("preresq.training.train")
    from preresq.training.recording import read_records

    real_build = training.build_trainer
    built = []

    def build_and_look(cfg, init_path, output_dir, stage, plan=None, initial_path=None):
        gc.collect()
        assert all(b["model"]() is None for b in built), "the previous stage's model is still alive"
        trainer = real_build(cfg, init_path, output_dir, stage, plan, initial_path)
        built.append({"stage": stage, "k": trainer.num_generations, "start": _state(trainer.model),
                      "ref": _state(trainer.ref_model), "model": weakref.ref(trainer.model)})
        return trainer

    monkeypatch.setattr(training, "build_trainer", build_and_look)
    stages = ["stages.exploration.trainer.max_steps=2", "record_rewards=true"]
    for stage, reward in (("exploration", "q_insight"), ("stability", "visualquality_r1")):
        stages += [f"stages.{stage}.prompt.image.templates=[demo_digit]",
                   f"~stages.{stage}.reward", f"+stages.{stage}.reward={reward}"]
    final = training.train(_cfg(tmp_path, "smoke_two_stage", *DIGIT,
                                f"model.name_or_path={warm_model}", *stages))
    run = tmp_path / "run"
    assert final == run / "stability" / "final"
    one, two = built
    initial, after_one = _loaded(warm_model), _loaded(run / "exploration" / "final")
    assert not _same(initial, after_one), "stage 1 changed nothing: the checks below would be void"
    assert _same(one["start"], initial) and _same(one["ref"], initial)
    assert _same(two["start"], after_one)            # continues from stage 1's weights
    assert _same(two["ref"], initial)                # the KL stays anchored to the initial model
    assert (one["k"], two["k"]) == (4, 2)
    info = json.loads((run / "stability" / "run_info.json").read_text())
    assert info["init"] == str(run / "exploration" / "final") and info["reference"] == warm_model
    for stage, reward, k in (("exploration", "q_insight", 4), ("stability", "visualquality_r1", 2)):
        calls = [r for r in read_records(run / stage, 0) if r["reward"] == reward]
        assert calls and all(len(c["item_id"]) == 2 * k for c in calls)  # 2 items x K
        assert all(c["item_id"].count(i) == k for c in calls for i in c["item_id"])
        assert f"rewards/{reward}/invalid_rate" in (run / stage / "metrics.jsonl").read_text()


def test_two_nodes_share_one_global_batch(tmp_path, warm_model):
    """The smoke as two "nodes" (torchrun --nnodes=2, one process each, gloo over localhost)."""
    from preresq.rewards import build_reward_funcs
    from preresq.training.recording import read_records

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    overrides = ["+experiment=smoke", f"output_dir={tmp_path / 'run'}", *DIGIT, "reward=visualquality_r1",
                 f"model.name_or_path={warm_model}", "trainer.items_per_step=4", "trainer.max_steps=1",
                 "record_rewards=true", "trainer.args.save_steps=100"]
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={rank}",
         "--nproc_per_node=1", "--master_addr=127.0.0.1", "--master_port=29533",
         str(REPO_ROOT / "scripts" / "train.py"), *overrides],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    logs = [node.communicate(timeout=900)[0] for node in nodes]
    for node, log in zip(nodes, logs, strict=True):
        assert node.returncode == 0, log[-3000:]

    run = tmp_path / "run"
    plan = json.loads((run / "run_info.json").read_text())["plan"]
    assert plan["world_size"] == 2 and plan["stages"][0]["items_per_device"] == 2
    name = "visualquality_r1"
    calls = [[r for r in read_records(run / "main", rank) if r["reward"] == name] for rank in (0, 1)]
    assert len(calls[0]) == len(calls[1]) == 1
    r0, r1 = calls[0][0], calls[1][0]
    assert r0["global_item_id"] == r1["global_item_id"] == r0["item_id"] + r1["item_id"]
    assert len(set(r0["global_item_id"])) == 4 and len(r0["global_item_id"]) == 16  # 4 items x K=4
    # The rewards both ranks returned are the reward of the whole global batch, computed once.
    cfg = _cfg(tmp_path, "smoke", *DIGIT, "reward=visualquality_r1")
    reward = build_reward_funcs(cfg.reward, 1, "bare")[0][0]
    expected = reward(completions=r0["completions"] + r1["completions"],
                      item_id=r0["item_id"] + r1["item_id"], mos=r0["mos"] + r1["mos"])
    assert r0["rewards"] + r1["rewards"] == pytest.approx(expected, abs=1e-9)
    assert len(set(r0["rewards"] + r1["rewards"])) > 1, "no reward spread: the weights cannot move"
    before, after = _params(warm_model), _params(run / "main" / "final")
    assert any(not torch.equal(before[k], after[k]) for k in before), "weights unchanged"


def _no_launcher_env():
    """This environment without a launcher's variables: as a plain ``python`` command gets it."""
    from preresq.training.process_group import LAUNCHER_VARS

    env = {k: v for k, v in os.environ.items() if k not in (*LAUNCHER_VARS, "LOCAL_WORLD_SIZE")}
    return {**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}


def test_zero3_stages_release_each_other(tmp_path):
    """The two-stage smoke under the real ZeRO-3 engine (one process, gloo), validating every
    step: when stage 2 starts, before any garbage collection, no stage-1 trainer is alive and
    live non-parameter tensors take no more bytes than at stage 1's start; after collection,
    nothing of stage 1 (policy, reference, their engines, the optimizer) is alive."""
    result = tmp_path / "stages.json"
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "stage_release_probe.py"), str(result),
         "+experiment=smoke_two_stage", "trainer.deepspeed=zero3", f"output_dir={tmp_path / 'run'}",
         f"paths.cache_dir={REPO_ROOT / '.cache' / 'preresq'}", "validation.enabled=true",
         "validation.every_n_steps=1", "validation.max_items=2", "validation.batch_size=2"],
        env=_no_launcher_env(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    one, two, end = json.loads(result.read_text())
    print(f"live parameter elements: stage 1 start {one['live_before']:,} built {one['live_built']:,}; "
          f"stage 2 start {two['live_before']:,} built {two['live_built']:,}; non-parameter tensor "
          f"bytes before gc: stage 1 start {one['tensor_bytes']:,}, stage 2 start {two['tensor_bytes']:,}")
    assert "releasing 2 model(s) from DeepSpeed's FWD_MODULE_STACK" in out.stdout + out.stderr  # policy + reference
    assert (tmp_path / "run" / "exploration" / "validation.jsonl").is_file()
    assert one["live_built"] > 0
    assert two["trainers_alive"] == 0, "stage 1's trainer is alive at stage 2's start"
    assert two["tensor_bytes"] <= one["tensor_bytes"], "stage 2 starts with more tensor bytes than stage 1"
    assert two["alive_before"] == 0, "stage 1's model, reference, engine or optimizer is still alive"
    assert two["live_before"] <= one["live_before"]
    assert two["live_built"] <= one["live_built"]
    assert end["trainers_alive"] == 0
    assert end["alive_before"] == 0 and end["live_before"] == 0


def test_deepspeed_still_has_its_module_stack(monkeypatch):
    """The private list memory.py empties between stages: a DeepSpeed upgrade that moves or
    renames it must fail here, and the run must name it instead of silently keeping stage 1."""
    import importlib

    from preresq.training import memory

    module = importlib.import_module(memory.STACK_MODULE)
    assert isinstance(getattr(module, memory.STACK_NAME, None), list), (
        f"DeepSpeed no longer has {memory.STACK_MODULE}.{memory.STACK_NAME}: find where it keeps "
        f"its ZeRO-3 modules and update preresq/training/memory.py")
    assert memory.deepspeed_module_stack() is getattr(module, memory.STACK_NAME)
    monkeypatch.delattr(module, memory.STACK_NAME)
    with pytest.raises(RuntimeError, match="FWD_MODULE_STACK"):
        memory.deepspeed_module_stack()


def test_one_process_zero3_smoke_trains(tmp_path, warm_model):
    """`python scripts/train.py +experiment=smoke trainer.deepspeed=zero3`: no launcher, no MPI."""
    run = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "train.py"), "+experiment=smoke",
         "trainer.deepspeed=zero3", f"output_dir={run}", *DIGIT, f"model.name_or_path={warm_model}"],
        env=_no_launcher_env(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "training plan: world size 1" in log
    assert "DeepSpeed runs as a one-process group" in log
    assert json.loads((run / "run_info.json").read_text())["world_size"] == 1
    final = run / "main" / "final"
    assert (final / "model.safetensors").is_file() and (final / "config.json").is_file()
    # ZeRO-3 saves the gathered weights under the module's own names (model.model.*): they
    # must load back whole, and differ from the initial weights.
    from transformers import AutoModelForImageTextToText

    model, info = AutoModelForImageTextToText.from_pretrained(str(final), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    before, after = _loaded(warm_model), _state(model)
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before), "weights unchanged"


def test_validation_over_two_zero3_processes_equals_one_process(tmp_path, warm_model):
    """Validation under ZeRO-3 on two processes (torchrun, gloo): the weights gathered for
    generation, each process scoring its share of the items, the answers pooled: the numbers
    at step 0 (the initial weights) are those of one process scoring every item."""
    from preresq.data.rows import item_images
    from preresq.decoding import Decoding
    from preresq.evaluation.held_out import held_out_metrics
    from preresq.evaluation.hf_predictor import HFPredictor
    from preresq.evaluation.requests import ItemPrompt
    from preresq.models import load_model, load_processor
    from preresq.training.callbacks import validation_records

    validation = ["validation.enabled=true", "validation.every_n_steps=1", "validation.max_items=7",
                  "validation.batch_size=1", "validation.readout=expected"]  # greedy: one digit for all
    overrides = ["+experiment=smoke", "trainer.deepspeed=zero3", f"output_dir={tmp_path / 'run'}", *DIGIT,
                 f"model.name_or_path={warm_model}", "trainer.items_per_step=4", "trainer.max_steps=1",
                 "trainer.args.save_steps=100", *validation]
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29547",
         str(REPO_ROOT / "scripts" / "train.py"), *overrides],
        env=_no_launcher_env(), capture_output=True, text=True, timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-5000:]
    assert "process 0 of 2 scores 4 of 7 items" in log and "process 1 of 2 scores 3 of 7 items" in log
    rows = [json.loads(line) for line in (tmp_path / "run" / "main" / "validation.jsonl").read_text().splitlines()]
    first = next(r for r in rows if r["step"] == 0)

    cfg = _cfg(tmp_path, "smoke", *DIGIT, f"model.name_or_path={warm_model}", *validation)
    records, card = validation_records(cfg)
    predictor = HFPredictor(load_model(cfg.model, path=warm_model), load_processor(cfg.model, path=warm_model),
                            Decoding(max_new_tokens=int(cfg.validation.max_new_tokens)))

    def load_images(record):
        return item_images(record, card.media_root, int(cfg.model.min_pixels), int(cfg.model.max_pixels), None)

    one = held_out_metrics(predictor, records, ItemPrompt.from_cfg(cfg.prompt.image), load_images, 1,
                           "expected")
    print(f"validation at step 0, 2 ZeRO-3 processes: {first}; one process: {one}")
    assert not math.isnan(one["srcc"]), "the check needs answers that parse"
    assert first["n"] == one["n"] == 7
    assert first["val/valid_rate"] == one["valid_rate"]
    assert first["val/srcc"] == pytest.approx(one["srcc"], abs=1e-9)
    assert first["val/plcc"] == pytest.approx(one["plcc"], abs=1e-6)
