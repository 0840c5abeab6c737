"""Views of a clip (preresq.data.video): frame rules, decoding, errors, fallback.

Test clips are written with PyAV (H.264 with B-frames) and show their own frame index as
8 black/white stripes (a binary number, most significant bit left), which survives lossy
coding and downscaling, so every mosaic tile and local frame can be traced to its frame.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from preresq.data import video, video_decode
from preresq.data.video import (
    VideoDecodeError,
    ViewSpec,
    fit_size,
    frame_at,
    frame_indices,
    load_views,
    plan_views,
)

W, H, BITS = 224, 112, 8
# Tiles of 112x56 (half size) and local frames at native size.
SMALL = {"grid": 4, "mosaic_max_pixels": 16 * 112 * 56, "local_max_pixels": W * H}


def index_frame(i: int) -> np.ndarray:
    frame = np.full((H, W, 3), 20, np.uint8)
    stripe = W // BITS
    for b in range(BITS):
        if (i >> (BITS - 1 - b)) & 1:
            frame[:, b * stripe:(b + 1) * stripe] = 235
    return frame


def read_index(image) -> int:
    """The frame index shown by an image (or a tile) of ``index_frame``."""
    a = np.asarray(image, dtype=np.float32)
    h, w = a.shape[:2]
    stripe = w / BITS
    bits = [a[h // 4:3 * h // 4, int(b * stripe + stripe / 4):int(b * stripe + 3 * stripe / 4)].mean() > 128
            for b in range(BITS)]
    return sum(int(bit) << (BITS - 1 - k) for k, bit in enumerate(bits))


def write_clip(path, num_frames: int, gop: int = 8, codec: str = "libx264",
               options: dict | None = None, rate: int = 25, pix_fmt: str = "yuv420p") -> str:
    """A clip of ``num_frames`` frames at ``rate`` fps, frame ``i`` showing ``index_frame(i)``;
    the container is the file name's."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        stream.gop_size = gop
        stream.codec_context.time_base = Fraction(1, rate)
        if codec == "libx264":
            # B-frames: decode order != display order
            stream.options = options or {"crf": "12", "bf": "3"}
        elif options:
            stream.options = options
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(index_frame(i), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return {
        "gop8": write_clip(root / "gop8.mp4", 40, gop=8),
        "gop250": write_clip(root / "gop250.mp4", 40, gop=250),
        "short": write_clip(root / "short.mp4", 5),
    }


def tile_indices(mosaic: Image.Image, rows: int, cols: int) -> list[int]:
    a = np.asarray(mosaic)
    th, tw = a.shape[0] // rows, a.shape[1] // cols
    return [read_index(a[r * th:(r + 1) * th, c * tw:(c + 1) * tw]) for r in range(rows) for c in range(cols)]


# --------------------------------------------------------------------------- pure rules


def test_frame_indices_examples():
    assert frame_indices(300, 4) == [37, 112, 187, 262]
    assert frame_indices(16, 16) == list(range(16))
    assert frame_indices(32, 16) == list(range(1, 32, 2))
    assert frame_indices(5, 16) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert frame_indices(1, 3) == [0, 0, 0]


@pytest.mark.parametrize("num_frames", [1, 2, 5, 15, 16, 17, 40, 299, 300, 1001])
@pytest.mark.parametrize("count", [1, 3, 16, 25])
def test_frame_indices_properties(num_frames, count):
    idx = frame_indices(num_frames, count)
    assert len(idx) == count
    assert all(0 <= i < num_frames for i in idx)
    assert idx == sorted(idx)  # time order
    if num_frames >= count:
        assert len(set(idx)) == count  # distinct frames when there are enough
    else:  # every frame shown, each as often as the others give or take one
        reps = np.bincount(idx, minlength=num_frames)
        assert reps.min() >= 1 and reps.max() - reps.min() <= 1
    # Each is the frame on screen at the centre of its span.
    assert idx == [frame_at(num_frames, (i + 0.5) / count) for i in range(count)]


def test_frame_at():
    assert [frame_at(300, p) for p in (0.0, 0.25, 0.5, 0.75, 1.0)] == [0, 75, 150, 225, 299]
    assert [frame_at(5, p) for p in (0.25, 0.5, 0.75)] == [1, 2, 3]
    assert frame_at(100, 0.29) == 29  # 0.29 * 100 is 28.999... in binary
    with pytest.raises(ValueError):
        frame_at(10, 1.5)
    with pytest.raises(ValueError):
        frame_at(0, 0.5)


def test_fit_size():
    assert fit_size(1280, 720, 802816 // 16) == (280, 168)
    assert fit_size(1280, 720, 401408) == (840, 448)
    assert fit_size(112, 112, 50176) == (112, 112)  # never enlarged past rounding
    for w, h, budget in [(1920, 1080, 100000), (720, 1280, 50000), (3000, 200, 40000)]:
        fw, fh = fit_size(w, h, budget)
        assert fw % 28 == 0 and fh % 28 == 0 and fw * fh <= budget


def test_plan_default():
    plan = plan_views(300, ViewSpec())
    assert plan.mosaic == frame_indices(300, 16)
    assert plan.local == [75, 150, 225]
    assert plan.crop is None
    assert plan.needed() == sorted(set(plan.mosaic + plan.local))


def test_settings_are_checked():
    with pytest.raises(ValueError, match="unknown video view settings"):
        ViewSpec.from_cfg(grdi=4)
    with pytest.raises(ValueError, match="num_local"):
        ViewSpec.from_cfg(num_local=3, local_positions=[0.5])
    with pytest.raises(ValueError, match="outside"):
        ViewSpec.from_cfg(local_positions=[1.2])
    with pytest.raises(ValueError, match="backend"):
        ViewSpec.from_cfg(backend="opencv")


def test_default_config_file():
    cfg = video.default_config()
    assert ViewSpec.from_cfg(**cfg) == ViewSpec()  # the yaml and the code agree
    assert ViewSpec.from_cfg(**OmegaConf.create(cfg)) == ViewSpec()  # a Hydra node works too


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("backend", ["decord", "pyav"])
@pytest.mark.parametrize("clip", ["gop8", "gop250"])
def test_views_come_from_the_stated_frames(clips, clip, backend):
    views = load_views(clips[clip], backend=backend, **SMALL)
    assert len(views) == 4 and all(v.mode == "RGB" for v in views)
    mosaic, *local = views
    assert mosaic.size == (4 * 112, 4 * 56)
    assert tile_indices(mosaic, 4, 4) == frame_indices(40, 16) == [1, 3, 6, 8, 11, 13, 16, 18, 21,
                                                                   23, 26, 28, 31, 33, 36, 38]
    assert [read_index(v) for v in local] == [10, 20, 30]
    tile_area = (mosaic.width // 4) * (mosaic.height // 4)
    assert all(v.size == (W, H) and v.width * v.height >= 4 * tile_area for v in local)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_short_clip_repeats_frames_evenly(clips, backend):
    mosaic, *local = load_views(clips["short"], backend=backend, **SMALL)
    assert tile_indices(mosaic, 4, 4) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert [read_index(v) for v in local] == [1, 2, 3]


def test_grid_positions_and_crop_are_configurable(clips):
    views = load_views(clips["gop8"], grid=[2, 3], local_positions=[0.0, 1.0],
                       crop={"size": 56, "position": 0.5},
                       mosaic_max_pixels=6 * 112 * 56, local_max_pixels=W * H)
    mosaic, first, last, crop = views
    assert tile_indices(mosaic, 2, 3) == frame_indices(40, 6)
    assert [read_index(first), read_index(last)] == [0, 39]
    # The crop is native pixels: the centre of the (unresized) frame at position 0.5.
    middle = load_views(clips["gop8"], num_local=1, local_max_pixels=W * H)[1]
    assert crop.size == (56, 56)
    box = ((W - 56) // 2, (H - 56) // 2, (W + 56) // 2, (H + 56) // 2)
    assert np.array_equal(np.asarray(crop), np.asarray(middle.crop(box)))


def test_grid_null_leaves_out_the_mosaic(clips):
    """``grid: null``: local frames only (the views ablation's "local"); a 1x1 grid is one
    middle frame; no view at all is an error."""
    from preresq.evaluation.batching import video_view_tokens, views_per_video
    from preresq.training.vllm import visual_tokens

    local = load_views(clips["gop8"], **{**SMALL, "grid": None})
    assert [read_index(v) for v in local] == [10, 20, 30] and local[0].size == (W, H)
    (middle,) = load_views(clips["gop8"], **{**SMALL, "grid": [1, 1], "num_local": 0})
    assert read_index(middle) == 20
    settings = {**SMALL, "num_local": 3, "grid": None}
    assert views_per_video(settings) == 3 and views_per_video({**settings, "grid": 4}) == 4
    assert video_view_tokens(settings, 3136, 10**7) == [W * H // 784] * 3
    assert visual_tokens("video", 10**7, 1, settings) == 3 * W * H // 784
    with pytest.raises(ValueError, match="no views"):
        ViewSpec.from_cfg(grid=None, num_local=0)


def test_default_views_fit_their_budgets(clips):
    mosaic, *local = load_views(clips["gop8"], **video.default_config())
    assert len(local) == 3
    for view, budget in [(mosaic, 802816)] + [(v, 401408) for v in local]:
        assert view.width % 28 == 0 and view.height % 28 == 0
        assert view.width * view.height <= budget


def test_pyav_decodes_only_up_to_the_needed_frame(clips):
    """The fallback seeks to the keyframe before a frame instead of decoding from the start."""
    reader = video_decode.PyAVReader(Path(clips["gop8"]), 1)
    try:
        [(index, frame)] = list(reader.frames([37]))
    finally:
        reader.close()
    assert index == 37 and read_index(frame) == 37
    assert reader.frames_decoded <= 16  # from the last keyframe (interval <= 8), not all 38


def test_pyav_skips_frames_nothing_refers_to(clips):
    """Between wanted frames, B-frames that no frame references are not decoded at all."""
    reader = video_decode.PyAVReader(Path(clips["gop250"]), 1)
    try:
        got = [(i, read_index(f)) for i, f in reader.frames([5, 21, 38])]
    finally:
        reader.close()
    assert got == [(5, 5), (21, 21), (38, 38)]
    assert reader.frames_decoded < 39  # fewer than every frame up to the last wanted one


def packets_in_decode_order(path) -> list[tuple[int, bool]]:
    import av

    with av.open(str(path)) as container:
        return [(p.pts, p.is_keyframe) for p in container.demux(container.streams.video[0])
                if p.size]


def test_pyav_decodes_nothing_fed_after_the_last_wanted_packet(tmp_path):
    """Once the wanted frame's packet is in, the decoder is drained: the packets after it in
    decode order (its reorder delay) are never decoded. In a fixed B-pyramid (decode order
    0 4 2 1 3 8 6 5 7 ...), frame 8 needs 0, 4 and 8 only (2 is a reference B-frame decoded
    before it); feeding on until 8 came out used to decode the reference B-frame 6 too."""
    path = Path(write_clip(tmp_path / "pyramid.mp4", 24, gop=250, options={
        "crf": "12", "x264-params": "bframes=3:b-adapt=0:b-pyramid=normal:scenecut=0"}))
    reader = video_decode.PyAVReader(path, 1)
    try:
        starts = reader.index.starts
        order = [starts.index(p) for p, _ in packets_in_decode_order(path)]
        assert order[:9] == [0, 4, 2, 1, 3, 8, 6, 5, 7]
        [(index, frame)] = list(reader.frames([8]))
        decoded = sorted(starts.index(p) for p in reader._streams[0].decoded_pts)
    finally:
        reader.close()
    assert (index, read_index(frame)) == (8, 8)
    assert decoded == [0, 2, 4, 8]  # not 6 (fed after 8), nor 1 and 3 (nothing refers to them)


@pytest.mark.parametrize("clip", ["gop8", "gop250"])
def test_pyav_threads_give_the_same_frames_in_the_order_asked(clips, clip):
    """Runs from different keyframes decode on different threads; the frames, their order
    and the work done are those of one thread."""
    asked = [3, 9, 17, 18, 33, 39, 4, 4, 25]
    got = {}
    for threads in (1, 2, 3):
        reader = video_decode.PyAVReader(Path(clips[clip]), threads)
        try:
            got[threads] = ([(i, read_index(f)) for i, f in reader.frames(asked)], reader.frames_decoded,
                            len(reader._streams))
        finally:
            reader.close()
    assert got[1][0] == [(i, i) for i in asked]
    assert got[2][:2] == got[1][:2] and got[3][:2] == got[1][:2]
    assert got[1][2] == 1 and 1 <= got[2][2] <= 2 and 1 <= got[3][2] <= 3  # one decoder per thread at most


def test_pyav_runs_start_at_keyframes(clips):
    reader = video_decode.PyAVReader(Path(clips["gop8"]), 1)
    try:
        pts = reader.index.starts
        k = [pts.index(key) for key in reader.index.keys]  # x264 adds keyframes at scene cuts
        assert k[2] - k[1] >= 3
        asked = [k[1], k[1] + 1, k[2] - 1, k[2], k[3] + 1, k[1]]
        runs = reader.runs([pts[i] for i in asked])
    finally:
        reader.close()
    # One run per keyframe reached; going back starts a new one.
    assert [[pts.index(t) for t in run] for run in runs] == [
        [k[1], k[1] + 1, k[2] - 1], [k[2]], [k[3] + 1], [k[1]]]


def test_num_threads_is_checked():
    with pytest.raises(ValueError, match="num_threads"):
        ViewSpec.from_cfg(num_threads=0)


def test_pyav_reader_goes_back_for_an_earlier_frame(clips):
    reader = video_decode.PyAVReader(Path(clips["gop8"]), 1)
    try:
        got = [(i, read_index(f)) for i, f in reader.frames([30, 4, 4, 17])]
    finally:
        reader.close()
    assert got == [(30, 30), (4, 4), (4, 4), (17, 17)]


# --------------------------------------------------------------------------- errors and fallback


@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
@pytest.mark.parametrize("content", ["empty", "garbage", "truncated"])
def test_broken_file_raises_naming_it(clips, tmp_path, backend, content):
    path = tmp_path / f"broken_{content}.mp4"
    data = open(clips["gop250"], "rb").read()
    path.write_bytes({"empty": b"", "garbage": np.random.default_rng(0).bytes(5000),
                      "truncated": data[:len(data) // 2]}[content])
    with pytest.raises(VideoDecodeError, match=str(path)):
        load_views(path, backend=backend)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        load_views(tmp_path / "nope.mp4")


def test_falls_back_to_decord_when_pyav_cannot_open(clips, monkeypatch, caplog):
    import av

    def refuse(path, num_threads, index=None):
        raise av.InvalidDataError(1094995529, "Invalid data found when processing input")

    monkeypatch.setattr(video_decode, "PyAVReader", refuse)
    with caplog.at_level(logging.WARNING, logger="preresq.data.video"):
        mosaic, *local = load_views(clips["gop8"], **SMALL)
    assert tile_indices(mosaic, 4, 4) == frame_indices(40, 16)
    assert [read_index(v) for v in local] == [10, 20, 30]
    assert "pyav cannot decode" in caplog.text and "trying decord" in caplog.text
    assert clips["gop8"] in caplog.text
    with pytest.raises(VideoDecodeError, match="pyav cannot decode it"):
        load_views(clips["gop8"], backend="pyav")


def test_falls_back_to_decord_when_pyav_fails_mid_clip(clips, monkeypatch):
    import av

    class FailsReading(video_decode.PyAVReader):
        def decoded(self, indices):
            yield from ()
            raise av.InvalidDataError(1094995529, "Invalid data found when processing input")

    monkeypatch.setattr(video_decode, "PyAVReader", FailsReading)
    mosaic, *local = load_views(clips["short"], **SMALL)
    assert [read_index(v) for v in local] == [1, 2, 3]


def test_both_backends_failing_names_both_reasons(clips, monkeypatch):
    import av
    import decord

    def no_pyav(path, num_threads, index=None):
        raise av.InvalidDataError(1094995529, "Invalid data found when processing input")

    def no_decord(path, num_threads, index):
        raise decord.DECORDError("ERROR opening")

    monkeypatch.setattr(video_decode, "PyAVReader", no_pyav)
    monkeypatch.setattr(video_decode, "DecordReader", no_decord)
    with pytest.raises(VideoDecodeError, match=r"gop8\.mp4: cannot decode \(pyav: .*Invalid data.*; "
                                               r"decord: ERROR opening\)"):
        load_views(clips["gop8"], **SMALL)


def test_bench_video_measures_every_kind(clips):
    """scripts/bench_video.py's measurements run (on a small clip; its figures are printed by
    the script, not asserted): each kind gives the same views, and the floor decodes fewer
    frames than the clip has."""
    import importlib.util

    from preresq.paths import REPO_ROOT

    spec = importlib.util.spec_from_file_location("bench_video", REPO_ROOT / "scripts" / "bench_video.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    got = bench.time_kinds(clips["gop8"], runs=2)
    for kind, row in got.items():  # (peak memory means something only in the script's fresh processes)
        measured = bench.measure(kind, clips["gop8"])
        assert row["seconds"] > 0 and row["cpu"] > 0 and measured["cold_seconds"] > 0
        assert measured["detail"] == row["detail"]
    views = {got[k]["detail"] for k in bench.KINDS if k.startswith("views")}
    assert len(views) == 1  # every backend and thread count: the same view sizes
    wanted, decoded = (int(w) for w in got["floor"]["detail"].split()[::3][:2])
    assert wanted == 19 and wanted <= decoded < 40
    assert got["floor_1thread"]["detail"] == got["floor"]["detail"]
    assert got["all_frames"]["detail"].startswith("40 frames")


@pytest.mark.timeout(60)
def test_pyav_close_stops_decoder_threads_first(clips, monkeypatch):
    """Closing a reader whose frames are still being read (a caller that stopped early or
    failed) waits for its decoder threads: a container closed under a thread that seeks or
    decodes in it crashes the process (CI met that segfault)."""
    import threading
    import time

    stream = video_decode._PyAVStream
    real_run, real_close = stream.run_frames, stream.close
    decoding: set = set()
    closed_while_decoding = []

    def slow_run(self, run, key):
        decoding.add(id(self))
        try:
            for item in real_run(self, run, key):
                time.sleep(0.02)
                yield item
        finally:
            decoding.discard(id(self))

    def close(self):
        closed_while_decoding.append(id(self) in decoding)
        real_close(self)

    monkeypatch.setattr(stream, "run_frames", slow_run)
    monkeypatch.setattr(stream, "close", close)
    reader = video_decode.PyAVReader(Path(clips["gop8"]), 2)
    frames = reader.decoded(list(range(0, 40, 3)))
    next(frames)  # the threads go on decoding the runs ahead
    reader.close()
    assert len(closed_while_decoding) == 2 and not any(closed_while_decoding)
    assert not [t for t in threading.enumerate() if t.name.startswith("pyav")]
    frames.close()  # after the reader: nothing left to stop


@pytest.mark.timeout(60)
def test_pyav_thread_errors_reach_the_caller(clips, monkeypatch):
    """A decoder thread that fails (here: its own container will not open) raises in the
    caller, naming the file; it never leaves the caller waiting."""
    import time

    opened = []
    real, real_run = video_decode._PyAVStream, video_decode._PyAVStream.run_frames

    def second_fails(path):
        opened.append(path)
        if len(opened) > 1:
            raise VideoDecodeError(f"{path}: cannot open a second time")
        return real(path)

    def slow_first_run(self, run, key):
        if run[0] == 0:
            time.sleep(0.5)  # the first decoder stays busy, so the second thread opens its own
        yield from real_run(self, run, key)

    monkeypatch.setattr(video_decode, "_PyAVStream", second_fails)
    monkeypatch.setattr(real, "run_frames", slow_first_run)
    reader = video_decode.PyAVReader(Path(clips["gop8"]), 2)
    try:
        with pytest.raises(VideoDecodeError, match="cannot open a second time"):
            list(reader.decoded(list(range(0, 40, 3))))
    finally:
        reader.close()
    assert len(opened) >= 2  # the error came from a decoder thread's own open
