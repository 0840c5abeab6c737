"""Videos as displayed, whichever backend: rotated phone clips upright, frames chosen by
presentation time (variable frame rate), and real frames when the header lies about length.

Clips are made with PyAV and show their frame index as stripes (``test_video.index_frame``),
so the frame behind every view is read back from its pixels.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from test_video import SMALL, H, W, index_frame, read_index, tile_indices, write_clip

from preresq.data import video_decode
from preresq.data.video import (
    ViewSpec,
    clip_span,
    frame_at,
    frame_at_time,
    frame_indices,
    frames_at_span_centres,
    load_views,
    plan_views,
)
from preresq.data.video_decode import ClipIndex, Orientation, VideoDecodeError, index_clip, upright

BACKENDS = ["decord", "pyav", "fallback"]


def write(path, pts, time_base=Fraction(1, 25), rotation=None, fmt=None, matrix=None,
          picture=index_frame) -> str:
    """An H.264 clip (B-frames) with frame ``i`` at timestamp ``pts[i]`` (in ``time_base``),
    showing ``picture(i)``; ``rotation`` or a display ``matrix`` in its header."""
    import av

    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        stream.options = {"crf": "12", "bf": "3"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if matrix is not None:
            stream.set_display_matrix(matrix)
        for i, t in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(picture(i), format="rgb24")
            frame.pts, frame.time_base = t, time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


def views(path, backend, monkeypatch, **cfg):
    """``load_views`` with one backend; ``fallback`` is auto with PyAV refusing the file."""
    if backend == "fallback":
        import av

        def refuse(path, num_threads, index=None):
            raise av.InvalidDataError(1094995529, "cannot open")

        monkeypatch.setattr(video_decode, "PyAVReader", refuse)
        backend = "auto"
    return load_views(path, backend=backend, **{**SMALL, **cfg})


# --------------------------------------------------------------------------- pure rules


@pytest.mark.parametrize("num_frames", [1, 2, 5, 16, 17, 40, 299, 300])
@pytest.mark.parametrize("count", [1, 3, 16])
def test_time_rule_is_the_index_rule_at_a_constant_rate(num_frames, count):
    starts = [1001 + 3003 * i for i in range(num_frames)]  # 29.97 fps in a 1/90000 base, offset
    assert frames_at_span_centres(starts, count) == frame_indices(num_frames, count)
    for p in (0.0, 0.1, 0.25, 0.29, 0.5, 0.75, 0.999, 1.0):
        assert frame_at_time(starts, p) == frame_at(num_frames, p)
    assert plan_views(starts, ViewSpec()) == plan_views(num_frames, ViewSpec())


def test_time_rule_on_a_variable_rate():
    starts = [10 * i for i in range(30)] + [300 + 100 * i for i in range(10)]
    assert clip_span(starts) == (0, 1300)  # the last frame lasts as long as the one before
    assert frames_at_span_centres(starts, 16) == [4, 12, 20, 28, 30, 31, 32, 33, 33, 34, 35, 36,
                                                  37, 37, 38, 39]
    assert [frame_at_time(starts, p) for p in (0.25, 0.5, 0.75)] == [30, 33, 36]


# The eight display matrices (a, b, c, d of FFmpeg's a b u c d v x y w, 16.16 fixed point)
# and how ffplay's autorotate shows a frame under each, written as the filters it inserts.
ONE = 1 << 16
SHOWN = {
    (1, 0, 0, 1): lambda a: a,
    (-1, 0, 0, 1): lambda a: a[:, ::-1],  # hflip
    (1, 0, 0, -1): lambda a: a[::-1],  # vflip
    (-1, 0, 0, -1): lambda a: a[::-1, ::-1],  # hflip + vflip
    (0, 1, -1, 0): lambda a: np.rot90(a, -1),  # transpose=clock (90 degrees clockwise)
    (0, -1, 1, 0): lambda a: np.rot90(a, 1),  # transpose=cclock
    (0, 1, 1, 0): lambda a: a.swapaxes(0, 1),  # transpose=cclock_flip (the transpose)
    (0, -1, -1, 0): lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transpose=clock_flip
}


def display_matrix(a, b, c, d, scale=ONE) -> list[int]:
    return [a * scale, b * scale, 0, c * scale, d * scale, 0, 0, 0, 1 << 30]


@pytest.mark.parametrize("abcd", list(SHOWN))
def test_display_matrix_is_shown_as_ffplay_shows_it(abcd):
    a = np.arange(24).reshape(4, 6)
    for scale in (ONE, 3 * ONE // 2):  # a uniformly scaled matrix turns the same way
        orientation = Orientation.of_matrix(display_matrix(*abcd, scale=scale))
        assert np.array_equal(upright(a, orientation), SHOWN[abcd](a))
        assert orientation.swaps_sides == (abcd[0] == 0)
    assert upright(a, Orientation()) is a
    assert Orientation.of_matrix(None) == Orientation()


def test_display_matrix_at_an_odd_angle_or_degenerate_is_refused():
    c, s = round(ONE * 0.8660254), ONE // 2  # 30 degrees
    with pytest.raises(VideoDecodeError, match=r"clip.mp4: .*turns it by -?30.0 degrees"):
        Orientation.of_matrix([c, -s, 0, s, c, 0, 0, 0, 1 << 30], "clip.mp4")
    with pytest.raises(VideoDecodeError, match="degenerate"):
        Orientation.of_matrix([0] * 8 + [1 << 30], "clip.mp4")


# --------------------------------------------------------------------------- rotation


@pytest.fixture(scope="module")
def rotated(tmp_path_factory):
    root = tmp_path_factory.mktemp("rotated")
    pts = list(range(40))
    return {r: write(root / f"rot{r}.mp4", pts, rotation=r) for r in (None, 90, -90, 180)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_clip_is_shown_upright(rotated, rotation, backend, monkeypatch):
    plain = load_views(rotated[None], backend="pyav", **SMALL)
    turned = views(rotated[rotation], backend, monkeypatch)
    k = round(rotation / 90) % 4

    def close(mine, ref):  # ``mine`` is ``ref`` turned by ``rotation``
        assert mine.shape[:2] == (ref.shape[1::-1] if k % 2 else ref.shape[:2])
        assert np.abs(mine.astype(np.float32) - np.rot90(ref, k)).mean() < 3

    for mine, ref in zip(turned[1:], plain[1:], strict=True):
        close(np.asarray(mine), np.asarray(ref))
    # Each mosaic tile is its frame turned (the grid itself stays rows x cols in time order).
    mine, ref = np.asarray(turned[0]), np.asarray(plain[0])
    mh, mw, rh, rw = mine.shape[0] // 4, mine.shape[1] // 4, ref.shape[0] // 4, ref.shape[1] // 4
    for r in range(4):
        for c in range(4):
            close(mine[r * mh:(r + 1) * mh, c * mw:(c + 1) * mw], ref[r * rh:(r + 1) * rh, c * rw:(c + 1) * rw])
    # Turned back, the local frames show the frames the plan names.
    assert [read_index(np.rot90(np.asarray(v), -k)) for v in turned[1:]] == [10, 20, 30]


def ramps(i: int) -> np.ndarray:
    """Frame ``i`` with nothing symmetric: its index as red stripes, green rising down the
    frame, blue rising across it."""
    frame = index_frame(i)
    frame[..., 1] = np.linspace(0, 255, H, dtype=np.uint8)[:, None]
    frame[..., 2] = np.linspace(0, 255, W, dtype=np.uint8)[None, :]
    return frame


@pytest.fixture(scope="module")
def matrix_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix")
    return {abcd: write(root / f"m{i}.mp4", list(range(40)), matrix=display_matrix(*abcd),
                        picture=ramps) for i, abcd in enumerate(SHOWN)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_mirrored_and_turned_clips_are_shown_as_ffplay_shows_them(matrix_clips, backend, monkeypatch):
    """All eight display matrices, mirrors included (decord alone would turn a mirrored clip
    by the matrix's angle, upside down or sideways)."""
    plain = [np.asarray(v, np.float32) for v in load_views(matrix_clips[1, 0, 0, 1], backend="pyav", **SMALL)]
    for abcd, shown in SHOWN.items():
        got = views(matrix_clips[abcd], backend, monkeypatch)
        for mine, ref in zip(got[1:], plain[1:], strict=True):  # the local frames
            want = shown(ref)
            assert np.asarray(mine).shape == want.shape, abcd
            assert np.abs(np.asarray(mine, np.float32) - want).mean() < 4, abcd


def test_reading_a_frames_matrix_does_not_keep_the_frame_alive(matrix_clips):
    """PyAV's cached ``frame.side_data`` forms a cycle with its frame; reading every wanted
    frame's matrix through it kept the frames (and decoder buffers) until the cycle
    collector ran, and tripled the views' peak memory."""
    import gc

    import av

    def frames_alive() -> int:
        return sum(type(o).__name__ == "VideoFrame" for o in gc.get_objects())

    gc.collect()
    gc.disable()
    try:
        with av.open(matrix_clips[-1, 0, 0, 1]) as container:
            frames = container.decode(video=0)
            next(frames)
            before = frames_alive()
            for _, frame in zip(range(10), frames, strict=False):
                assert Orientation.of_frame(frame).mirror
            del frame
            assert frames_alive() <= before
    finally:
        gc.enable()


# --------------------------------------------------------------------------- timing


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory):
    pts = [10 * i for i in range(30)] + [300 + 100 * i for i in range(10)]  # milliseconds
    return write(tmp_path_factory.mktemp("vfr") / "vfr.mp4", pts, time_base=Fraction(1, 1000))


@pytest.mark.parametrize("backend", BACKENDS)
def test_variable_frame_rate_is_sampled_evenly_in_time(vfr_clip, backend, monkeypatch):
    assert index_clip(vfr_clip).num_frames == 40
    mosaic, *local = views(vfr_clip, backend, monkeypatch)
    # By index the tiles would be frames 1, 3, 6, ... 38 (three quarters from the first 0.3 s).
    assert tile_indices(mosaic, 4, 4) == [4, 12, 20, 28, 30, 31, 32, 33, 33, 34, 35, 36, 37, 37, 38, 39]
    assert [read_index(v) for v in local] == [30, 33, 36]


def _patch_mkv_duration(data: bytes, factor: float) -> bytes:
    at = data.find(b"\x44\x89\x88")  # Segment Info / Duration, an 8-byte float
    (seconds,) = struct.unpack(">d", data[at + 3:at + 11])
    return data[:at + 3] + struct.pack(">d", seconds * factor) + data[at + 11:]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("factor", [10.0, 0.1])
def test_header_that_lies_about_length_still_gives_real_frames(tmp_path, factor, backend, monkeypatch):
    """A Matroska file whose Duration claims 16 s (or 0.16 s) for its 1.6 s of frames. (FFmpeg
    recomputes an MP4's length from its sample table, so patched MP4 headers do not lie.)"""
    import av

    honest = write(tmp_path / "honest.mkv", list(range(40)))
    lying = tmp_path / "lying.mkv"
    lying.write_bytes(_patch_mkv_duration(open(honest, "rb").read(), factor))
    with av.open(str(lying)) as c:  # the patch took: the header now claims another length
        assert abs(c.duration / 1e6 - 1.6 * factor) < 0.2 * factor
    mosaic, *local = views(lying, backend, monkeypatch)
    assert tile_indices(mosaic, 4, 4) == frame_indices(40, 16)
    assert [read_index(v) for v in local] == [10, 20, 30]


def test_decord_is_not_used_when_its_frame_count_differs(rotated):
    import decord

    wrong = ClipIndex(starts=list(range(39)), keys=[0])
    with pytest.raises(decord.DECORDError, match="decord counts 40 frames, the packets 39"):
        video_decode.DecordReader(rotated[None], 1, wrong)


@pytest.mark.parametrize("pix_fmt, size", [("yuv444p", (65, 47)), ("gray", (64, 48))])
def test_odd_sized_and_grey_clips_agree_across_backends(tmp_path, pix_fmt, size):
    """Beyond the issue: odd frame sizes and grey-only streams; brightness encodes the frame."""
    import av

    width, height = size
    path = tmp_path / f"{pix_fmt}.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 20 * i + 20, np.uint8),
                                               format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    cfg = {"grid": 2, "mosaic_max_pixels": 4 * 56 * 56, "local_max_pixels": 56 * 56}
    brightness = {}
    for backend in ("pyav", "decord"):
        views = load_views(path, backend=backend, **cfg)
        assert all(v.mode == "RGB" and v.width % 28 == 0 and v.height % 28 == 0 for v in views)
        brightness[backend] = [float(np.asarray(v).mean()) for v in views[1:]]
    assert brightness["pyav"] == pytest.approx(brightness["decord"], abs=2)
    # Local frames 2, 5, 7 of 10: brighter in time order, evenly spaced by the frame number.
    steps = np.diff(brightness["pyav"])
    assert steps[0] == pytest.approx(steps[1] * 3 / 2, rel=0.15) and steps.min() > 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("claimed", [400, 10])
def test_avi_header_that_lies_about_the_frame_count(tmp_path, claimed, backend, monkeypatch):
    """An AVI whose main and stream headers claim ``claimed`` frames for its 40."""
    import av

    path = Path(write_clip(tmp_path / "honest.avi", 40, codec="mpeg4"))
    data = path.read_bytes()
    avih, strh = data.find(b"avih") + 24, data.find(b"strh") + 40  # dwTotalFrames, dwLength
    for at in (avih, strh):
        assert struct.unpack("<I", data[at:at + 4]) == (40,)
        data = data[:at] + struct.pack("<I", claimed) + data[at + 4:]
    lying = tmp_path / "lying.avi"
    lying.write_bytes(data)
    with av.open(str(lying)) as c:
        assert c.streams.video[0].frames == claimed  # the header says so
    mosaic, *local = views(lying, backend, monkeypatch)
    assert tile_indices(mosaic, 4, 4) == frame_indices(40, 16)
    assert [read_index(v) for v in local] == [10, 20, 30]


# --------------------------------------------------------------------------- damage


def _remux(src: str, dst: Path, **options) -> Path:
    import av

    with av.open(src) as i, av.open(str(dst), "w", options=options) as o:
        stream = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(i.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                o.mux(packet)
    return dst


@pytest.mark.parametrize("backend", ["pyav", "decord", "auto"])
@pytest.mark.parametrize("name", ["fast.mp4", "clip.mkv"])
def test_truncated_clip_is_refused_naming_it(tmp_path, name, backend):
    """Beyond the issue: a download cut short. An MP4 with its index first (faststart) lists
    every frame but holds only some; a cut Matroska file just stops. Both used to give
    views spread over the part that survived; now both are refused, whichever backend."""
    import av.logging

    source = write_clip(tmp_path / "source.mp4", 120, gop=8)
    whole = _remux(source, tmp_path / name, **({"movflags": "faststart"} if name.endswith("mp4") else {}))
    data = whole.read_bytes()
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(data[:len(data) * 6 // 10])
    mosaic, *local = load_views(whole, backend=backend, **SMALL)
    assert [read_index(v) for v in local] == [30, 60, 90]  # the whole file is fine
    with pytest.raises(video_decode.VideoDecodeError, match=rf"cut_{name}.*truncated"):
        load_views(cut, backend=backend, **SMALL)
    assert av.logging.get_level() is None and av.logging.get_skip_repeated()  # as PyAV keeps them


@pytest.mark.parametrize("backend", ["pyav", "decord", "auto"])
def test_faststart_mp4_cut_between_two_frames_is_refused(tmp_path, backend):
    """A faststart MP4 cut exactly where a frame's data ends: no packet is incomplete and
    FFmpeg says nothing (the test above cuts at 60% and met this case by chance, with
    one x264 build's output size); the index still lists every frame."""
    import av

    source = write_clip(tmp_path / "source.mp4", 120, gop=8)
    whole = _remux(source, tmp_path / "fast.mp4", movflags="faststart")
    with av.open(str(whole)) as c:
        ends = [p.pos + p.size for p in c.demux(video=0) if p.size]
    assert ends == sorted(ends)  # frames stored in order: a cut after frame 59 keeps 0 .. 59
    cut = tmp_path / "cut_between.mp4"
    cut.write_bytes(whole.read_bytes()[:ends[59]])
    with pytest.raises(video_decode.VideoDecodeError,
                       match=r"cut_between.mp4: damaged or truncated .*index lists 4.80 s.*hold 2.40 s"):
        load_views(cut, backend=backend, **SMALL)


def test_mp4_whose_last_frame_is_held_is_not_called_truncated(tmp_path):
    """The sample-table check above counts each frame's own duration: an MP4 whose last
    frame stays on screen for a second (longer than the frames before) is whole."""
    import av

    source = write_clip(tmp_path / "source.mp4", 40, gop=8)
    held = tmp_path / "held.mp4"
    with av.open(source) as i, av.open(str(held), "w") as o:
        stream = o.add_stream_from_template(i.streams.video[0])
        packets = [p for p in i.demux(i.streams.video[0]) if p.dts is not None]
        last = max(p.pts for p in packets)
        for packet in packets:
            if packet.pts == last:
                packet.duration = 25 * packet.duration  # a second at 25 fps
            packet.stream = stream
            o.mux(packet)
    with av.open(str(held)) as c:  # the table lists 2.56 s; the frames before the last, 1.56 s
        assert abs(float(c.streams.video[0].duration * c.streams.video[0].time_base) - 2.56) < 0.05
    mosaic, *local = load_views(held, backend="pyav", **SMALL)
    assert [read_index(v) for v in local] == [10, 20, 30]
