"""Frames by presentation time in every container we read (issue 21): MP4, MOV, Matroska,
WebM and AVI, with H.264, HEVC, VP9, MPEG-4 Part 2 and MJPEG, whichever backend.

Every clip is the same 2 s at 24 fps (48 frames, each showing its index as stripes,
``test_video.index_frame``), so every view must show the same frames in every container:
the mosaic frames 1, 4, 7, ... 46 and the local views (0.5, 1.0, 1.5 s) frames 12, 24, 36.
Two things used to move them: Matroska and WebM round timestamps to milliseconds (frame 12
starts at 500 ms, after the quarter of the rounded clip, 499.75 ms: the local views came
one frame early), and an AVI stores decode times only (FFmpeg's made-up "presentation"
times of H.264 with B-frames put frames out of order).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from test_video import SMALL, read_index, tile_indices, write_clip
from test_video_display import _patch_mkv_duration, views

from preresq.data import video_decode
from preresq.data.video import ViewSpec, evened, frame_indices, load_views, plan_views
from preresq.data.video_decode import VideoDecodeError, index_clip

FRAMES, RATE = 48, 24
MOSAIC = [1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37, 40, 43, 46]
LOCAL = [12, 24, 36]
X265 = {"crf": "12", "x265-params": "log-level=error"}

# name -> (codec, encoder options, pixel format)
CLIPS = {
    "h264.mp4": ("libx264", None, "yuv420p"),  # B-frames (write_clip's default options)
    "h264.mov": ("libx264", None, "yuv420p"),
    "h264.mkv": ("libx264", None, "yuv420p"),
    "vp9.webm": ("libvpx-vp9", None, "yuv420p"),
    "vp9.mkv": ("libvpx-vp9", None, "yuv420p"),  # how YouTube-UGC ships
    "hevc.mp4": ("libx265", X265, "yuv420p"),
    "hevc.mkv": ("libx265", X265, "yuv420p"),
    "h264.avi": ("libx264", None, "yuv420p"),  # B-frames, decode times only
    "mpeg4.avi": ("mpeg4", {"bf": "2"}, "yuv420p"),  # B-frames shown before their I-frame
    "mjpeg.avi": ("mjpeg", None, "yuvj420p"),  # intra-only: each frame read on its own
}


def available(name: str) -> bool:
    import av

    return CLIPS[name][0] in av.codecs_available


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("containers")
    return {name: write_clip(root / name, FRAMES, gop=12, codec=codec, options=options, rate=RATE,
                             pix_fmt=pix_fmt)
            for name, (codec, options, pix_fmt) in CLIPS.items() if available(name)}


def test_the_expected_frames_are_the_index_rule():
    assert frame_indices(FRAMES, 16) == MOSAIC
    assert plan_views(FRAMES, ViewSpec()).local == LOCAL


@pytest.mark.parametrize("backend", ["pyav", "decord", "fallback"])
@pytest.mark.parametrize("name", list(CLIPS))
def test_every_container_shows_the_same_frames(clips, name, backend, monkeypatch):
    if not available(name):
        pytest.skip(f"{CLIPS[name][0]} encoder not in this PyAV build")
    assert index_clip(clips[name]).num_frames == FRAMES
    mosaic, *local = views(clips[name], backend, monkeypatch)
    assert tile_indices(mosaic, 4, 4) == MOSAIC
    assert [read_index(v) for v in local] == LOCAL


@pytest.mark.parametrize("name", ["vp9.webm", "h264.mkv"])
def test_matroska_timestamps_are_rounded_milliseconds(clips, name):
    """Why Matroska and WebM came out early: frame 12 starts at 500 ms, later than the quarter
    of the clip measured from its rounded timestamps (the last frame, at 1958 ms, lasting
    the 41 ms before it: 1999 ms in all)."""
    if not available(name):
        pytest.skip("encoder missing")
    starts = index_clip(clips[name]).starts
    assert starts[:4] == [0, 42, 83, 125] and starts[12] == 500 and starts[-2:] == [1917, 1958]
    assert 0.25 * (starts[-1] + starts[-1] - starts[-2]) < starts[12]
    assert list(evened(starts)) == list(range(FRAMES))


@pytest.mark.parametrize("backend", ["pyav", "decord", "fallback"])
@pytest.mark.parametrize("name", ["vp9.mkv", "h264.mkv"])
def test_matroska_header_claiming_6_s_for_2_s(clips, tmp_path, name, backend, monkeypatch):
    import av

    if not available(name):
        pytest.skip("encoder missing")
    lying = tmp_path / f"lying_{name}"
    lying.write_bytes(_patch_mkv_duration(Path(clips[name]).read_bytes(), 3.0))
    with av.open(str(lying)) as c:  # the patch took
        assert c.duration == 6_000_000
    mosaic, *local = views(lying, backend, monkeypatch)
    assert tile_indices(mosaic, 4, 4) == MOSAIC
    assert [read_index(v) for v in local] == LOCAL


def trimmed(src: str, dst: Path, frames: int) -> Path:
    """``src`` with its first ``frames`` frames cut by an edit list (as ``ffmpeg -ss ... -c
    copy`` trims an MP4): the packets move that many frames earlier, the muxer starts the
    edit list at 0, and the demuxer marks the packets before it to be decoded, not shown."""
    import av

    with av.open(src) as i, av.open(str(dst), "w") as o:
        stream = o.add_stream_from_template(i.streams.video[0])
        shift = round(frames / RATE / i.streams.video[0].time_base)
        for packet in i.demux(i.streams.video[0]):
            if packet.dts is not None:
                packet.pts, packet.dts, packet.stream = packet.pts - shift, packet.dts - shift, stream
                o.mux(packet)
    return dst


@pytest.mark.parametrize("backend", ["pyav", "auto"])
def test_mp4_trimmed_by_an_edit_list_shows_the_frames_after_its_start(clips, tmp_path, backend):
    """Frames 5 .. 47 are shown; a packet the demuxer marks as discarded (before the edit
    list's start) is no frame of the clip, though decoding starts at it."""
    import av

    path = trimmed(clips["h264.mp4"], tmp_path / "trimmed.mp4", 5)
    with av.open(str(path)) as c:  # the trim took: some packet is decoded but not shown
        assert any(p.is_discard for p in c.demux(video=0))
    with av.open(str(path)) as c:
        shown = [read_index(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    assert shown == list(range(5, FRAMES))
    mosaic, *local = load_views(path, backend=backend, **SMALL)
    assert tile_indices(mosaic, 4, 4) == [5 + i for i in frame_indices(len(shown), 16)]
    assert [read_index(v) for v in local] == [5 + i for i in plan_views(len(shown), ViewSpec()).local]


def test_decord_refuses_a_trimmed_mp4(clips, tmp_path):
    """decord counts the discarded packet as a frame (and shifts the rest): refused, naming
    the file, rather than shown one frame off."""
    path = trimmed(clips["h264.mp4"], tmp_path / "trimmed.mp4", 5)
    with pytest.raises(VideoDecodeError, match=f"{path}.*decord counts 44 frames, the packets 43"):
        load_views(path, backend="decord", **SMALL)


# --------------------------------------------------------------------------- rounding rule

FPS = [Fraction(24000, 1001), 24, 25, Fraction(30000, 1001), 30, 50, Fraction(60000, 1001), 60]


@pytest.mark.parametrize("fps", FPS)
@pytest.mark.parametrize("num_frames", [1, 2, 3, 5, 16, 47, 48, 299, 300, 1001])
@pytest.mark.parametrize("rounding", [round, int])  # to nearest, and truncated
def test_an_even_rate_in_milliseconds_is_sampled_by_the_index_rule(fps, num_frames, rounding):
    spec = ViewSpec(grid=(4, 4), num_local=5, crop_size=(28, 28), crop_position=0.3)
    starts = [rounding(Fraction(1000 * i) / fps) + 7 for i in range(num_frames)]  # a start offset
    assert plan_views(starts, spec) == plan_views(num_frames, spec)


def test_evened_keeps_clips_that_are_not_an_even_rate():
    dropped = [0, 40, 80, 120, 200, 240, 280]  # the frame at 160 ms is missing
    assert evened(dropped) == dropped
    vfr = [10 * i for i in range(30)] + [300 + 100 * i for i in range(10)]
    assert evened(vfr) == vfr
    assert list(evened([0, 33, 67, 100, 133])) == [0, 1, 2, 3, 4]  # 30 fps in ms
    assert evened([0, 33, 69, 100, 133]) == [0, 33, 69, 100, 133]  # 2 ticks off: not rounding
    skipped = [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]  # an AVI (one tick a frame) missing frame 5
    assert evened(skipped) == skipped
    assert list(evened([3, 4, 5, 6])) == [0, 1, 2, 3]


def test_a_view_at_a_rounded_boundary_is_the_index_rules_frame():
    """A quarter of 48 frames in milliseconds: by the rounded timestamps alone the frame on
    screen at 0.25 of [0, 1999] ms would be frame 11 (frame 12 starts at 500 ms)."""
    starts = [round(Fraction(1000 * i, 24)) for i in range(48)]
    assert plan_views(starts, ViewSpec()).local == LOCAL


# --------------------------------------------------------------------------- AVI by decode order


def test_avi_h264_packets_carry_decode_times_only(clips):
    """FFmpeg's "pts" of H.264 in AVI follow decode order: decoded in order, the frames come
    out carrying them out of order, so they cannot name the frame on screen."""
    import av

    with av.open(clips["h264.avi"]) as c:
        pts = [frame.pts for frame in c.decode(c.streams.video[0])]
    assert pts != sorted(pts)
    index = index_clip(clips["h264.avi"])
    assert index.in_decode_order and index.keys == [0] and index.starts == list(range(FRAMES))
    assert not index_clip(clips["h264.mkv"]).in_decode_order


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["h264.avi", "mpeg4.avi", "mjpeg.avi"])
def test_avi_frames_by_number_in_any_order(clips, name, threads):
    if not available(name):
        pytest.skip("encoder missing")
    asked = [40, 3, 17, 17, 47, 0]
    reader = video_decode.PyAVReader(Path(clips[name]), threads)
    try:
        got = [(i, read_index(f)) for i, f in reader.frames(asked)]
    finally:
        reader.close()
    assert got == [(i, i) for i in asked]


def test_intra_only_avi_decodes_only_the_frames_asked(clips):
    if not available("mjpeg.avi"):
        pytest.skip("encoder missing")
    index = index_clip(clips["mjpeg.avi"])
    assert index.keys == list(range(FRAMES))
    reader = video_decode.PyAVReader(Path(clips["mjpeg.avi"]), 1)
    try:
        assert [read_index(f) for _, f in reader.frames([30, 12])] == [30, 12]
        assert reader.frames_decoded == 2
    finally:
        reader.close()


def test_decord_reads_avi_frames_in_sequence(clips):
    """decord's seeking lands on wrong frames in an AVI (it has no timestamps there): its
    reader steps through the clip instead, starting again for an earlier frame."""
    reader = video_decode.DecordReader(Path(clips["h264.avi"]), 1, index_clip(clips["h264.avi"]))
    try:
        assert [(i, read_index(a)) for i, a in reader.frames([5, 30, 30, 2, 47])] == [
            (5, 5), (30, 30), (30, 30), (2, 2), (47, 47)]
    finally:
        reader.close()


def test_avi_first_frame_must_be_a_keyframe(tmp_path):
    """A clip known by decode order can only be counted from a keyframe: one starting
    without one is refused, naming it, rather than numbered from a wrong start."""
    index = video_decode.ClipIndex(starts=list(range(4)), keys=[0], key_dts=[0])
    path = Path(write_clip(tmp_path / "k.avi", 4, codec="mpeg4"))
    reader = video_decode.PyAVReader(path, 1, index)
    try:
        assert [read_index(f) for _, f in reader.frames([2])] == [2]
    finally:
        reader.close()
    moved = video_decode.ClipIndex(starts=list(range(4)), keys=[0], key_dts=[1])  # not a keyframe
    reader = video_decode.PyAVReader(path, 1, moved)
    try:
        with pytest.raises(video_decode.VideoDecodeError, match=f"{path}.*cannot number its frames"):
            list(reader.frames([2]))
    finally:
        reader.close()

