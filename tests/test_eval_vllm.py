"""predictor=vllm with a stand-in vllm module that behaves as vLLM's sources say: one engine
per process under torchrun, built on every rank (its constructor runs a collective, as
``external_launcher`` does), whole calls of many prompts, and one seed per item."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import types
import warnings

import pytest
from eval_fakes import eval_cfg, fake_answer
from omegaconf import OmegaConf

from preresq.config import compose
from preresq.decoding import Decoding, item_seed
from preresq.evaluation.requests import ItemPrompt


def sampled_answer(seed: int) -> str:
    """A sampled answer that depends on the request's random stream only (its seed)."""
    return str(1 + int(hashlib.md5(str(seed).encode()).hexdigest(), 16) % 5)


def fake_vllm(record_dir, collective: bool = False) -> types.ModuleType:
    """A vllm module whose engine writes its arguments to ``engine.rank<RANK>.json`` and each
    call's size and seeds to ``calls.rank<RANK>.jsonl``. Greedy answers come from the pixels
    (``fake_answer``), sampled ones from the seed vLLM gives sample i (``seed + i``).
    ``collective``: the constructor all-reduces over the process group, as
    ``LLM(distributed_executor_backend="external_launcher")`` does while it is built."""
    module = types.ModuleType("vllm")

    class LLM:
        def __init__(self, **kwargs):
            import torch
            import torch.distributed as dist

            if collective and dist.is_initialized():
                dist.all_reduce(torch.ones(1))
            self.rank = os.environ.get("RANK", "0")
            with open(os.path.join(record_dir, f"engine.rank{self.rank}.json"), "w") as f:
                json.dump(kwargs, f)

        def generate(self, prompts, params, use_tqdm=False):
            assert isinstance(params, list) and len(params) == len(prompts)  # one per request
            with open(os.path.join(record_dir, f"calls.rank{self.rank}.jsonl"), "a") as f:
                f.write(json.dumps({"prompts": len(prompts), "seeds": [p["seed"] for p in params]}) + "\n")
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(
                text=sampled_answer(p["seed"] + s) if p["temperature"] > 0
                else fake_answer(prompt["multi_modal_data"]["image"], s))
                for s in range(p["n"])]) for prompt, p in zip(prompts, params, strict=True)]

    module.LLM = LLM
    module.SamplingParams = lambda **kwargs: kwargs
    return module


def calls(folder, rank: int = 0) -> list[dict]:
    path = folder / f"calls.rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


MODEL = OmegaConf.create({"dtype": "bfloat16", "min_pixels": 3136, "max_pixels": 12845056})


def test_one_engine_per_process_under_torchrun(tmp_path, monkeypatch):
    from preresq.evaluation.vllm_backend import VLLMPredictor

    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(tmp_path))
    VLLMPredictor(str(tmp_path), None, Decoding(), MODEL, max_images=1)
    alone = json.loads((tmp_path / "engine.rank0.json").read_text())
    assert "distributed_executor_backend" not in alone and alone["limit_mm_per_prompt"] == {"image": 1}
    # The pixel budget as transformers asks for it (min/max_pixels warn "removed in v5.23").
    assert alone["mm_processor_kwargs"] == {"size": {"shortest_edge": 3136, "longest_edge": 12845056}}
    assert "items_per_call" not in alone and "tokens_per_call" not in alone  # ours, not vLLM's
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    VLLMPredictor(str(tmp_path), None, Decoding(), MODEL, max_images=4, tensor_parallel_size=1)
    ranked = json.loads((tmp_path / "engine.rank1.json").read_text())
    assert ranked["distributed_executor_backend"] == "external_launcher"
    assert ranked["limit_mm_per_prompt"] == {"image": 4}
    with pytest.raises(ValueError, match="tensor_parallel_size must be 1"):
        VLLMPredictor(str(tmp_path), None, Decoding(), MODEL, tensor_parallel_size=2)


def test_each_item_has_its_own_seed_the_same_in_any_call(tmp_path, monkeypatch):
    from PIL import Image

    from preresq.evaluation.predict import batch_limits
    from preresq.evaluation.vllm_backend import VLLMPredictor

    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(tmp_path))
    sampling = Decoding(do_sample=True, num_samples=3, seed=7)
    predictor = VLLMPredictor(str(tmp_path), None, sampling, MODEL, items_per_call=5,
                              tokens_per_call=None)
    monkeypatch.setattr("preresq.evaluation.vllm_backend.prompt_text", lambda *a: "prompt")
    prompt = ItemPrompt.from_cfg(compose("eval", ["prompt=demo_digit"]).prompt.image)
    image = Image.new("RGB", (8, 8))
    ids = [f"item{i}" for i in range(4)]
    together = predictor.generate([prompt.request([image], i) for i in ids])
    apart = [predictor.generate([prompt.request([image], i)])[0] for i in reversed(ids)][::-1]
    assert together == apart  # an item's samples do not depend on its call or neighbours
    seeds = [c["seeds"] for c in calls(tmp_path)]
    assert seeds[0] == [item_seed(7, i) for i in ids] and len(set(seeds[0])) == 4
    streams = {seed + s for seed in seeds[0] for s in range(3)}  # vLLM: sample s gets seed + s
    assert len(streams) == 4 * 3
    assert item_seed(8, "item0") != item_seed(7, "item0")  # the run's seed changes them all
    # vLLM takes many items per call, whatever batch_size says; the HF limits are untouched.
    assert batch_limits(4, 1000, predictor) == predictor.call_limits
    assert (predictor.call_limits.batch_size, predictor.call_limits.batch_tokens) == (5, None)
    with pytest.raises(ValueError, match="item_id"):
        predictor.generate([prompt.request([image])])


def test_images_per_prompt_come_from_the_suite():
    from preresq.evaluation.evaluate import images_per_prompt

    cfg = compose("eval", ["model=tiny"])
    assert images_per_prompt(cfg, ["image"]) == 1
    assert images_per_prompt(cfg, ["image", "video"]) == 1 + int(cfg.video.num_local)  # mosaic + frames
    crop = compose("eval", ["model=tiny", "video.crop={size: 448, position: 0.5}"])
    assert images_per_prompt(crop, ["video"]) == 2 + int(cfg.video.num_local)


# ----------------------------------------------------------------------------- two processes

SAMPLING = ("predictor=vllm", "decoding.do_sample=true", "decoding.num_samples=2")


def _worker(rank: int, world_size: int, port: int, out: str, overrides: tuple) -> None:
    from datetime import timedelta

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    warnings.simplefilter("ignore")
    from preresq.evaluation import evaluate

    # A short timeout: a rank that skips the engine's collective fails the test instead of
    # hanging it.
    dist.init_process_group("gloo", timeout=timedelta(seconds=30))
    try:
        evaluate(eval_cfg(out, *overrides))
    finally:
        dist.destroy_process_group()


def _two_processes(folder, monkeypatch, overrides, collective=False) -> None:
    import torch.multiprocessing as mp
    from test_eval_shard import _free_port

    from preresq.models import resolve_model_path

    # The tiny model is built (importing TRL, which looks for a real vllm) before the
    # stand-in is installed.
    cfg = eval_cfg(folder)
    resolve_model_path(cfg.model, cfg.paths.cache_dir)
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(folder, collective))  # inherited by the forks
    mp.start_processes(_worker, args=(2, _free_port(), str(folder), tuple(overrides)), nprocs=2,
                       start_method="fork")


def rows_of(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions" / "iqa_demo.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_every_rank_builds_the_engine_even_with_nothing_to_do(tmp_path, monkeypatch):
    """limit=1 over 2 processes: rank 1's share is empty. Its engine must still be built
    (the constructor's all_reduce needs both ranks); before the fix rank 0 waited in it
    for 30 s and failed."""
    _two_processes(tmp_path, monkeypatch, ["predictor=vllm", "limit=1"], collective=True)
    assert (tmp_path / "engine.rank0.json").is_file() and (tmp_path / "engine.rank1.json").is_file()
    assert [c["prompts"] for c in calls(tmp_path, 0)] == [1] and calls(tmp_path, 1) == []
    assert len(rows_of(tmp_path)) == 1


@pytest.mark.slow
def test_vllm_under_two_processes_splits_the_items_and_gives_the_same_samples(tmp_path, monkeypatch):
    from preresq.evaluation import evaluate

    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    warnings.simplefilter("ignore")
    _two_processes(two, monkeypatch, SAMPLING)
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(one))
    evaluate(eval_cfg(one, *SAMPLING))  # one process, the same engine stand-in
    engines = [json.loads((two / f"engine.rank{r}.json").read_text()) for r in range(2)]
    assert all(e["distributed_executor_backend"] == "external_launcher" for e in engines)
    assert all(e["limit_mm_per_prompt"] == {"image": 1} for e in engines)  # an image suite
    # The whole share in one call (batch_size=4 is predictor=hf's): 20 items, 10 per rank.
    assert [c["prompts"] for r in range(2) for c in calls(two, r)] == [10, 10]
    assert [c["prompts"] for c in calls(one)] == [20]
    assert rows_of(two) == rows_of(one)  # each item's samples do not depend on its rank
    firsts = {row["completions"][0] for row in rows_of(one)}
    assert len(firsts) > 1  # sample 0 of every item is not one shared draw
