"""A clip's frames as displayed, by index: the frame table, and the decord and PyAV decoders.

**The frame table** (``index_clip``) comes from one PyAV demux pass over the packets, with
nothing decoded: every frame's presentation timestamp (pts, in the stream's time base) and
the keyframes. Frame ``i`` is the ``i``-th smallest timestamp. The header's frame count
and duration are never used, so a clip whose header lies about its length still gives its
real frames, and the views can be chosen by time (``preresq.data.video.plan_views``).

**Decoders** return frame ``i`` as an RGB array turned as a player shows it:

* decord (the default) applies the display matrix of rotated phone clips itself; it is
  used only when its own frame count equals the table's (else PyAV decodes the clip).
* PyAV seeks to the keyframe before a wanted frame and decodes forward (frames nobody
  asked for with ``skip_frame=NONREF``), then turns the frame by its display-matrix
  rotation (``VideoFrame.rotation``, a multiple of 90 degrees counter-clockwise).

Mirrored display matrices (rare) are not applied by either decoder.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class VideoDecodeError(OSError):
    """A video that cannot be opened or decoded; the message names the file.

    An ``OSError``, as Pillow's error for an undecodable image is, so the loaders that name
    the item and label line of a bad image (``preresq.data.rows.item_images``) do so for
    videos too.
    """


@dataclass(frozen=True)
class ClipIndex:
    """Every frame of a clip, from its packets: sorted presentation and keyframe timestamps."""

    starts: list[int]
    keys: list[int]

    @property
    def num_frames(self) -> int:
        return len(self.starts)


def index_packets(path: Path, container, stream) -> ClipIndex:
    """The frame table of an open PyAV container's video stream (demuxes, decodes nothing)."""
    pts, keys = [], []
    for packet in container.demux(stream):
        if packet.size == 0:  # the demuxer's end-of-stream flush packet
            continue
        if packet.pts is None:
            raise VideoDecodeError(f"{path}: packets without timestamps; cannot index frames")
        pts.append(packet.pts)
        if packet.is_keyframe:
            keys.append(packet.pts)
    return ClipIndex(starts=sorted(pts), keys=sorted(keys))


def index_clip(path: Path) -> ClipIndex:
    """The frame table of the clip at ``path`` (see the module docstring)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoDecodeError(f"{path}: no video stream")
        return index_packets(path, container, container.streams.video[0])


def upright(array: np.ndarray, rotation: int) -> np.ndarray:
    """A frame turned by a display-matrix rotation (degrees counter-clockwise, as FFmpeg's
    ``av_display_rotation_get`` and PyAV's ``VideoFrame.rotation`` give it)."""
    quarter = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(array, quarter)) if quarter else array


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


class AVPicture:
    """A decoded PyAV frame, converted to RGB only at the size a view needs.

    Scaling happens inside the colour conversion (swscale): area averaging when a side
    shrinks at least twofold (a mosaic tile), bicubic otherwise; converting the whole frame
    and resizing it with Pillow cost about five times as much. The frame is then turned
    upright by its display-matrix rotation.
    """

    def __init__(self, frame, reformatters: dict):
        self._frame = frame
        self._quarter = round(frame.rotation / 90) % 4
        w, h = frame.width, frame.height
        self.size = (h, w) if self._quarter % 2 else (w, h)
        self._reformatters = reformatters  # one swscale context per output size, reused

    def image(self, size: tuple[int, int] | None = None):
        from av.video.reformatter import VideoReformatter
        from PIL import Image

        if size is None or size == self.size:
            array = self._frame.to_ndarray(format="rgb24")
        else:
            w, h = size[::-1] if self._quarter % 2 else size
            shrink = min(self._frame.width / w, self._frame.height / h)
            method = "AREA" if shrink >= 2 else "BICUBIC"
            reformatter = self._reformatters.setdefault((w, h, method), VideoReformatter())
            array = reformatter.reformat(self._frame, w, h, "rgb24", interpolation=method).to_ndarray()
        return Image.fromarray(upright(array, 90 * self._quarter))


class DecordReader:
    """Frames by index through decord: seek to the keyframe, decode forward (turned upright)."""

    def __init__(self, path: Path, num_threads: int, index: ClipIndex):
        import decord

        self._vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=num_threads)
        if len(self._vr) != index.num_frames:
            # decord's count comes from its own index; frames by index would not match.
            raise decord.DECORDError(f"decord counts {len(self._vr)} frames, the packets "
                                     f"{index.num_frames}")
        self.index = index
        self.num_frames = index.num_frames

    def frames(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index in indices:
            yield index, self._vr[index].asnumpy()

    def pictures(self, indices: Sequence[int]) -> Iterator[tuple[int, ArrayPicture]]:
        for index, array in self.frames(indices):
            yield index, ArrayPicture(array)

    def close(self) -> None:
        self._vr = None


class PyAVReader:
    """Frames by index through PyAV (the fallback, or ``backend: pyav``).

    A needed frame is reached by seeking to the keyframe before it and decoding forward,
    or by decoding on when no keyframe lies between the last frame returned and it.
    """

    def __init__(self, path: Path, num_threads: int, index: ClipIndex | None = None):
        import av

        self._path = path
        self.frames_decoded = 0  # frames the decoder returned so far (what seeking saves)
        self._fed = -math.inf
        self._container = av.open(str(path))
        try:
            if not self._container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            self._stream = self._container.streams.video[0]
            self._stream.codec_context.thread_count = num_threads
            self.index = index or index_packets(path, self._container, self._stream)
        except BaseException:
            self._container.close()
            raise
        self._pts, self._keys = self.index.starts, self.index.keys
        self.num_frames = self.index.num_frames

    def _decode_from(self, key: int, wanted: set[int]) -> Iterator:
        """Frames in presentation order from the keyframe at timestamp ``key`` on.

        Packets of frames nobody asked for are decoded with ``skip_frame=NONREF``: a frame
        no other frame refers to (most B-frames) is then not decoded at all, about half the
        work on an x264 clip. Wanted frames' packets are decoded in full.
        """
        self._container.seek(key, stream=self._stream, backward=True, any_frame=False)
        codec = self._stream.codec_context
        self._fed = -math.inf  # the largest timestamp sent to the decoder since the seek
        for packet in self._container.demux(self._stream):
            if packet.pts is not None:
                self._fed = max(self._fed, packet.pts)
                codec.skip_frame = "DEFAULT" if packet.pts in wanted else "NONREF"
            decoded = codec.decode(packet)  # the empty packet at the end drains the decoder
            self.frames_decoded += len(decoded)
            yield from decoded

    def decoded(self, indices: Sequence[int]) -> Iterator[tuple[int, object]]:
        """The wanted frames as PyAV ``VideoFrame``s, not converted (what the benchmark's floor
        measures)."""
        wanted = {self._pts[i] for i in indices}
        decoded = None   # the running decoder (a generator), or None before the first seek
        last_out = None  # the timestamp of the last frame it returned
        for index in indices:
            target = self._pts[index]
            k = bisect.bisect_right(self._keys, target) - 1
            key = self._keys[k] if k >= 0 else self._pts[0]
            # Seek when a keyframe lies ahead of what was decoded, or to go back.
            if decoded is None or key > self._fed or (last_out is not None and target <= last_out):
                decoded, last_out = self._decode_from(key, wanted), None
            for frame in decoded:  # leaving the loop early keeps the generator where it is
                if frame.pts is None:
                    raise VideoDecodeError(f"{self._path}: decoded a frame without timestamp")
                last_out = frame.pts
                if frame.pts == target:
                    yield index, frame
                    break
                if frame.pts > target:
                    raise VideoDecodeError(f"{self._path}: frame {index} (pts {target}) not produced "
                                           f"by the decoder (got pts {frame.pts})")
            else:
                raise VideoDecodeError(f"{self._path}: stream ended before frame {index} (pts {target})")

    def frames(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index, frame in self.decoded(indices):
            yield index, upright(frame.to_ndarray(format="rgb24"), frame.rotation)

    def pictures(self, indices: Sequence[int]) -> Iterator[tuple[int, AVPicture]]:
        reformatters: dict = {}
        for index, frame in self.decoded(indices):
            yield index, AVPicture(frame, reformatters)

    def close(self) -> None:
        self._container.close()
