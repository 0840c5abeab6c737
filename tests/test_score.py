"""preresq-score: files in, score and reasoning out (text or JSON)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_fakes import FakePredictor
from PIL import Image

from preresq.config import compose
from preresq.evaluation import score
from preresq.prompts import load_template


def _image(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (56, 84, 3), dtype=np.uint8)).save(path)
    return path


def _video(path, frames=8):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            array = np.full((48, 64, 3), 30 * i % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class Recording(FakePredictor):
    def __init__(self, answer=None):
        super().__init__()
        self.requests = []
        self.answer = answer

    def generate(self, requests):
        self.requests.extend(requests)
        out = super().generate(requests)
        return [[self.answer] for _ in requests] if self.answer else out


def test_arguments_split_into_files_and_overrides(tmp_path):
    odd = tmp_path / "a=b.png"
    odd.write_bytes(b"")
    files, overrides = score.split_arguments(["x.png", "model=tiny", str(odd), "prompt.image.num_scores=1"])
    assert files == ["x.png", str(odd)]
    assert overrides == ["model=tiny", "prompt.image.num_scores=1"]
    assert score.modality_of("clip.MP4") == "video" and score.modality_of("a.jpg") == "image"


def test_reasoning_is_the_think_block():
    assert score.reasoning_of("<think> sharp, clean </think><answer>4</answer>") == "sharp, clean"
    assert score.reasoning_of("4") is None and score.reasoning_of(None) is None


def test_scores_images_and_videos_with_their_prompts(tmp_path):
    a, b = _image(tmp_path / "a.png", 0), _image(tmp_path / "b.png", 1)
    clip = _video(tmp_path / "clip.mp4")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    cfg = compose("eval", ["model=tiny", "batch_size=2"])
    fake = Recording(answer="<think>looks fine</think><answer>4\n3</answer>")
    results = score.score_files([a, clip, broken, b], cfg, predictor=fake)
    assert [r["path"] for r in results] == [str(a), str(clip), str(broken), str(b)]
    assert [r["modality"] for r in results] == ["image", "video", "image", "image"]
    assert "error" in results[2] and results[2]["score"] is None
    # The fake's answer has 2 numbers: valid for the video prompt (2 scores), not for IQA (5).
    assert results[1]["score"] == 3.5 and results[1]["subscores"] == [4.0, 3.0]
    assert results[0]["score"] is None and results[0]["reasoning"] == "looks fine"
    video_request = [r for r in fake.requests if len(r.images) > 1][0]
    assert len(video_request.images) == 4  # the mosaic and three local frames
    assert video_request.messages[0]["content"][-1]["text"] == load_template("vqa")
    text = score.format_text(results)
    assert f"{clip}: 3.50  [4.00 3.00]" in text and "reasoning: looks fine" in text
    assert f"{a}: no score" in text and f"{broken}: error:" in text


@pytest.mark.slow
def test_command_line_with_the_tiny_model(tmp_path, capsys):
    a = _image(tmp_path / "a.png", 0)
    status = score.main([str(a), "model=tiny", "prompt=demo_digit", "max_new_tokens=4", "--json"])
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["path"] == str(a) and set(out[0]) >= {"score", "subscores", "reasoning", "completion"}
    with pytest.raises(SystemExit):
        score.main([str(tmp_path / "missing.png"), "model=tiny"])


def test_command_line_model_option_and_missing_model(tmp_path, tiny_model_dir, capsys):
    a = _image(tmp_path / "a.png", 0)
    assert score.main([str(a), "--model", str(tiny_model_dir), "model=tiny", "prompt=demo_digit",
                       "max_new_tokens=2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["path"] == str(a)
    missing = tmp_path / "no_such_checkpoint"
    assert score.main([str(a), "--model", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "is missing" in err and "Traceback" not in err


def test_scorer_api_scores_paths_and_pil_images(tmp_path):
    from preresq import ItemScore, Scorer
    from preresq.evaluation.scorer import overrides_of

    a = _image(tmp_path / "a.png", 0)
    fake = Recording(answer="<think>crisp</think><answer>4.00\n4.50\n3.50\n4.00\n4.00</answer>")
    scorer = Scorer.from_pretrained("tiny", predictor=fake, batch_size=3)
    assert scorer.cfg.model.tiny is not None  # a preset name picks the preset
    pil = Image.fromarray(np.full((60, 70, 3), 120, dtype=np.uint8))
    results = scorer.score([a, pil, str(a)])
    assert [type(r) for r in results] == [ItemScore] * 3
    assert [r.path for r in results] == [str(a), None, str(a)]
    assert all(r.valid and r.score == 4.0 and r.subscores == [4.0, 4.5, 3.5, 4.0, 4.0] for r in results)
    assert results[0].reasoning == "crisp" and fake.calls == 1  # one batch of three
    single = scorer.score(pil)
    assert isinstance(single, ItemScore) and single.score == 4.0
    folder = Scorer.from_pretrained(str(tmp_path), predictor=fake, model="tiny")
    assert folder.cfg.model.name_or_path == str(tmp_path)
    assert overrides_of({"decoding": {"do_sample": True, "top_k": None}, "batch_size": 2}) == [
        "decoding.do_sample=true", "decoding.top_k=null", "batch_size=2"]


def test_text_output_escapes_control_characters_of_completions_and_names():
    """A completion (or a file name) with terminal escape sequences, NUL, DEL, C1 controls or
    a bidirectional override is printed escaped, never raw."""
    nasty = "4\x1b[2J\x1b]0;pwned\x07 ok\x00\x7f\x9b\u202eevil\nnext\tline"
    results = [{"path": "a\x1b[31m.png", "score": None, "subscores": None, "reasoning": None,
                "completion": nasty},
               {"path": "b.png", "error": "cannot read \x1b[0m it"}]
    text = score.format_text(results)
    assert not any(not c.isprintable() for c in text.replace("\n", ""))  # one line per field
    assert r"a\x1b[31m.png: no score" in text
    assert r"completion: 4\x1b[2J\x1b]0;pwned\x07 ok\x00\x7f\x9b\u202eevil next line" in text
    assert r"b.png: error: cannot read \x1b[0m it" in text
    assert score.printable("Ünïcode ✓ stays") == "Ünïcode ✓ stays"
