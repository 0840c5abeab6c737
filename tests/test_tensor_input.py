"""Tensors and arrays in: what the scorer takes besides paths and PIL images, and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from eval_fakes import FakePredictor
from PIL import Image
from test_video import SMALL, index_frame, read_index, tile_indices, write_clip

from preresq.data.video import ViewSpec, frame_views, load_views, plan_views
from preresq.evaluation.scorer import Scorer
from preresq.evaluation.tensor_input import Frames, as_sources, input_device
from preresq.prompts import load_template


def _batch(n=3, h=40, w=56, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _pil(x: torch.Tensor) -> Image.Image:
    """The 8-bit image a float (3, H, W) tensor stands for (round(255 x))."""
    return Image.fromarray((x.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())


def test_float_and_uint8_tensors_become_the_images_they_stand_for():
    x = _batch()
    sources, single = as_sources(x)
    assert not single and len(sources) == 3
    for got, want in zip(sources, x, strict=True):
        assert np.array_equal(np.asarray(got), np.asarray(_pil(want)))
    # uint8 / 255 comes back exactly, in float16 and float64 too; uint8 is taken as it is.
    u8 = (x * 255).round().to(torch.uint8)
    for variant in (u8, u8.float() / 255, u8.double() / 255, (u8.double() / 255).half()):
        back, _ = as_sources(variant)
        assert all(np.array_equal(np.asarray(b), u.permute(1, 2, 0).numpy()) for b, u in zip(back, u8, strict=True))
    one, single = as_sources(x[0])
    assert single and np.array_equal(np.asarray(one[0]), np.asarray(_pil(x[0])))


def test_arrays_lists_paths_and_pil_images_mix(tmp_path):
    x = _batch(2)
    array = np.asarray(_pil(x[0]))                      # (H, W, 3) uint8
    path = tmp_path / "a.png"
    _pil(x[1]).save(path)
    sources, single = as_sources([array, x[1], str(path), _pil(x[0])])
    assert not single
    assert np.array_equal(np.asarray(sources[0]), array)
    assert np.array_equal(np.asarray(sources[1]), np.asarray(_pil(x[1])))
    assert sources[2] == str(path) and isinstance(sources[3], Image.Image)
    batch, _ = as_sources(np.stack([array, array]))     # (N, H, W, 3)
    assert len(batch) == 2
    assert as_sources(array)[1] is True
    assert input_device([array, x]) == x.device and input_device([array]) is None


@pytest.mark.parametrize(("given", "words"), [
    (torch.rand(5, 5), ["(3, H, W)", "2 dimensions", "(5, 5)"]),
    (torch.rand(2, 2, 3, 8, 8), ["(N, 3, H, W)", "5 dimensions"]),
    (torch.rand(2, 4, 8, 8), ["3 colour channels", "got 4", "(2, 4, 8, 8)"]),
    (torch.rand(1, 8, 8), ["3 colour channels", "got 1"]),
    (torch.rand(2, 3, 8, 8) * 255, ["[0, 1]", "max", "divide by 255"]),
    (torch.rand(2, 3, 8, 8) - 0.5, ["[0, 1]", "min -"]),
    (torch.full((3, 8, 8), float("nan")), ["NaN"]),
    (torch.randint(0, 255, (2, 3, 8, 8)), ["dtype torch.int64", "uint8"]),
    (torch.ones(3, 8, 8, dtype=torch.bool), ["torch.bool"]),
    (np.zeros((3, 8, 8), np.uint8), ["(H, W, 3)", "got 8"]),
    (np.zeros((8, 8, 3), np.int32), ["dtype int32"]),
    (np.full((8, 8, 3), 2.0), ["[0, 1]"]),
    ([torch.rand(2, 3, 8, 8)], ["inputs[0]", "(3, H, W)", "4 dimensions"]),
    ({"image": 1}, ["expected images or videos", "dict"]),
    ([3.5], ["inputs[0]", "float"]),
])
def test_bad_input_is_refused_naming_what_was_given(given, words):
    with pytest.raises(ValueError) as err:
        as_sources(given)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_videos_in_memory_are_shown_as_a_file_with_those_frames_is(tmp_path):
    frames = np.stack([index_frame(i) for i in range(40)])            # (T, H, W, 3)
    tensor = torch.from_numpy(frames).permute(0, 3, 1, 2)              # (T, 3, H, W) uint8
    (video,), single = as_sources(tensor, "video")
    assert single and isinstance(video, Frames) and len(video.images) == 40
    views = video.views(SMALL)
    from_file = load_views(write_clip(tmp_path / "c.mp4", 40), **SMALL)
    assert [v.size for v in views] == [v.size for v in from_file]
    plan = plan_views(40, ViewSpec.from_cfg(**SMALL))
    assert tile_indices(views[0], 4, 4) == plan.mosaic == tile_indices(from_file[0], 4, 4)
    assert [read_index(v) for v in views[1:]] == plan.local == [read_index(v) for v in from_file[1:]]
    # The same video as a list of frames, an array, or one of a batch of videos.
    assert as_sources(list(tensor), "video")[0][0].images[5].tobytes() == video.images[5].tobytes()
    assert len(as_sources(frames, "video")[0][0].images) == 40
    clips, single = as_sources(torch.stack([tensor[:8], tensor[8:16]]), "video")
    assert not single and [len(c.images) for c in clips] == [8, 8]
    clips, _ = as_sources([tensor[:8], list(tensor[:4]), "clip.mp4"], "video")
    assert [type(c) for c in clips] == [Frames, Frames, str]
    with pytest.raises(ValueError, match="share one size"):
        as_sources([tensor[0], tensor[0, :, :56]], "video")
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\) or \(N, T, 3, H, W\)"):
        as_sources(torch.rand(3, 8, 8).unsqueeze(0).unsqueeze(0).unsqueeze(0), "video")
    with pytest.raises(ValueError, match="at least one frame"):
        frame_views([])
    with pytest.raises(ValueError, match=r"inputs\[1\]: expected a video"):
        as_sources(["clip.mp4", Image.new("RGB", (8, 8))], "video")
    (still,), _ = as_sources(Image.new("RGB", (8, 8)), "video")  # one picture: a one-frame video
    assert isinstance(still, Frames) and len(still.images) == 1


def test_the_scorer_takes_tensors_as_the_pil_images_they_stand_for():
    x = _batch(5, seed=1)
    fake = FakePredictor()  # its answer depends on the pixels only
    scorer = Scorer.from_pretrained("tiny", predictor=fake, prompt="demo_digit")
    from_tensor = scorer(x)
    from_pil = scorer.score([_pil(xi) for xi in x])
    assert [r.score for r in from_tensor] == [r.score for r in from_pil]
    assert [r.path for r in from_tensor] == [None] * 5
    assert {r.modality for r in from_tensor} == {"image"}
    assert scorer.score(x[0]).score == from_pil[0].score  # one image, one result


def test_the_scorer_takes_a_video_as_frames_with_the_video_prompt():
    class Recording(FakePredictor):
        requests = []

        def generate(self, requests):
            self.requests.extend(requests)
            return super().generate(requests)

    fake = Recording()
    scorer = Scorer.from_pretrained("tiny", predictor=fake)
    clip = torch.rand(10, 3, 56, 84)
    result = scorer.score(clip, modality="video")
    assert result.modality == "video" and result.path is None
    request = fake.requests[-1]
    assert len(request.images) == 4  # the mosaic and three local frames
    assert request.messages[0]["content"][-1]["text"] == load_template("vqa")
    with pytest.raises(ValueError, match="modality must be one of"):
        scorer.score(clip, modality="audio")
