"""A clip's frames as displayed, by index: the frame table, and the decord and PyAV decoders.

**The frame table** (``index_clip``) comes from one PyAV demux pass over the packets, with
nothing decoded: every frame's presentation timestamp (pts, in the stream's time base) and
the keyframes. Frame ``i`` is the ``i``-th smallest timestamp. The header's frame count
and duration are never used, so a clip whose header lies about its length still gives its
real frames, and the views can be chosen by time (``preresq.data.video.plan_views``).
A packet the demuxer marks as discarded (before the start of an MP4's edit list: a
trimmed clip) is no frame, as in a player, though decoding may start at it.

Containers whose packets carry decode times only (AVI; ``DECODE_TIME_FORMATS``), and
packets without a pts: FFmpeg makes up each packet's "pts" from its decode time, which is
not when it is shown once a codec reorders frames (H.264 or HEVC with B-frames in AVI: a
packet's frame is shown up to a few frames later). Their frames are known **by their order
out of the decoder** instead (``ClipIndex.key_dts`` set): the table's times are the decode
times (sorted: an AVI plays one frame per tick), and frame ``n`` is the ``n``-th frame the
decoder returns from the first packet on. Only an intra-only clip (every packet a
keyframe: MJPEG, DV) is read by seeking to each frame's own packet; any other is decoded
from its start up to the last wanted frame, every frame (a skipped one would not be
counted), on one thread: dearer than the same clip with presentation times.

**Decoders** return frame ``i`` as an RGB array turned as a player shows it:

* PyAV (the first choice) seeks to the keyframe before a wanted frame and decodes forward
  (frames nobody asked for with ``skip_frame=NONREF``), stretches from different keyframes
  on different threads, then turns each frame by its own display matrix (``Orientation``).
* decord (the fallback) turns rotated phone clips itself but ignores a matrix's mirror; for
  a mirrored clip its frames are turned back and shown by the matrix PyAV reads from the
  first frame. It is used only when its own frame count equals the table's (else it
  refuses the clip).

**Display matrices** are applied as FFmpeg's players do (``ffmpeg``/``ffplay`` autorotate):
any of the eight quarter-turn and mirror combinations; a matrix turning by an angle that
is not a multiple of 90 degrees is refused, naming the file.
"""

from __future__ import annotations

import bisect
import math
import queue
import struct
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

# How a clip's frames become pixels, recorded in evaluation identities (as
# ``preresq.data.image.DISPLAY_RULES``): predictions made under other rules are not reused.
DISPLAY_RULES = ("frames by presentation time from the packets, even frame rates exact despite "
                 "rounded timestamps, AVI frames by decoder output order; "
                 "display matrix as ffplay (turns, mirrors)")

# FFmpeg demuxers (``container.format.name``) whose packets carry decode times only.
DECODE_TIME_FORMATS = frozenset({"avi"})


class VideoDecodeError(OSError):
    """A video that cannot be opened or decoded; the message names the file.

    An ``OSError``, as Pillow's error for an undecodable image is, so the loaders that name
    the item and label line of a bad image (``preresq.data.rows.item_images``) do so for
    videos too.
    """


@dataclass(frozen=True)
class ClipIndex:
    """Every frame of a clip, from its packets: sorted presentation and keyframe timestamps;
    from ``index_clip``, also its first frame's ``orientation`` (what decord cannot tell; None
    when PyAV decodes no frame of it).

    Frames known by their order out of the decoder (``key_dts`` not None; see the module
    docstring): ``starts`` are the sorted decode times, ``keys`` the frame numbers decoding
    may start from (every frame of an intra-only clip, else the first) and ``key_dts``
    their decode times (where to seek)."""

    starts: list[int]
    keys: list[int]
    orientation: Orientation | None = None
    key_dts: list[int] | None = None

    @property
    def num_frames(self) -> int:
        return len(self.starts)

    @property
    def in_decode_order(self) -> bool:
        return self.key_dts is not None


_LOG_LEVEL_LOCK = threading.Lock()


@contextmanager
def ffmpeg_errors() -> Iterator[list[tuple[int, str, str]]]:
    """The (level, component, message) of every error FFmpeg reports in this thread meanwhile.

    PyAV keeps FFmpeg's log off; it is switched to errors only for the duration (one pass
    over a clip's packets, milliseconds), under a lock so that two threads do not undo each
    other's setting, and put back as it was (so is PyAV's skipping of repeated messages). Errors another thread reports in that window
    reach Python's ``libav.*`` loggers.
    """
    import av.logging

    with _LOG_LEVEL_LOCK:
        before, skip_before = av.logging.get_level(), av.logging.get_skip_repeated()
        if before is None or before < av.logging.ERROR:
            av.logging.set_level(av.logging.ERROR)
        # PyAV drops a message equal to the last one logged, even from an earlier file.
        av.logging.set_skip_repeated(False)
        try:
            with av.logging.Capture(local=True) as logs:
                yield logs
        finally:
            av.logging.set_level(before)
            av.logging.set_skip_repeated(skip_before)


def index_packets(path: Path, container, stream) -> ClipIndex:
    """The frame table of an open PyAV container's video stream (demuxes, decodes nothing).

    Raises ``VideoDecodeError`` for a damaged or truncated file: a packet the demuxer could
    not read whole, or an error it reports (a Matroska file cut short only says so in its
    log: "File ended prematurely"). Such a clip would otherwise show the model only the
    part before the damage, spread over the whole mosaic.
    """
    packets, broken, hidden_keys = [], [], []  # (pts, dts, keyframe) in decode order
    shown_end = -math.inf
    with ffmpeg_errors() as errors:
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's end-of-stream flush packet
                continue
            if packet.pts is None and packet.dts is None:
                raise VideoDecodeError(f"{path}: packets without timestamps; cannot index frames")
            if packet.is_corrupt:
                broken.append(float((packet.pts if packet.pts is not None else packet.dts) * stream.time_base))
            if packet.is_discard:  # before an edit list's start (a trimmed MP4): never shown,
                if packet.is_keyframe and packet.pts is not None:  # but decoding may start there
                    hidden_keys.append(packet.pts)
                continue
            packets.append((packet.pts, packet.dts, packet.is_keyframe))
            if packet.pts is not None:  # where the frames shown end (a last frame may be held)
                shown_end = max(shown_end, packet.pts + (packet.duration or 0))
    if broken or errors:
        said = "; ".join(f"{name}: {message.strip()}" for _, name, message in errors[:3])
        where = f"incomplete packet at {broken[0]:.2f} s" if broken else "the demuxer reports errors"
        raise VideoDecodeError(f"{path}: damaged or truncated file ({where}{': ' + said if said else ''}); "
                               f"{len(packets)} frames readable. Re-download or re-encode it.")
    formats = set(container.format.name.split(","))
    decode_times = formats & DECODE_TIME_FORMATS or any(pts is None for pts, _, _ in packets)
    if not decode_times:
        starts = sorted(pts for pts, _, _ in packets)
        if "mov" in formats:
            _check_sample_table(path, stream, starts, shown_end)
        return ClipIndex(starts=starts, keys=sorted([pts for pts, _, key in packets if key] + hidden_keys))
    if any(dts is None for _, dts, _ in packets):
        raise VideoDecodeError(f"{path}: packets without decode timestamps in a container that "
                               "has no presentation times; cannot index frames")
    # Intra-only (every packet a keyframe): frame n is the n-th packet, decoded on its own.
    # Otherwise a keyframe's place in decode order is not its place on screen once frames
    # are reordered (an MPEG-4 open GOP shows the B-frames decoded after an I-frame before
    # it), so frames are counted from the first packet, the one start that is certain.
    keys = list(range(len(packets))) if all(key for _, _, key in packets) else [0]
    return ClipIndex(starts=sorted(dts for _, dts, _ in packets), keys=keys,
                     key_dts=[packets[number][1] for number in keys])


def _check_sample_table(path: Path, stream, starts: list[int], shown_end: float) -> None:
    """An MP4 or MOV cut short with its index first (``faststart``): the demuxer silently
    stops at the end of the file when the cut falls between two frames (inside one, the
    last packet is marked incomplete). Its sample table, read from the index, still covers
    the whole clip: the packets' frames (each with its duration from the table) must reach
    its end, give or take a frame. (An edit list makes the table's duration what is shown.)"""
    if not starts or not stream.duration:  # a fragmented MP4 has no table duration
        return
    gap = starts[-1] - starts[-2] if len(starts) > 1 else 0
    listed = (stream.start_time or 0) + stream.duration
    if max(shown_end, starts[-1] + gap) + gap + 1 < listed:
        held = float((starts[-1] + gap - starts[0]) * stream.time_base)
        total = float(stream.duration * stream.time_base)
        raise VideoDecodeError(f"{path}: damaged or truncated file (its index lists {total:.2f} s of "
                               f"video, its packets hold {held:.2f} s); {len(starts)} frames readable. "
                               "Re-download or re-encode it.")


def index_clip(path: Path) -> ClipIndex:
    """The frame table of the clip at ``path`` (see the module docstring), with its first
    frame's orientation, read in the same container (one frame decoded)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoDecodeError(f"{path}: no video stream")
        stream = container.streams.video[0]
        index = index_packets(path, container, stream)
        if not index.starts:
            return index
        try:
            container.seek(index.key_dts[0] if index.key_dts else index.starts[0], stream=stream,
                           backward=True, any_frame=False)
            first = next(container.decode(stream), None)
        except av.FFmpegError:  # PyAV cannot decode it (decord may): the matrix stays unread
            return index
        return replace(index, orientation=Orientation.of_frame(first, path) if first else None)


@dataclass(frozen=True)
class Orientation:
    """How a player shows a decoded frame: mirrored left to right first (``mirror``), then
    turned ``quarter`` quarter turns counter-clockwise. The eight values are the eight
    placements of a rectangle (EXIF's eight orientations)."""

    quarter: int = 0
    mirror: bool = False

    @property
    def swaps_sides(self) -> bool:
        return self.quarter % 2 == 1

    @property
    def angle_quarters(self) -> int:
        """The matrix's angle alone in quarter turns (what ``VideoFrame.rotation`` reports
        and decord applies): ``quarter`` less the half turn a mirror adds."""
        return (self.quarter - 2 * self.mirror) % 4

    @classmethod
    def of_matrix(cls, matrix: Sequence[int] | None, path: Path | str = "<clip>") -> Orientation:
        """The orientation an FFmpeg display matrix (``AV_FRAME_DATA_DISPLAYMATRIX``: nine
        int32 ``a b u c d v x y w``, mapping a pixel ``(x, y)`` to ``(a x + c y, b x + d y)``)
        asks for, as ``ffplay`` applies it: the angle is ``av_display_rotation_get``'s
        (``-atan2(b, a)``, columns normalised), mirrored when the 2x2 part's determinant is
        negative; a mirrored matrix's angle then counts from the mirrored frame turned
        upside down (an ``a = -1`` matrix reads -180 degrees and is a plain mirror)."""
        if matrix is None:
            return cls()
        a, b, _, c, d = matrix[:5]
        scale_x, scale_y = math.hypot(a, c), math.hypot(b, d)
        if a * d - b * c == 0 or not scale_x or not scale_y:
            raise VideoDecodeError(f"{path}: its display matrix {list(matrix)} is degenerate")
        angle = -math.degrees(math.atan2(b / scale_y, a / scale_x))
        quarters = round(angle / 90)
        if abs(angle - 90 * quarters) > 1:  # ffplay's tolerance; it would rotate by any angle
            raise VideoDecodeError(f"{path}: its display matrix turns it by {angle:.1f} degrees; "
                                   "only multiples of 90 are shown as displayed")
        mirror = a * d - b * c < 0
        return cls((quarters + 2 * mirror) % 4, mirror)

    @classmethod
    def of_frame(cls, frame, path: Path | str = "<clip>") -> Orientation:
        """A PyAV frame's orientation, from the display matrix it carries (FFmpeg attaches the
        stream's, or the frame's own, e.g. from an H.264 display-orientation message)."""
        from av.sidedata.sidedata import SideDataContainer, Type

        # A container of our own: ``frame.side_data`` caches one on the frame that refers back
        # to it, a cycle that keeps each frame (and its decoder's buffers) alive until Python's
        # cycle collector runs, which tripled the views' peak memory.
        data = SideDataContainer(frame).get(Type.DISPLAYMATRIX)
        return cls.of_matrix(struct.unpack("=9i", bytes(data)) if data is not None else None, path)


def upright(array: np.ndarray, orientation: Orientation) -> np.ndarray:
    """A frame (rows x columns x ...) shown as ``orientation`` asks."""
    if orientation == Orientation():
        return array
    if orientation.mirror:
        array = array[:, ::-1]
    return np.ascontiguousarray(np.rot90(array, orientation.quarter))


class ArrayPicture:
    """A decoded frame held as an upright RGB array; views are resized with Pillow."""

    def __init__(self, array: np.ndarray):
        self._array = array
        self.size = (array.shape[1], array.shape[0])

    def image(self, size: tuple[int, int] | None = None):
        from PIL import Image

        frame = Image.fromarray(self._array)
        if size is None or size == frame.size:
            return frame
        # reducing_gap: box-reduce first, then bicubic; much faster on big frames, same look.
        return frame.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


_LOCAL = threading.local()


def _reformatters() -> dict:
    """This thread's swscale contexts by output size and method, kept from clip to clip:
    setting one up costs about as much as using it (1-2 ms at view sizes)."""
    cache = getattr(_LOCAL, "reformatters", None)
    if cache is None or len(cache) > 32:  # clips of many shapes: start again
        cache = _LOCAL.reformatters = {}
    return cache


class AVPicture:
    """A decoded PyAV frame, converted to RGB only at the size a view needs.

    Scaling happens inside the colour conversion (swscale): area averaging when a side
    shrinks at least twofold (a mosaic tile), bicubic otherwise; converting the whole frame
    and resizing it with Pillow cost about five times as much. The frame is then turned
    upright by its display matrix (``Orientation``).
    """

    def __init__(self, frame, reformatters: dict, orientation: Orientation):
        self._frame = frame
        self._orientation = orientation
        w, h = frame.width, frame.height
        self.size = (h, w) if orientation.swaps_sides else (w, h)
        self._reformatters = reformatters  # one swscale context per output size (_reformatters)

    def image(self, size: tuple[int, int] | None = None):
        from av.video.reformatter import VideoReformatter
        from PIL import Image

        if size is None or size == self.size:
            array = self._frame.to_ndarray(format="rgb24")
        else:
            w, h = size[::-1] if self._orientation.swaps_sides else size
            shrink = min(self._frame.width / w, self._frame.height / h)
            method = "AREA" if shrink >= 2 else "BICUBIC"
            reformatter = self._reformatters.setdefault((w, h, method), VideoReformatter())
            array = reformatter.reformat(self._frame, w, h, "rgb24", interpolation=method).to_ndarray()
        return Image.fromarray(upright(array, self._orientation))


class DecordReader:
    """Frames by index through decord: seek to the keyframe, decode forward, turned upright.

    decord turns each frame by its display matrix's angle but ignores the matrix's mirror.
    For a mirrored clip (``index.orientation``, from ``index_clip``) decord's turn is undone
    and the frame shown as the matrix asks; with no orientation read, decord's turn stands.

    In a clip whose frames are known by decode order (AVI) decord's seeking (by index or
    ``skip_frames``) lands on wrong frames, as its timestamps are unset there: its frames
    are read one after another from the start instead (every frame decoded).
    """

    def __init__(self, path: Path, num_threads: int, index: ClipIndex):
        import decord

        self._vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=num_threads)
        if len(self._vr) != index.num_frames:
            # decord's count comes from its own index; frames by index would not match.
            raise decord.DECORDError(f"decord counts {len(self._vr)} frames, the packets "
                                     f"{index.num_frames}")
        self.index = index
        self.num_frames = index.num_frames
        mirrored = index.orientation is not None and index.orientation.mirror
        self._mirror = index.orientation if mirrored else None
        self._next = 0  # in decode-order clips: the frame the next ``next()`` returns

    def _frame(self, index: int):
        if not self.index.in_decode_order:
            return self._vr[index]
        if index < self._next:
            self._vr.seek(0)  # the start is the one place decord seeks to exactly there
            self._next = 0
        while self._next < index:
            self._vr.next()
            self._next += 1
        self._next += 1
        return self._vr.next()

    def frames(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index in indices:
            array = self._frame(index).asnumpy()
            if self._mirror is not None:  # decord turned it by the angle alone
                array = upright(np.rot90(array, -self._mirror.angle_quarters), self._mirror)
            yield index, array

    def pictures(self, indices: Sequence[int]) -> Iterator[tuple[int, ArrayPicture]]:
        for index, array in self.frames(indices):
            yield index, ArrayPicture(array)

    def close(self) -> None:
        self._vr = None


class _PyAVStream:
    """One open container of a clip and its video stream: one decoder, used by one thread."""

    def __init__(self, path: Path):
        import av

        self.path = path
        self.decoded_pts: list[int] = []  # every frame this decoder returned (what seeking saves)
        self.container = av.open(str(path))
        try:
            if not self.container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            self.stream = self.container.streams.video[0]
            # One thread per decoder: a clip's threads decode different runs (PyAVReader);
            # FFmpeg's default slice threading gains nothing on one-slice streams (x264's).
            self.stream.codec_context.thread_count = 1
        except BaseException:
            self.container.close()
            raise

    def run_frames(self, run: Sequence[int], key: int) -> Iterator[tuple[int, object]]:
        """The frames of one run (see ``PyAVReader``) as they are decoded, ``(pts, frame)`` in
        presentation order: seek to the keyframe at ``key``, feed packets until every target's
        packet is in, then drain the decoder.

        Packets of frames nobody asked for are decoded with ``skip_frame=NONREF``: a frame
        no other frame refers to (most B-frames) is then not decoded at all, about half the
        work on an x264 clip. Draining instead of feeding on until the decoder lets the last
        target out saves the frames after it (its reorder delay, about two packets).
        """
        self.container.seek(key, stream=self.stream, backward=True, any_frame=False)
        codec = self.stream.codec_context
        wanted, missing = set(run), set(run)

        def kept(frames) -> Iterator[tuple[int, object]]:
            if any(frame.pts is None for frame in frames):
                raise VideoDecodeError(f"{self.path}: decoded a frame without timestamp")
            self.decoded_pts.extend(frame.pts for frame in frames)
            return ((frame.pts, frame) for frame in frames if frame.pts in wanted)

        for packet in self.container.demux(self.stream):
            if packet.pts is not None:
                missing.discard(packet.pts)
                codec.skip_frame = "DEFAULT" if packet.pts in wanted else "NONREF"
            yield from kept(codec.decode(packet))  # the empty packet at the stream's end drains it
            if not missing:
                codec.skip_frame = "DEFAULT"
                yield from kept(codec.decode(None))
                return

    def run_frames_in_order(self, run: Sequence[int], key: int, key_dts: int
                            ) -> Iterator[tuple[int, object]]:
        """The frames of one run of a clip known by decode order (``ClipIndex.key_dts``),
        ``(frame number, frame)``: seek to the keyframe numbered ``key`` (decode time
        ``key_dts``), then the ``n``-th frame out of the decoder is frame ``key + n``.

        Every packet is decoded (a skipped frame would not be counted). The seek must land on
        that keyframe and the decoder's first frame must be the keyframe's (it carries the
        packet's pts); anything else would shift every frame number, so it is an error.
        """
        self.container.seek(key_dts, stream=self.stream, backward=True, any_frame=False)
        codec = self.stream.codec_context
        codec.skip_frame = "DEFAULT"
        wanted, number, key_pts = set(run), key, None
        for packet in self.container.demux(self.stream):
            if key_pts is None:
                if packet.dts != key_dts or not packet.is_keyframe:
                    raise VideoDecodeError(f"{self.path}: seeking to the keyframe at decode time "
                                           f"{key_dts} landed at {packet.dts}; cannot number its frames")
                key_pts = packet.pts
            for frame in codec.decode(packet):  # the empty packet at the stream's end drains it
                if number == key and frame.pts != key_pts:
                    raise VideoDecodeError(f"{self.path}: the decoder's first frame after the keyframe "
                                           f"at decode time {key_dts} is not that keyframe's")
                self.decoded_pts.append(number)
                if number in wanted:
                    yield number, frame
                number += 1
                if number > run[-1]:
                    return

    def close(self) -> None:
        self.container.close()


class PyAVReader:
    """Frames by index through PyAV (``backend: pyav``, the first choice under ``auto``).

    The wanted frames are cut into runs (``runs``): a run starts at the keyframe before its
    first frame, and goes on while no keyframe lies before its next frame. Runs are
    independent, so up to ``num_threads`` of them decode at once, each thread with its own
    container and decoder (PyAV lets go of the GIL while FFmpeg decodes); frames come out in
    the order asked, at most one run per thread held ahead.
    """

    def __init__(self, path: Path, num_threads: int, index: ClipIndex | None = None):
        self._path = path
        self._num_threads = max(1, int(num_threads))
        self._streams = [_PyAVStream(path)]
        self._decoding: set = set()  # the decoding in progress (_on_threads), stopped by close()
        try:
            first = self._streams[0]
            self.index = index or index_packets(path, first.container, first.stream)
        except BaseException:
            self.close()
            raise
        # What runs are cut in: timestamps, or frame numbers in a clip known by decode order.
        self._pts = range(self.index.num_frames) if self.index.in_decode_order else self.index.starts
        self._keys = self.index.keys
        self.num_frames = self.index.num_frames

    @property
    def frames_decoded(self) -> int:
        """Frames the decoders returned so far, over all threads."""
        return sum(len(s.decoded_pts) for s in self._streams)

    def runs(self, targets: Sequence[int]) -> list[list[int]]:
        """The targets (timestamps, in the order asked) cut into runs decoded in one pass: a run
        goes on while each next target lies ahead with no keyframe before it, so reaching it
        from the keyframe before it (a seek) never costs more than decoding on."""
        runs: list[list[int]] = []
        for target in targets:
            run = runs[-1] if runs else None
            if run is None or target <= run[-1] or (bisect.bisect_right(self._keys, target) >
                                                    bisect.bisect_right(self._keys, run[-1])):
                runs.append([target])
            else:
                run.append(target)
        return runs

    def _run_frames(self, stream: _PyAVStream, run: list[int]) -> Iterator[tuple[int, object]]:
        """One run's ``(pts or frame number, frame)``, decoded from the keyframe before it."""
        k = bisect.bisect_right(self._keys, run[0]) - 1
        if not self.index.in_decode_order:
            return stream.run_frames(run, self._keys[k] if k >= 0 else self._pts[0])
        if k < 0:
            raise VideoDecodeError(f"{self._path}: no keyframe before frame {run[0]}")
        return stream.run_frames_in_order(run, self._keys[k], self.index.key_dts[k])

    def decoded(self, indices: Sequence[int]) -> Iterator[tuple[int, object]]:
        """The wanted frames as PyAV ``VideoFrame``s, not converted (what the benchmark's floor
        measures), in the order asked. With threads, each frame is handed over as soon as
        it is decoded, so the caller converts it while the decoders go on."""
        targets = [self._pts[i] for i in indices]
        index_of = dict(zip(targets, indices, strict=True))
        runs = self.runs(targets)
        threads = min(self._num_threads, len(runs))
        if threads <= 1:
            produced = ((run, self._run_frames(self._streams[0], run)) for run in runs)
        else:
            produced = self._on_threads(runs, threads)
        try:
            for run, frames in produced:
                # A run's targets ascend and frames come out in presentation order: any gap is a
                # frame the decoder never produced.
                for target in run:
                    pts, frame = next(frames, (None, None))
                    if pts != target:
                        raise VideoDecodeError(f"{self._path}: frame {index_of[target]} ("
                                               f"{'number' if self.index.in_decode_order else 'pts'} "
                                               f"{target}) not produced by the decoder")
                    yield index_of[target], frame
        finally:  # on an error or a caller that stops early: no decoder thread left running
            produced.close()

    def _on_threads(self, runs: list[list[int]], threads: int) -> Iterator[tuple[list[int], Iterator]]:
        """Each run with the iterator of its ``(pts, frame)``, decoded on ``threads`` threads;
        at most one run per thread is decoded ahead of the one being read."""
        free: queue.SimpleQueue = queue.SimpleQueue()
        for stream in self._streams:
            free.put(stream)
        end = object()
        stop = threading.Event()  # set when the frames are no longer read

        def work(run: list[int], out: queue.SimpleQueue) -> None:
            stream = None
            try:
                if stop.is_set():
                    return
                try:
                    stream = free.get_nowait()
                except queue.Empty:  # opened here, so the first run does not wait for it
                    stream = _PyAVStream(self._path)
                    self._streams.append(stream)  # at most `threads`: one per run decoding at once
                for item in self._run_frames(stream, run):
                    if stop.is_set():
                        return
                    out.put(item)
                out.put(end)
            except BaseException as e:  # raised again where the frames are read
                out.put(e)
            finally:
                if stream is not None:
                    free.put(stream)

        def received(out: queue.SimpleQueue) -> Iterator:
            while (item := out.get()) is not end:
                if isinstance(item, BaseException):
                    raise item
                yield item

        pool = ThreadPoolExecutor(threads, thread_name_prefix="pyav")

        def halt() -> None:
            # Closing a container while a thread seeks or decodes in it crashes FFmpeg (a
            # segfault, not an exception), so the threads are stopped and waited for first.
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

        self._decoding.add(halt)
        try:
            pending: deque = deque()
            for run in runs:
                out: queue.SimpleQueue = queue.SimpleQueue()
                pool.submit(work, run, out)
                pending.append((run, out))
                if len(pending) > threads:
                    done, out = pending.popleft()
                    yield done, received(out)
            while pending:
                done, out = pending.popleft()
                yield done, received(out)
        finally:
            halt()
            self._decoding.discard(halt)

    def frames(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index, frame in self.decoded(indices):
            yield index, upright(frame.to_ndarray(format="rgb24"), Orientation.of_frame(frame, self._path))

    def pictures(self, indices: Sequence[int]) -> Iterator[tuple[int, AVPicture]]:
        reformatters = _reformatters()
        for index, frame in self.decoded(indices):
            yield index, AVPicture(frame, reformatters, Orientation.of_frame(frame, self._path))

    def close(self) -> None:
        for halt in list(self._decoding):  # frames still being read: stop their threads first
            halt()
        for stream in self._streams:
            stream.close()
