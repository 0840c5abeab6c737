"""Turn a video file into the few images the model sees: a global mosaic and local frames.

PreResQ-R1 shows a video as images (PAPER_NOTES, "Video data flow"): one **global
multi-frame mosaic** for temporal and scene judgement, then a few **local frames** (whole
single frames at far more pixels than a mosaic tile) for spatial artefacts, and optionally a
**centre crop** at native resolution. The released code reads pre-extracted PNGs; here the
views are decoded on demand, reading only the frames they need.

Which frames (the rule is ours; the pure functions below implement it). Frames are chosen
by **presentation time**, so a variable-frame-rate clip is sampled evenly in time:

* A clip covers the time from its first frame's timestamp ``t0`` to the end of its last
  frame, ``length`` later; frame ``i`` is on screen from its timestamp until the next one,
  and the last frame lasts as long as the one before it (containers disagree on that one
  duration; headers are not read). Position ``p`` (``0 <= p <= 1``) is the time
  ``t0 + p * length``, and the frame *at* ``p`` is the one on screen then. With a constant
  frame rate this is frame ``min(N - 1, floor(p * N))`` of ``N``.
* Timestamps are whole ticks of the stream's time base, which rounds them: Matroska and
  WebM count milliseconds, so 24 fps frames start at 0, 42, 83, 125, ... ms and frame 12
  at 500 ms, after the quarter of a clip measured from rounded ends (499.75 ms). A clip
  whose timestamps are an even frame rate to within one tick (``evened``: what rounding
  or truncating exact times gives) is therefore taken as exactly even, and sampled by the
  index rule above, in every container alike; any other clip by its timestamps.
* Mosaic: cut the clip into ``count = rows * cols`` equal spans of time and take the frame
  at the centre of each, ``p_i = (i + 1/2) / count`` (exact arithmetic on the timestamps;
  with a constant frame rate frame ``floor((2i + 1) * N / (2 * count))``). Tiles go in
  time order, left to right then top to bottom. With ``N < count`` frames repeat evenly
  (a 5-frame clip in a 4x4 grid shows frames 0,0,0,1,1,1,2,2,2,2,3,3,3,4,4,4).
* Local frames: the frames at ``local_positions``; by default ``num_local`` positions
  spread evenly, ``(j + 1) / (num_local + 1)`` (0.25, 0.5, 0.75 for three).
* Crop: the centre ``size`` pixels of the frame at ``crop.position`` (default 0.5), not
  resized.

Sizes follow the Qwen2-VL resizing rule (``fit_size``): multiples of ``factor`` (28, one
merged visual token), aspect ratio kept, area within the budget, never enlarged beyond
rounding. Each mosaic tile gets ``mosaic_max_pixels / (rows * cols)``; each local frame
``local_max_pixels``.

Frames are shown as a player shows them: rotated phone clips upright, whichever backend
(``preresq.data.video_decode``). The frame table (timestamps, keyframes) comes from one
pass over the packets, never from the header. PyAV decodes by default: it seeks to the
keyframe before each needed frame, decodes forward without decoding the frames nothing
refers to, and converts each needed frame to RGB at the size of its view. Stretches that
start at different keyframes decode at once on ``num_threads`` threads (default 2), each
with its own decoder; frames are dropped once their views are made, so memory holds a few
frames per thread plus the small views. When
PyAV cannot open or read a file, decord (seek by index, then Pillow resizing) does the
same job; it is also used when asked (``backend: decord``).
"""

from __future__ import annotations

import bisect
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PIL import Image

from preresq.data import video_decode
from preresq.data.image import check_shape
from preresq.data.video_decode import VideoDecodeError

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "decord", "pyav")


# ----------------------------------------------------------------------------- frame rules

def frame_at(num_frames: int, position: float) -> int:
    """Index of the frame on screen at ``position`` (0..1) of a clip of ``num_frames``."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not 0.0 <= position <= 1.0:
        raise ValueError(f"position must be in [0, 1], got {position}")
    # The epsilon keeps decimal positions exact (0.29 * 100 is 28.999... in binary).
    return min(num_frames - 1, math.floor(position * num_frames + 1e-9))


def frame_indices(num_frames: int, count: int) -> list[int]:
    """Frames at the centres of ``count`` equal spans of the clip, in time order.

    Frame ``floor((2i + 1) * num_frames / (2 * count))`` for ``i = 0 .. count-1``; when the
    clip has fewer frames than ``count``, frames repeat evenly instead of failing.

    >>> frame_indices(300, 4)
    [37, 112, 187, 262]
    >>> frame_indices(5, 8)
    [0, 0, 1, 1, 2, 3, 3, 4]
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    return [(2 * i + 1) * num_frames // (2 * count) for i in range(count)]


def even_positions(count: int) -> list[float]:
    """``count`` positions spread evenly inside the clip: ``(j + 1) / (count + 1)``."""
    return [(j + 1) / (count + 1) for j in range(count)]


def evened(starts: Sequence[int]) -> Sequence[int]:
    """The frames' timestamps as their frame rate meant them: ``range(N)`` when the sorted
    timestamps ``starts`` are an even frame rate rounded to whole ticks, else ``starts``.

    Even means every timestamp lies within one tick of the straight line from the first to
    the last: exact times ``a + i * d`` rounded (or truncated) to ticks are off by under one
    tick each, so by at most one from the line through the rounded ends. Where a frame
    lasts under four ticks (an AVI's time base is its frame rate) the line must be exact. A clip sampled
    from its rounded timestamps would get the frame before the one the index rule gives
    wherever a view falls on a frame boundary (a quarter of 48 frames is frame 12).

    >>> list(evened([0, 42, 83, 125, 167, 208]))  # 24 fps in milliseconds
    [0, 1, 2, 3, 4, 5]
    >>> evened([0, 40, 80, 200, 240])  # a frame dropped: kept as timed
    [0, 40, 80, 200, 240]
    """
    n = len(starts)
    if n < 3:
        return range(n)
    span = starts[-1] - starts[0]
    if span <= 0:
        return starts
    # Rounding moves a frame by at most one tick, under a quarter of a frame here; where a
    # frame lasts only a few ticks (an AVI counts in frames) nothing was rounded: exact.
    ticks = 1 if span >= 4 * (n - 1) else 0
    if all(abs((starts[i] - starts[0]) * (n - 1) - i * span) <= ticks * (n - 1) for i in range(1, n - 1)):
        return range(n)
    return starts


def clip_span(starts: Sequence[int]) -> tuple[int, int]:
    """``(t0, length)`` of a clip whose frames start at the sorted timestamps ``starts``:
    from the first frame to the end of the last, which lasts as long as the one before it."""
    if not starts:
        raise ValueError("a clip needs at least one frame")
    last_gap = starts[-1] - starts[-2] if len(starts) > 1 else 0
    return starts[0], max(1, starts[-1] - starts[0] + last_gap)


def frame_at_time(starts: Sequence[int], position: float) -> int:
    """Index of the frame on screen at ``position`` (0..1) of the clip's time span."""
    if not 0.0 <= position <= 1.0:
        raise ValueError(f"position must be in [0, 1], got {position}")
    t0, length = clip_span(starts)
    # The epsilon keeps decimal positions exact (0.29 * 100 is 28.999... in binary).
    t = t0 + position * length + 1e-9 * length
    return max(0, min(len(starts) - 1, bisect.bisect_right(starts, t) - 1))


def frames_at_span_centres(starts: Sequence[int], count: int) -> list[int]:
    """The frames on screen at the centres of ``count`` equal spans of the clip's time
    (exact: the centres are fractions of the integer timestamps)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    t0, length = clip_span(starts)
    return [max(0, bisect.bisect_right(starts, t0 + Fraction((2 * i + 1) * length, 2 * count)) - 1)
            for i in range(count)]


def fit_size(width: int, height: int, max_pixels: int, factor: int = 28) -> tuple[int, int]:
    """``(width, height)`` for a view: multiples of ``factor``, area <= ``max_pixels``.

    Qwen2-VL's ``smart_resize`` rule without its enlargement to ``min_pixels``: round each
    side to the nearest multiple of ``factor``; if that is over budget, scale both sides by
    ``sqrt(width * height / max_pixels)`` and round down. Never below ``factor``.
    """
    if width < 1 or height < 1:
        raise ValueError(f"bad frame size {width}x{height}")
    if max_pixels < factor * factor:
        raise ValueError(f"max_pixels {max_pixels} is below one {factor}x{factor} block")
    w = max(factor, round(width / factor) * factor)
    h = max(factor, round(height / factor) * factor)
    if w * h > max_pixels:
        beta = math.sqrt(width * height / max_pixels)
        w = max(factor, math.floor(width / beta / factor) * factor)
        h = max(factor, math.floor(height / beta / factor) * factor)
    return w, h


# ----------------------------------------------------------------------------- settings

def default_config() -> dict:
    """The settings of ``configs/video/default.yaml`` as a plain dict (for scripts, tests)."""
    from omegaconf import OmegaConf

    from preresq.paths import CONFIG_DIR

    return OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "video" / "default.yaml"))


@dataclass(frozen=True)
class ViewSpec:
    """The view settings of ``configs/video/default.yaml``, checked once."""

    grid: tuple[int, int] | None = (4, 4)  # None: no mosaic (local frames only)
    num_local: int = 3
    local_positions: tuple[float, ...] | None = None
    mosaic_max_pixels: int = 802_816
    local_max_pixels: int = 401_408
    factor: int = 28
    crop_size: tuple[int, int] | None = None
    crop_position: float = 0.5
    backend: str = "auto"
    num_threads: int = 2

    @classmethod
    def from_cfg(cls, **cfg) -> ViewSpec:
        """Build from config keys (a DictConfig or plain values); unknown keys are errors."""
        known = {"grid", "num_local", "local_positions", "mosaic_max_pixels",
                 "local_max_pixels", "factor", "crop", "backend", "num_threads"}
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"unknown video view settings {sorted(unknown)}; known: {sorted(known)}")
        kw: dict = {k: int(cfg[k]) for k in ("num_local", "mosaic_max_pixels", "local_max_pixels",
                                             "factor", "num_threads") if cfg.get(k) is not None}
        if cfg.get("backend") is not None:
            kw["backend"] = str(cfg["backend"])
        if "grid" in cfg:  # an explicit null: no mosaic
            grid = cfg["grid"]
            kw["grid"] = None if grid is None else (int(grid), int(grid)) if isinstance(grid, int) \
                else tuple(int(g) for g in grid)
        num_local = int(kw.get("num_local", cls.num_local))
        if cfg.get("local_positions") is not None:
            positions = tuple(float(p) for p in cfg["local_positions"])
            if "num_local" in cfg and len(positions) != num_local:
                raise ValueError(f"local_positions has {len(positions)} entries but num_local is {num_local}")
            kw["local_positions"] = positions
            kw["num_local"] = len(positions)
        crop = cfg.get("crop")
        if crop is not None:
            if not isinstance(crop, Mapping) or "size" not in crop:
                raise ValueError(f"crop must be null or {{size: int | [w, h], position: float}}, got {crop!r}")
            size = crop["size"]
            kw["crop_size"] = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
            kw["crop_position"] = float(crop.get("position", 0.5))
            extra = set(crop) - {"size", "position"}
            if extra:
                raise ValueError(f"unknown crop settings {sorted(extra)}")
        spec = cls(**kw)
        spec.check()
        return spec

    def check(self) -> None:
        if self.grid is not None and (len(self.grid) != 2 or min(self.grid) < 1):
            raise ValueError(f"grid must be [rows, cols] >= 1 or null (no mosaic), got {self.grid}")
        if self.grid is None and self.num_local == 0 and self.crop_size is None:
            raise ValueError("no views: grid is null (no mosaic), num_local is 0 and no crop")
        if self.num_local < 0:
            raise ValueError(f"num_local must be >= 0, got {self.num_local}")
        for p in self.positions():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"local position {p} outside [0, 1]")
        if not 0.0 <= self.crop_position <= 1.0:
            raise ValueError(f"crop position {self.crop_position} outside [0, 1]")
        if self.crop_size is not None and (len(self.crop_size) != 2 or min(self.crop_size) < 1):
            raise ValueError(f"crop size must be an int or [w, h] >= 1, got {self.crop_size}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")
        for name in ("mosaic_max_pixels", "local_max_pixels"):
            if getattr(self, name) < self.factor * self.factor:
                raise ValueError(f"{name} {getattr(self, name)} is below one {self.factor}x{self.factor} block")

    def positions(self) -> list[float]:
        return list(self.local_positions) if self.local_positions is not None \
            else even_positions(self.num_local)


@dataclass(frozen=True)
class ViewPlan:
    """Which frame each view comes from (indices into the clip)."""

    mosaic: list[int]
    local: list[int]
    crop: int | None

    def needed(self) -> list[int]:
        """The distinct frames to decode, in order."""
        extra = [] if self.crop is None else [self.crop]
        return sorted(set(self.mosaic) | set(self.local) | set(extra))


def plan_views(starts: Sequence[int] | int, spec: ViewSpec) -> ViewPlan:
    """The frame of every view of a clip (a pure function), by presentation time.

    ``starts`` are the frames' sorted timestamps (``video_decode.index_clip``; an even
    frame rate's, rounded to ticks, count as exactly even: ``evened``), or a frame count for
    a constant frame rate (the same as timestamps ``0 .. N-1``).
    """
    if isinstance(starts, int):
        if starts < 1:
            raise ValueError(f"num_frames must be >= 1, got {starts}")
        starts = range(starts)
    starts = evened(starts)
    return ViewPlan(
        mosaic=[] if spec.grid is None else frames_at_span_centres(starts, spec.grid[0] * spec.grid[1]),
        local=[frame_at_time(starts, p) for p in spec.positions()],
        crop=None if spec.crop_size is None else frame_at_time(starts, spec.crop_position),
    )


def _errors(backend: str) -> tuple[type[BaseException], ...]:
    """What a backend raises on a file it cannot open or read (decord's own error is no
    RuntimeError)."""
    if backend == "decord":
        import decord

        return (decord.DECORDError, RuntimeError)
    import av

    return (av.FFmpegError, OSError, ValueError, RuntimeError)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ----------------------------------------------------------------------------- views

def load_views(path: str | os.PathLike, **cfg) -> list[Image.Image]:
    """The images a video is shown as: ``[mosaic, local_1 .. local_n, (crop)]``.

    Args:
        path: a video file any FFmpeg build reads.
        **cfg: view settings, the keys of ``configs/video/default.yaml``: ``grid`` (int or
            ``[rows, cols]``; None: no mosaic), ``num_local``, ``local_positions`` (list of 0..1, or None for
            evenly spread), ``mosaic_max_pixels`` (whole mosaic), ``local_max_pixels`` (each
            local frame), ``factor`` (side multiple), ``crop`` (None or ``{size, position}``),
            ``backend`` (``auto``: PyAV, then decord if PyAV cannot open or read the file,
            with a warning; ``pyav``; ``decord``), ``num_threads`` (threads decoding one clip: PyAV decodes that many keyframe-to-frame stretches at once; decord's FFmpeg threads). Missing keys take the defaults of ``ViewSpec``.

    Returns:
        RGB PIL images: the mosaic (unless ``grid`` is None), then the local frames in time
        order, then the crop.

    Raises:
        FileNotFoundError: no such file.
        VideoDecodeError: the file is empty, corrupt, has no frames, or a needed frame
            cannot be decoded; the message names the file (and each backend's reason).

    Example:
        >>> views = load_views("clip.mp4")  # a 1280x720 clip  # doctest: +SKIP
        >>> [v.size for v in views]  # doctest: +SKIP
        [(1120, 672), (840, 476), (840, 476), (840, 476)]
    """
    spec = ViewSpec.from_cfg(**cfg)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: empty file")
    reasons: list[str] = []
    # PyAV first under auto: it skips the frames nothing refers to and scales while
    # converting, so it costs about half of decord's CPU time (scripts/bench_video.py).
    order = {"auto": ("pyav", "decord"), "pyav": ("pyav",), "decord": ("decord",)}[spec.backend]
    for backend in order:
        try:
            return _views(path, spec, backend)
        except VideoDecodeError:
            raise
        except ImportError as e:
            if backend == spec.backend:
                raise
            reasons.append(f"{backend} not installed ({e})")
        except _errors(backend) as e:
            if backend == spec.backend:
                raise VideoDecodeError(f"{path}: {backend} cannot decode it ({_first_line(e)})") from e
            reasons.append(f"{backend}: {_first_line(e)}")
        if backend != order[-1]:
            logger.warning("%s cannot decode %s (%s); trying %s", backend, path, reasons[-1], order[-1])
    raise VideoDecodeError(f"{path}: cannot decode ({'; '.join(reasons)})")


def _open(path: Path, backend: str, num_threads: int):
    """A reader of the clip and its frame table (from the packets, never the header)."""
    if backend == "pyav":
        return video_decode.PyAVReader(path, num_threads)  # indexes in its own container
    try:
        index = video_decode.index_clip(path)
    except VideoDecodeError:  # names the file and what is wrong with it
        raise
    except _errors("pyav") as e:
        raise VideoDecodeError(f"{path}: cannot read its packets ({_first_line(e)})") from e
    return video_decode.DecordReader(path, num_threads, index)


def frame_views(frames: Sequence[Image.Image], **cfg) -> list[Image.Image]:
    """The views of a clip held in memory as RGB frames in time order at a constant frame
    rate: the images ``load_views`` makes of a file with these frames (the scorer's
    videos given as tensors). ``cfg`` as for ``load_views`` (``backend`` and
    ``num_threads`` do not apply)."""
    import numpy as np

    from preresq.data.video_decode import ArrayPicture

    spec = ViewSpec.from_cfg(**cfg)
    if not frames:
        raise ValueError("a video needs at least one frame, got none")
    plan = plan_views(len(frames), spec)
    pictures = ((i, ArrayPicture(np.asarray(frames[i].convert("RGB")))) for i in plan.needed())
    return _assemble(pictures, plan, spec, "<frames>")


def _views(path: Path, spec: ViewSpec, backend: str) -> list[Image.Image]:
    """The views of a clip, made from the frames one backend decodes."""
    reader = _open(path, backend, spec.num_threads)
    try:
        if reader.num_frames < 1:
            raise VideoDecodeError(f"{path}: no frames")
        plan = plan_views(reader.index.starts, spec)
        return _assemble(reader.pictures(plan.needed()), plan, spec, path)
    finally:
        reader.close()


def _assemble(pictures, plan: ViewPlan, spec: ViewSpec, path) -> list[Image.Image]:
    """The views from ``(index, picture)`` pairs of the plan's frames, in order; frames are
    dropped once their views are made."""
    rows, cols = spec.grid or (1, 1)
    tile_budget = spec.mosaic_max_pixels // (rows * cols)
    made: dict[tuple[str, int], Image.Image] = {}
    tile = None
    for index, picture in pictures:
        width, height = picture.size
        if tile is None:
            check_shape(width, height, path)  # the processor's limits
            tile = fit_size(width, height, tile_budget, spec.factor)
        if index in plan.mosaic:
            made["tile", index] = picture.image(tile)
        if index in plan.local:
            made["local", index] = picture.image(fit_size(width, height, spec.local_max_pixels,
                                                          spec.factor))
        if index == plan.crop:
            made["crop", index] = _centre_crop(picture.image(), spec.crop_size, spec.factor)
    views = [made["local", index] for index in plan.local]
    if spec.grid is not None:
        mosaic = Image.new("RGB", (cols * tile[0], rows * tile[1]))
        for i, index in enumerate(plan.mosaic):
            mosaic.paste(made["tile", index], ((i % cols) * tile[0], (i // cols) * tile[1]))
        views.insert(0, mosaic)
    if plan.crop is not None:
        views.append(made["crop", plan.crop])
    return views


def _centre_crop(frame: Image.Image, size: tuple[int, int], factor: int) -> Image.Image:
    """The centre ``size`` of the frame, not resized; clipped to the frame (and to a
    multiple of ``factor`` when clipped) so a small frame still gives a valid view."""
    w, h = size
    if w > frame.width:
        w = max(min(frame.width, factor), frame.width // factor * factor)
    if h > frame.height:
        h = max(min(frame.height, factor), frame.height // factor * factor)
    left, top = (frame.width - w) // 2, (frame.height - h) // 2
    return frame.crop((left, top, left + w, top + h))
