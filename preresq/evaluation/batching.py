"""How a benchmark's items become generate calls: measured, sorted by length, cut by a budget.

An item's prompt length is its text tokens plus its visual tokens. Visual tokens are
counted from each image's size as it will be resized (qwen-vl-utils' ``smart_resize``:
sides multiples of 28, pixel count within [min_pixels, max_pixels]; one token per 28 x 28
pixels after the 2 x 2 merge), read from the file's header without decoding its pixels. A
video counts its views at their pixel caps (``configs/video``), the most it can bring.

Items are sorted longest first inside a benchmark (a batch's prompts then have nearly equal
lengths, so little left padding; an out-of-memory shows at the start, not hours in), then
cut into batches of at most ``batch_size`` items and ``batch_tokens`` prompt tokens,
padding included (items x the longest prompt). An item longer than the budget alone makes
a batch of its own. The prediction cache writes the rows back in the benchmark's order.

Media are opened lazily, one batch ahead in background threads (``load_ahead``), so memory
does not grow with the benchmark; the token budget also bounds the pixels held in memory.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from preresq.data.records import Record
from preresq.evaluation.requests import MEDIA_ERRORS
from preresq.evaluation.shapes import bucket_down

PATCH_FACTOR = 28  # Qwen2.5-VL: 14-px patches merged 2 x 2 -> one token per 28 x 28 pixels


# ----------------------------------------------------------------------------- counting

def image_tokens(height: int, width: int, min_pixels: int, max_pixels: int) -> int:
    """Visual tokens of a ``height`` x ``width`` image after the processor's resize."""
    from qwen_vl_utils import smart_resize

    h, w = smart_resize(height, width, factor=PATCH_FACTOR, min_pixels=min_pixels,
                        max_pixels=max_pixels)
    return (h // PATCH_FACTOR) * (w // PATCH_FACTOR)


def video_view_tokens(video_cfg: Mapping | None, min_pixels: int, max_pixels: int) -> list[int]:
    """The most visual tokens of each view of a video (``preresq.data.video.load_views``):
    the mosaic, ``num_local`` frames and the optional crop, each at its pixel cap and then
    within the model's ``max_pixels``."""
    video = dict(video_cfg or {})
    caps = [int(video.get("mosaic_max_pixels", max_pixels))] if has_mosaic(video) else []
    caps += [int(video.get("local_max_pixels", max_pixels))] * int(video.get("num_local", 0))
    if video.get("crop"):
        caps.append(int(video["crop"]["size"]) ** 2)
    return [max(min(cap, max_pixels), min_pixels) // PATCH_FACTOR ** 2 for cap in caps]


def views_per_video(video_cfg: Mapping | None) -> int:
    """Images one video is shown as: the mosaic (unless ``grid`` is null), the local frames
    and the optional crop."""
    video = dict(video_cfg or {})
    return int(has_mosaic(video)) + int(video.get("num_local", 0)) + (1 if video.get("crop") else 0)


def has_mosaic(video_cfg: Mapping | None) -> bool:
    """Whether a video's views start with the mosaic: ``grid: null`` leaves it out."""
    video = dict(video_cfg or {})
    return not ("grid" in video and video["grid"] is None)


def source_tokens(source, modality: str, min_pixels: int, max_pixels: int,
                  video_cfg: Mapping | None = None) -> list[int]:
    """Visual tokens of each image one file (a path or a PIL image) is shown as.

    An image file's size comes from its header (EXIF turning swaps the sides, which does
    not change the count). A file whose header cannot be read counts 0 tokens: it fails
    again when loaded, and its row then records the error.
    """
    if modality == "video" and not isinstance(source, Image.Image):
        return video_view_tokens(video_cfg, min_pixels, max_pixels)
    try:
        if isinstance(source, Image.Image):
            width, height = source.size
        else:
            with Image.open(source) as image:
                width, height = image.size
        return [image_tokens(height, width, min_pixels, max_pixels)]
    except MEDIA_ERRORS:
        return [0]


class MediaTokens:
    """Record -> the visual tokens of each of its images, from the files' headers."""

    def __init__(self, media_root: str | os.PathLike, min_pixels: int, max_pixels: int,
                 video_cfg: Mapping | None = None) -> None:
        self.media_root = Path(media_root)
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self.video_cfg = video_cfg

    def __call__(self, record: Record) -> list[int]:
        return [tokens for rel in record.paths
                for tokens in source_tokens(self.media_root / rel, record.modality,
                                            self.min_pixels, self.max_pixels, self.video_cfg)]


class PromptLengths:
    """Item -> prompt tokens: its images' visual tokens plus the prompt's text tokens.

    Args:
        visual: item -> the visual tokens of each of its images (``MediaTokens``).
        text: number of images -> text tokens of the prompt asking about them (counted
            once per image count); None counts visual tokens only (a predictor without a
            tokenizer, e.g. a test's stand-in).
        sequences: sequences generated per item (``decoding.num_samples``): a generate
            call holds each prompt that many times.
    """

    def __init__(self, visual: Callable[[object], list[int]],
                 text: Callable[[int], int] | None = None, sequences: int = 1) -> None:
        self.visual = visual
        self.text = text
        self.sequences = int(sequences)
        self._text_cache: dict[int, int] = {}

    def _text(self, num_images: int) -> int:
        if self.text is None:
            return 0
        if num_images not in self._text_cache:
            self._text_cache[num_images] = int(self.text(num_images))
        return self._text_cache[num_images]

    def __call__(self, item) -> int:
        tokens = self.visual(item)
        return (self._text(len(tokens)) + sum(tokens)) * self.sequences


# ----------------------------------------------------------------------------- planning

@dataclass(frozen=True)
class BatchLimits:
    """The most items (``batch_size``) and prompt tokens (``batch_tokens``, None: no
    limit) of one generate call. ``buckets`` makes every full batch a ladder size
    (``preresq.evaluation.shapes``): a bounded set of shapes for compiled decoding
    (``HFPredictor.fixed_shapes``, which pads a smaller last batch up to a ladder size)."""

    batch_size: int
    batch_tokens: int | None = None
    buckets: bool = False

    def __post_init__(self) -> None:
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.batch_tokens is not None and int(self.batch_tokens) < 1:
            raise ValueError(f"batch_tokens must be >= 1 or null (no limit), got {self.batch_tokens}")

    @classmethod
    def from_cfg(cls, cfg, buckets: bool = False) -> BatchLimits:
        """From an eval config's ``batch_size`` and ``batch_tokens``."""
        tokens = cfg.get("batch_tokens")
        return cls(int(cfg.batch_size), None if tokens is None else int(tokens), buckets)


def plan_batches(lengths: Sequence[int], limits: BatchLimits) -> list[list[int]]:
    """Indices of the items, longest first (ties in their order), cut into batches.

    Each batch holds at most ``batch_size`` items, and its item count times its longest
    prompt is at most ``batch_tokens`` unless one item alone is longer. With ``buckets``
    the most a batch may hold is rounded down to a ladder size (``shapes.bucket_down``),
    so that padding a smaller last batch up to a ladder size stays within the limits.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable
    batches, start = [], 0
    while start < len(order):
        room = int(limits.batch_size)
        if limits.batch_tokens is not None:
            longest = max(int(lengths[order[start]]), 1)  # sorted: the first is the longest
            room = max(1, min(room, int(limits.batch_tokens) // longest))
        if limits.buckets:
            room = bucket_down(room)
        fit = min(room, len(order) - start)
        batches.append(order[start:start + fit])
        start += fit
    return batches


def batches_of(items: Sequence, limits: BatchLimits,
               lengths: Callable[[object], int] | None = None) -> list[list]:
    """``items`` in batches by ``plan_batches``; without ``lengths``, batches of
    ``batch_size`` in the given order (then ``batch_tokens`` cannot be applied)."""
    if lengths is None:
        if limits.batch_tokens is not None:
            raise ValueError("batch_tokens needs the items' prompt lengths")
        sizes = [0] * len(items)
    else:
        sizes = [lengths(item) for item in items]
    return [[items[i] for i in batch] for batch in plan_batches(sizes, limits)]


# ----------------------------------------------------------------------------- loading

@dataclass
class Loaded:
    """An item with its images, or the reason they could not be read."""

    record: Record
    images: list[Image.Image] | None = None
    error: str | None = None


def _load(record: Record, load_images: Callable[[Record], list[Image.Image]]) -> Loaded:
    try:
        return Loaded(record, images=load_images(record))
    except MEDIA_ERRORS as e:
        return Loaded(record, error=f"{type(e).__name__}: {e}")


def load_ahead(batches: Sequence[Sequence[Record]],
               load_images: Callable[[Record], list[Image.Image]],
               ahead: int = 1, workers: int = 2) -> Iterator[list[Loaded]]:
    """The batches with their items loaded; the next ``ahead`` batches load in threads
    meanwhile. At most ``ahead + 1`` batches of images are in memory at any time."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="media") as pool:
        pending: deque[list[Future]] = deque()
        for batch in batches:
            pending.append([pool.submit(_load, r, load_images) for r in batch])
            if len(pending) > ahead:
                yield [f.result() for f in pending.popleft()]
        while pending:
            yield [f.result() for f in pending.popleft()]
