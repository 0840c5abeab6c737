"""Peers in the same harness: each preset asks with its authors' prompt and reads the
answer as their scripts do; scripted completions in each peer's format."""

from __future__ import annotations

import json
import warnings

import pytest
from eval_fakes import FakePredictor, eval_cfg, fake_answer

from preresq.config import compose
from preresq.evaluation import evaluate
from preresq.evaluation.metrics import DegenerateInputWarning
from preresq.evaluation.requests import ItemPrompt
from preresq.parsing import parse_answer
from preresq.prompts import load_template

PEERS = {
    # preset: (template, answer format, a completion in the peer's format, its score)
    "visualquality_r1": ("visualquality_r1", "first_number",
                         "<think>blurry edges, 3 halos</think><answer>2.75</answer>", 2.75),
    "q_insight": ("q_insight", "json_rating",
                  '<think>noise 4/5</think><answer>{"rating": 3.40}</answer>', 3.40),
    "preresq_r1": ("preresq_r1_release", "first_number",
                   "<think>ok</think><answer>4.10\n3.90\n4.00\n3.00\n5.00</answer>", 4.10),
    "qwen2_5_vl_7b_instruct": ("visualquality_r1", "first_number", "The rating is 3.5.", 3.5),
}


@pytest.mark.parametrize("preset", sorted(PEERS))
def test_preset_brings_its_prompt_and_parser(preset):
    template, answer_format, completion, score = PEERS[preset]
    cfg = compose("eval", [f"model={preset}", "suite=iqa10"])
    assert cfg.prompt.image.templates == [template]
    assert cfg.prompt.image.answer_format == answer_format and cfg.prompt.image.num_scores == 1
    assert cfg.model.name_or_path and cfg.model.dtype == "bfloat16"
    assert parse_answer(completion, 1, answer_format).score == pytest.approx(score)
    # The command line still chooses: prompt=default gives our prompt to the peer's weights.
    assert compose("eval", [f"model={preset}", "prompt=default"]).prompt.image.templates == ["iqa"]


def test_peer_parsers_on_edge_cases():
    fn = "first_number"
    assert parse_answer("<answer>x</answer> then <answer>3.25 or 4</answer>", 1, fn).score == 3.25
    assert parse_answer("no digits at all", 1, fn).valid is False  # theirs: a random score
    assert parse_answer("<think>7 things</think><answer>none</answer>", 1, fn).valid is False
    js = "json_rating"
    assert parse_answer('{"rating": 3.0}', 1, js).valid is False  # no answer block
    assert parse_answer('<answer>{"rating": 4.5.1}</answer>', 1, js).valid is False
    assert parse_answer('<answer>{"rating": 2}</answer><answer>{"rating": 5}</answer>', 1, js).score == 2
    with pytest.raises(ValueError, match="num_scores: 1"):
        parse_answer("<answer>3</answer>", 5, fn)


class Peer(FakePredictor):
    """Answers in a peer's format with the fake's digit; records the requests."""

    def __init__(self, wrap):
        super().__init__()
        self.wrap = wrap
        self.requests = []

    def generate(self, requests):
        self.requests.extend(requests)
        self.items += len(requests)
        return [[self.wrap(fake_answer(r.images))] for r in requests]


@pytest.mark.parametrize("preset,wrap", [
    ("visualquality_r1", lambda d: f"<think>looks like {d}</think><answer>{d}</answer>"),
    ("q_insight", lambda d: f'<think>hm</think><answer>{{"rating": {d}}}</answer>'),
])
def test_evaluate_with_a_peer_preset(tmp_path, preset, wrap):
    fake = Peer(wrap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        # eval_cfg sets prompt=demo_digit on the command line, which wins over the preset's
        # choice; name the peer's prompt config (here the same name as the preset) again.
        results = evaluate(eval_cfg(tmp_path, f"model={preset}", f"prompt={preset}", "limit=8"),
                           predictor=fake)
    rows = [json.loads(x) for x in (tmp_path / "predictions" / "iqa_demo.jsonl").read_text().splitlines()]
    for row in rows:
        answer = row["completion"].split("<answer>")[1].split("</answer>")[0]
        expected = answer.replace('{"rating": ', "").replace("}", "")
        assert (row["pred"] is None) == (not expected.isdigit())
        if row["pred"] is not None:
            assert row["pred"] == float(expected)
    request = fake.requests[0]
    text = request.messages[-1]["content"][-1]["text"]
    assert text == load_template(PEERS[preset][0])
    if preset == "q_insight":
        assert request.messages[0]["role"] == "system" and not request.add_vision_id
        assert "<think>" in request.messages[0]["content"][0]["text"]
    else:
        assert len(request.messages) == 1 and request.add_vision_id
    assert results["identity"]["prompt"]["image"]["answer_format"] == PEERS[preset][1]


def test_vision_ids_reach_the_chat_template(tiny_model_dir):
    from preresq.decoding import Decoding
    from preresq.evaluation.hf_predictor import HFPredictor
    from preresq.models import load_processor

    cfg = compose("eval", ["model=tiny", f"model.name_or_path={tiny_model_dir}"])

    class NoModel:
        generation_config = None

        def eval(self):
            return self

    predictor = HFPredictor(NoModel(), load_processor(cfg.model, path=str(tiny_model_dir)),
                            Decoding(), device="cpu")
    peer = ItemPrompt.from_cfg(compose("eval", ["model=visualquality_r1"]).prompt.image)
    text = predictor.prompt_text(peer.messages(1), peer.add_vision_id)
    assert "Picture 1: <|vision_start|>" in text
    ours = ItemPrompt.from_cfg(cfg.prompt.image)
    assert "Picture 1:" not in predictor.prompt_text(ours.messages(1), ours.add_vision_id)


def test_a_peer_without_a_video_prompt_says_so():
    with pytest.raises(ValueError, match="no video prompt"):
        ItemPrompt.from_cfg(compose("eval", ["model=visualquality_r1"]).prompt.get("video"), "video")
