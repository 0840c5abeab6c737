"""An output folder knows what made it: weights by content, prompt texts, settings; nothing
is deleted by ``limit`` or reruns; two models never share a folder."""

from __future__ import annotations

import importlib
import json
import shutil
import warnings

import pytest
from eval_fakes import FakePredictor, eval_cfg

from preresq.evaluation import evaluate
from preresq.evaluation.identity import IdentityMismatchError, weights_fingerprint
from preresq.evaluation.metrics import DegenerateInputWarning


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        yield


def _lines(path):
    return path.read_text().splitlines()


def test_limit_after_a_full_run_keeps_every_prediction(tmp_path):
    evaluate(eval_cfg(tmp_path), predictor=FakePredictor())
    path = tmp_path / "predictions" / "iqa_demo.jsonl"
    full = _lines(path)
    again = FakePredictor()
    results = evaluate(eval_cfg(tmp_path, "limit=5"), predictor=again)
    assert again.items == 0  # all 5 were on disk
    assert _lines(path) == full  # 20 lines, untouched
    bench = results["benchmarks"]["iqa_demo"]
    assert bench["n"] == 5  # results are for the items asked, from the rows on disk
    rows = [json.loads(line) for line in full[:5]]
    assert bench["n_valid"] == sum(r["pred"] is not None for r in rows)
    # A larger limit adds the missing rows and keeps the others.
    more = FakePredictor()
    evaluate(eval_cfg(tmp_path, "limit=30"), predictor=more)
    assert len(_lines(path)) > 20 and more.items == len(_lines(path)) - 20
    assert _lines(path)[:20] == full


def test_edited_prompt_text_is_a_different_identity(tmp_path, monkeypatch):
    import preresq.prompts as prompts

    evaluate(eval_cfg(tmp_path, "limit=4"), predictor=FakePredictor())
    edited = tmp_path / "prompts"
    shutil.copytree(prompts.PROMPT_DIR, edited)
    (edited / "demo_digit.txt").write_text("Rate the picture from 1 to 5. One digit only.\n")
    monkeypatch.setattr(prompts, "PROMPT_DIR", edited)
    prompts.load_template.cache_clear()
    try:
        with pytest.raises(IdentityMismatchError, match="prompt.image.template") as err:
            evaluate(eval_cfg(tmp_path, "limit=4"), predictor=FakePredictor())
        assert "One digit only" in str(err.value)
        # overwrite=true (asked for) starts over with the new prompt.
        fresh = FakePredictor()
        evaluate(eval_cfg(tmp_path, "limit=4", "overwrite=true"), predictor=fresh)
        assert fresh.items == 4
        identity = json.loads((tmp_path / "identity.json").read_text())
        assert "One digit only" in identity["prompt"]["image"]["template"]
    finally:
        prompts.load_template.cache_clear()


def test_changed_decoding_or_pixels_is_refused_and_named(tmp_path):
    evaluate(eval_cfg(tmp_path, "limit=4"), predictor=FakePredictor())
    with pytest.raises(IdentityMismatchError, match=r"decoding.repetition_penalty: 1.0 -> 1.05"):
        evaluate(eval_cfg(tmp_path, "limit=4", "decoding.repetition_penalty=1.05"),
                 predictor=FakePredictor())
    with pytest.raises(IdentityMismatchError, match="model.max_pixels"):
        evaluate(eval_cfg(tmp_path, "limit=4", "model.max_pixels=50176"), predictor=FakePredictor())


def test_changed_image_loading_is_refused_and_named(tmp_path, monkeypatch):
    """Predictions made from other pixels (an earlier loader without colour profiles, say)
    are not reused: the loader's rules are part of the identity."""
    import preresq.data.image as image

    evaluate(eval_cfg(tmp_path, "limit=4"), predictor=FakePredictor())
    identity = json.loads((tmp_path / "identity.json").read_text())
    assert identity["media"] == {"image": image.DISPLAY_RULES}
    monkeypatch.setattr(image, "DISPLAY_RULES", "EXIF orientation")
    with pytest.raises(IdentityMismatchError, match=r'media.image: "EXIF turned, .*, ICC to sRGB" -> "EXIF orientation"'):
        evaluate(eval_cfg(tmp_path, "limit=4"), predictor=FakePredictor())


def test_video_thread_count_is_not_identity():
    from omegaconf import OmegaConf

    from preresq.data import video_decode
    from preresq.decoding import Decoding
    from preresq.evaluation.requests import ItemPrompt

    module = importlib.import_module("preresq.evaluation.evaluate")
    cfg = eval_cfg("unused", "prompt=default")
    prompts = {"video": ItemPrompt.from_cfg(cfg.prompt.get("video"), "video")}
    ids = []
    for threads in (1, 2):
        OmegaConf.update(cfg, "video.num_threads", threads)
        ids.append(module.identity_of(cfg, [], Decoding(), prompts, None))
    assert ids[0] == ids[1] and "num_threads" not in ids[0]["video"]
    assert ids[0]["video"]["grid"] == [4, 4]  # the views are in it
    assert ids[0]["media"] == {"video": video_decode.DISPLAY_RULES}  # and how frames are shown


def test_folder_without_identity_but_with_predictions_is_refused(tmp_path):
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "iqa_demo.jsonl").write_text('{"id": "x", "gt": 3, "pred": 3}\n')
    with pytest.raises(IdentityMismatchError, match="older version"):
        evaluate(eval_cfg(tmp_path, "limit=4"), predictor=FakePredictor())
    assert (tmp_path / "predictions" / "iqa_demo.jsonl").is_file()  # nothing deleted


def test_fingerprint_follows_content_not_path(tiny_model_dir, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tiny_model_dir, a)
    shutil.copytree(tiny_model_dir, b)
    cache = tmp_path / "fingerprints.json"
    fa = weights_fingerprint(a, cache)
    assert weights_fingerprint(b, cache)["sha256"] == fa["sha256"]  # moved: the same weights
    assert "model.safetensors" in fa["files"] and "config.json" in fa["files"]
    (b / "optimizer.pt").write_bytes(b"training state")  # does not change the answers
    assert weights_fingerprint(b, cache)["sha256"] == fa["sha256"]
    weights = b / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight, same size
    weights.write_bytes(bytes(data))
    fb = weights_fingerprint(b, cache)
    assert fb["sha256"] != fa["sha256"] and fb["files"]["config.json"] == fa["files"]["config.json"]
    assert str(weights.resolve()) in json.loads(cache.read_text())


def test_retrained_weights_in_the_same_folder_are_not_reused(tiny_model_dir, tmp_path, monkeypatch):
    """Two runs ending in ``.../stability/final``: two output folders; weights rewritten in
    place: the folder refuses them."""
    monkeypatch.setattr(importlib.import_module("preresq.evaluation.evaluate"), "build_predictor", lambda *a, **k: FakePredictor())
    finals = []
    for run in ("run1", "run2"):
        final = tmp_path / run / "stability" / "final"
        shutil.copytree(tiny_model_dir, final)
        finals.append(final)
    weights = finals[1] / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))

    def cfg(final, *extra):
        return eval_cfg(tmp_path, "output_dir=null", f"paths.output_root={tmp_path / 'out'}",
                        f"paths.cache_dir={tmp_path / 'cache'}", f"model.name_or_path={final}",
                        "limit=4", *extra)

    evaluate(cfg(finals[0]))
    evaluate(cfg(finals[1]))
    folders = sorted(p.name for p in (tmp_path / "out" / "eval").iterdir())
    assert len(folders) == 2 and all(f.startswith("stability--final-") for f in folders)
    # Retrain into run1's folder (new weights, same path): its output folder changes with
    # the weights, and the old folder named explicitly refuses them.
    shutil.copy(weights, finals[0] / "model.safetensors")
    old = next((tmp_path / "out" / "eval").iterdir()) / "iqa_demo"
    with pytest.raises(IdentityMismatchError, match="model.weights"):
        evaluate(cfg(finals[0], f"output_dir={old}"))


def test_a_hub_id_not_available_offline_names_the_id(monkeypatch):
    from preresq.evaluation.identity import local_model_dir
    from preresq.models import ModelNotFoundError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="nobody-here/no-such-model.*model.name_or_path="):
        local_model_dir("nobody-here/no-such-model")
    assert local_model_dir("/no/such/folder") == "/no/such/folder"  # loading reports it
