"""predictor=vllm with a stand-in vllm module: one engine per process under torchrun, each on
its own share of the items, with room for as many images per prompt as the suite needs."""

from __future__ import annotations

import json
import os
import sys
import types
import warnings

import pytest
from eval_fakes import FakePredictor, eval_cfg, fake_answer
from omegaconf import OmegaConf

from preresq.config import compose
from preresq.decoding import Decoding


def fake_vllm(record_dir) -> types.ModuleType:
    """A vllm module whose engine writes its arguments to ``engine.rank<RANK>.json`` and
    answers like ``FakePredictor`` (from the pixels)."""
    module = types.ModuleType("vllm")

    class LLM:
        def __init__(self, **kwargs):
            rank = os.environ.get("RANK", "0")
            with open(os.path.join(record_dir, f"engine.rank{rank}.json"), "w") as f:
                json.dump(kwargs, f)

        def generate(self, prompts, params, use_tqdm=False):
            return [types.SimpleNamespace(outputs=[
                types.SimpleNamespace(text=fake_answer(p["multi_modal_data"]["image"], s))
                for s in range(params["n"])]) for p in prompts]

    module.LLM = LLM
    module.SamplingParams = lambda **kwargs: kwargs
    return module


MODEL = OmegaConf.create({"dtype": "bfloat16", "min_pixels": 3136, "max_pixels": 12845056})


def test_one_engine_per_process_under_torchrun(tmp_path, monkeypatch):
    from preresq.evaluation.vllm_backend import VLLMPredictor

    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(tmp_path))
    VLLMPredictor(str(tmp_path), None, Decoding(), MODEL, max_images=1)
    alone = json.loads((tmp_path / "engine.rank0.json").read_text())
    assert "distributed_executor_backend" not in alone and alone["limit_mm_per_prompt"] == {"image": 1}
    # The pixel budget as transformers asks for it (min/max_pixels warn "removed in v5.23").
    assert alone["mm_processor_kwargs"] == {"size": {"shortest_edge": 3136, "longest_edge": 12845056}}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    VLLMPredictor(str(tmp_path), None, Decoding(), MODEL, max_images=4, tensor_parallel_size=1)
    ranked = json.loads((tmp_path / "engine.rank1.json").read_text())
    assert ranked["distributed_executor_backend"] == "external_launcher"
    assert ranked["limit_mm_per_prompt"] == {"image": 4}
    with pytest.raises(ValueError, match="tensor_parallel_size must be 1"):
        VLLMPredictor(str(tmp_path), None, Decoding(), MODEL, tensor_parallel_size=2)


def test_images_per_prompt_come_from_the_suite():
    from preresq.evaluation.evaluate import images_per_prompt

    cfg = compose("eval", ["model=tiny"])
    assert images_per_prompt(cfg, ["image"]) == 1
    assert images_per_prompt(cfg, ["image", "video"]) == 1 + int(cfg.video.num_local)  # mosaic + frames
    crop = compose("eval", ["model=tiny", "video.crop={size: 448, position: 0.5}"])
    assert images_per_prompt(crop, ["video"]) == 2 + int(cfg.video.num_local)


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    warnings.simplefilter("ignore")
    from preresq.evaluation import evaluate

    evaluate(eval_cfg(out, "predictor=vllm"))


@pytest.mark.slow
def test_vllm_under_two_processes_splits_the_items_and_gives_the_same_predictions(tmp_path, monkeypatch):
    import torch.multiprocessing as mp
    from test_eval_shard import _free_port

    from preresq.evaluation import evaluate
    from preresq.models import resolve_model_path

    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    warnings.simplefilter("ignore")
    evaluate(eval_cfg(one, "predictor=vllm"), predictor=FakePredictor())
    # The tiny model is built (importing TRL, which looks for a real vllm) before the
    # stand-in is installed.
    cfg = eval_cfg(two)
    resolve_model_path(cfg.model, cfg.paths.cache_dir)
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(two))  # inherited by the forked workers
    mp.start_processes(_worker, args=(2, _free_port(), str(two)), nprocs=2, start_method="fork")
    engines = [json.loads((two / f"engine.rank{r}.json").read_text()) for r in range(2)]
    assert all(e["distributed_executor_backend"] == "external_launcher" for e in engines)
    assert all(e["limit_mm_per_prompt"] == {"image": 1} for e in engines)  # an image suite
    rows = [json.loads(line) for line in (two / "predictions" / "iqa_demo.jsonl").read_text().splitlines()]
    assert rows == [json.loads(line) for line in
                    (one / "predictions" / "iqa_demo.jsonl").read_text().splitlines()]
