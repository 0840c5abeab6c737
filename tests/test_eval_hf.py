"""HFPredictor on the tiny Qwen2.5-VL: left-padded batches decode like single items."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from preresq.config import compose
from preresq.decoding import Decoding
from preresq.evaluation.hf_predictor import HFPredictor
from preresq.evaluation.requests import Request
from preresq.prompts import build_messages


@pytest.fixture(scope="module")
def tiny():
    from preresq.models import load_model, load_processor, resolve_model_path

    cfg = compose("eval", ["model=tiny"])
    path = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    return load_model(cfg.model, path=path), load_processor(cfg.model, path=path)


def _requests(prompts=("demo_digit", "iqa", "demo_digit")):
    # Different templates and image sizes: the prompts have different lengths, so the
    # batch really is left padded.
    sizes = [(56, 56), (112, 84), (84, 112)]
    images = [Image.new("RGB", size, (40 * i, 200 - 50 * i, 90)) for i, size in enumerate(sizes)]
    return [Request(build_messages(t, 1), [im]) for t, im in zip(prompts, images, strict=True)]


def test_batched_greedy_equals_one_at_a_time(tiny):
    model, processor = tiny
    predictor = HFPredictor(model, processor, Decoding(max_new_tokens=12))
    requests = _requests()
    batched = predictor.generate(requests)
    single = [predictor.generate([r])[0] for r in requests]
    assert batched == single
    assert all(len(c) == 1 and isinstance(c[0], str) for c in batched)
    assert predictor.generate(requests) == batched  # greedy: the same every time


def test_prompt_is_the_chat_template_with_generation_prompt(tiny):
    model, processor = tiny
    predictor = HFPredictor(model, processor, Decoding(max_new_tokens=2))
    text = predictor.prompt_text(build_messages("demo_digit", 1))
    assert text.rstrip().endswith("assistant")
    assert "<|image_pad|>" in text


def test_sampling_gives_num_samples_per_request(tiny):
    model, processor = tiny
    decoding = Decoding(max_new_tokens=6, do_sample=True, num_samples=3, seed=1)
    predictor = HFPredictor(model, processor, decoding)
    out = predictor.generate(_requests())
    assert [len(c) for c in out] == [3, 3, 3]
    torch.manual_seed(1)
    again = HFPredictor(model, processor, decoding).generate(_requests())
    assert again == out  # seeded
    assert predictor.generation_config.do_sample and predictor.generation_config.num_return_sequences == 3


def test_greedy_config_sets_no_sampling_fields(tiny):
    model, processor = tiny
    cfg = HFPredictor(model, processor, Decoding(max_new_tokens=5)).generation_config
    assert cfg.do_sample is False and cfg.max_new_tokens == 5
    # Neutral values set explicitly: a field left None would be filled from the checkpoint.
    assert (cfg.temperature, cfg.top_p, cfg.top_k, cfg.repetition_penalty) == (1.0, 1.0, 0, 1.0)


def test_expected_score_is_the_mean_of_the_renormalised_digit_probabilities(tiny):
    model, processor = tiny
    predictor = HFPredictor(model, processor, Decoding(max_new_tokens=1))
    requests = _requests()
    got = predictor.expected_scores(requests)
    # By hand, one request at a time (no padding): next-token softmax at the prompt's end.
    tok = processor.tokenizer
    ids = [tok.convert_tokens_to_ids(str(d)) for d in range(1, 6)]
    for request, (expected, mass) in zip(requests, got, strict=True):
        inputs = processor(text=[predictor.prompt_text(request.messages)], images=request.images,
                           return_tensors="pt")
        with torch.inference_mode():
            probs = torch.softmax(model(**inputs).logits[0, -1].float(), -1)[ids]
        assert mass == pytest.approx(probs.sum().item(), rel=1e-4)
        assert expected == pytest.approx((probs * torch.arange(1, 6)).sum().item() / probs.sum().item(),
                                         rel=1e-4)
        assert 1.0 <= expected <= 5.0


def test_held_out_metrics_counts_valid_answers_and_refuses_expected_on_tagged_prompts(tiny):
    from preresq.data.records import Record
    from preresq.evaluation.held_out import held_out_metrics
    from preresq.evaluation.requests import ItemPrompt
    from preresq.parsing import parse_answer

    model, processor = tiny
    predictor = HFPredictor(model, processor, Decoding(max_new_tokens=1))
    images = {f"im{i}": Image.new("RGB", (56, 56), (50 * i, 30, 200 - 40 * i)) for i in range(5)}
    records = [Record(id=name, paths=[f"{name}.png"], score=1.0 + i, mos=1.0 + i, benchmark="t")
               for i, name in enumerate(images)]
    digit = ItemPrompt("demo_digit", 1, "bare")
    answers = [c[0] for c in predictor.generate([Request(digit.messages(1), [images[r.id]])
                                                  for r in records])]
    result = held_out_metrics(predictor, records, digit, lambda r: [images[r.id]], 2, "expected")
    assert result["n"] == 5
    parsed = [parse_answer(a, 1, "bare").valid for a in answers]
    assert result["valid_rate"] == sum(parsed) / 5
    assert -1.0 <= result["srcc"] <= 1.0  # expected scores always exist: never NaN here
    with pytest.raises(ValueError, match="one-digit bare"):
        held_out_metrics(predictor, records, ItemPrompt("iqa", 5, "tagged"), lambda r: [images[r.id]],
                         2, "expected")
    with pytest.raises(ValueError, match="readout"):
        held_out_metrics(predictor, records, digit, lambda r: [images[r.id]], 2, "mode")


def test_decode_path_from_the_config():
    from preresq.evaluation.hf_predictor import decode_path

    assert decode_path("auto", "auto", "cuda") == ("static", True)
    assert decode_path("auto", "auto", "cpu") == (None, False)
    assert decode_path(None, "auto", "cuda") == (None, False)  # null: today's dynamic cache
    assert decode_path("static", False, "cuda") == ("static", False)
    assert decode_path("static", True, "cpu") == ("static", True)  # asked for: honoured
    with pytest.raises(ValueError, match="cache_implementation=static"):
        decode_path("dynamic", True, "cuda")
    with pytest.raises(ValueError, match="null .dynamic., static or auto"):
        decode_path("sliding", False, "cpu")


def test_length_buckets_are_few_and_padding_is_masked():
    from preresq.evaluation.hf_predictor import length_bucket, pad_left

    assert [length_bucket(n) for n in (1, 16, 17, 110, 300, 16_000)] == [16, 16, 20, 112, 320, 16_384]
    assert all(n <= length_bucket(n) <= 1.25 * n + 16 for n in range(1, 5000))
    assert len({length_bucket(n) for n in range(1, 32_769)}) == 4 * 11 + 1  # 4 per doubling, 16 .. 32k
    inputs = {"input_ids": torch.tensor([[7, 8]]), "attention_mask": torch.tensor([[1, 1]]),
              "mm_token_type_ids": torch.tensor([[0, 1]]), "pixel_values": torch.ones(3, 2)}
    out = pad_left(inputs, 4, pad_token_id=0)
    assert out["input_ids"].tolist() == [[0, 0, 7, 8]] and out["attention_mask"].tolist() == [[0, 0, 1, 1]]
    assert out["mm_token_type_ids"].tolist() == [[0, 0, 0, 1]] and out["pixel_values"] is inputs["pixel_values"]


def test_static_cache_gives_the_plain_answers(tiny):
    model, processor = tiny
    plain = HFPredictor(model, processor, Decoding(max_new_tokens=12)).generate(_requests())
    static = HFPredictor(model, processor, Decoding(max_new_tokens=12), cache_implementation="static")
    assert static.generation_config.cache_implementation == "static"
    assert static.generate(_requests()) == plain


def test_a_batch_off_the_ladder_is_padded_up_and_the_copies_dropped(tiny):
    """Fixed shapes: 9 requests run as 10 rows (the ladder has 8, 10), the answers are the
    9 plain ones; with 2 samples each, 20 rows and 2 completions per request."""
    model, processor = tiny

    class Bucketed(HFPredictor):
        fixed_shapes = True  # as with compile=true, without paying the compile here
        rows: list[int] = []

        def new_token_ids(self, requests):
            ids = super().new_token_ids(requests)
            self.rows.append(ids.shape[0])
            return ids

    requests = (_requests() * 3)[:9]
    plain = HFPredictor(model, processor, Decoding(max_new_tokens=4)).generate(requests)
    bucketed = Bucketed(model, processor, Decoding(max_new_tokens=4))
    assert bucketed.generate(requests) == plain and bucketed.rows == [10]
    sampled = Bucketed(model, processor, Decoding(max_new_tokens=4, do_sample=True, num_samples=2))
    sampled.rows = []
    answers = sampled.generate(requests)
    assert sampled.rows == [20] and [len(a) for a in answers] == [2] * 9


@pytest.mark.slow
def test_compiled_decoding_gives_the_plain_answers_at_bucketed_shapes(tiny):
    """torch.compile on the decode step (dynamo with the eager backend here: inductor
    would take a minute on CPU) with prompts padded to length buckets."""
    model, processor = tiny
    decoding = Decoding(max_new_tokens=8)
    plain = HFPredictor(model, processor, decoding)
    compiled = HFPredictor(model, processor, decoding, cache_implementation="static", compile=True)
    assert compiled.fixed_shapes and compiled.generation_config.compile_config is not None
    compiled.generation_config.compile_config.backend = "eager"
    compiled.generation_config.compile_config.mode = None
    requests = _requests()
    width = compiled.inputs(requests[:1])["input_ids"].shape[1]
    assert width > plain.inputs(requests[:1])["input_ids"].shape[1] and width % 4 == 0  # padded
    for batch in (requests[:2], requests[2:], requests[:2]):
        assert compiled.generate(batch) == plain.generate(batch)
    assert hasattr(model, "_compiled_call")  # the decode steps went through torch.compile
    del model._compiled_call


def test_weights_load_straight_onto_the_device(monkeypatch):
    """Evaluation loads with device_map (no whole host copy first), in the config's dtype."""
    from transformers import AutoModelForImageTextToText

    from preresq.models import load_model, resolve_model_path

    seen = {}
    original = AutoModelForImageTextToText.from_pretrained.__func__

    def spy(cls, path, **kwargs):
        seen.update(kwargs)
        return original(cls, path, **kwargs)

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", classmethod(spy))
    cfg = compose("eval", ["model=tiny"])
    model = load_model(cfg.model, path=resolve_model_path(cfg.model, cfg.paths.cache_dir),
                       device=torch.device("cpu"))
    assert seen["device_map"] == "cpu" and seen["dtype"] == torch.float32
    assert next(model.parameters()).device.type == "cpu"
