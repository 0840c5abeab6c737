"""Training rows for TRL's GRPOTrainer, and the image loading shared with evaluation.

A row is ``{"prompt", "images", "mos", "item_id", "benchmark"}``: a conversational prompt
with one ``{"type": "image"}`` slot per image (``preresq.prompts.build_messages``), the
images as RGB PIL images, the score in [1, 5] and the item's id. GRPOTrainer reads the
``images`` column and pairs its images with the prompt's slots in order; the extra columns
reach the reward functions as keyword arguments.

Images are opened only when a row is read (``datasets.Dataset.with_transform``), so a
dataset of any size costs only its manifest in memory. They are resized here by the rules
of qwen-vl-utils' ``smart_resize`` (sides multiples of 28, pixel count within
[min_pixels, max_pixels]), so the processor's own resize is then a no-op and training and
evaluation see the same pixels.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

from PIL import Image

from preresq.data.image import open_image
from preresq.data.records import Record
from preresq.prompts import build_messages, pick_template

IMAGE_FACTOR = 28  # Qwen2.5-VL: 14-px patches merged 2x2
DECODE_CACHE_ITEMS = 16  # items whose decoded images a row loader keeps (DecodeCache)


class MediaError(OSError):
    """A media file of a record is missing or cannot be decoded."""


def _where(record: Record, line: int | None) -> str:
    parts = [f"item {record.id!r}"]
    if line is not None:
        parts.append(f"manifest line {line}")
    if record.extra.get("label_line") is not None:
        parts.append(f"label line {record.extra['label_line']}")
    return ", ".join(parts)


def resize_image(image: Image.Image, min_pixels: int, max_pixels: int) -> Image.Image:
    """Resize to the size ``qwen_vl_utils.smart_resize`` picks (unchanged if already there)."""
    from qwen_vl_utils import smart_resize

    height, width = smart_resize(image.height, image.width, factor=IMAGE_FACTOR,
                                 min_pixels=min_pixels, max_pixels=max_pixels)
    if (width, height) == image.size:
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)


def item_images(record: Record, media_root: str | os.PathLike, min_pixels: int, max_pixels: int,
                video_cfg: Mapping | None = None, line: int | None = None) -> list[Image.Image]:
    """The images the model sees for one item, resized by the smart_resize rules.

    Args:
        record: the item (its ``paths`` are relative to ``media_root``).
        media_root: the benchmark's media folder.
        min_pixels, max_pixels: the model config's pixel bounds.
        video_cfg: keyword arguments of ``preresq.data.video.load_views`` (videos only).
        line: the record's manifest line, named in errors when known.

    Raises:
        MediaError: naming the file, the item and its manifest/label line.
    """
    root = Path(media_root)
    images = []
    for rel in record.paths:
        path = root / rel
        if not path.is_file():
            raise MediaError(f"missing media file {path} ({_where(record, line)})")
        try:
            views = media_views(path, record.modality, video_cfg)
        except MediaError:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise MediaError(f"cannot decode {path} ({_where(record, line)}): {e}") from e
        images.extend(resize_image(view, min_pixels, max_pixels) for view in views)
    return images


def media_views(source, modality: str, video_cfg: Mapping | None = None) -> list[Image.Image]:
    """The RGB pictures of one file as displayed, before resizing: the image itself (or an
    opened PIL image), or a video's views (``preresq.data.video.load_views``)."""
    if modality == "image" or isinstance(source, Image.Image):
        return [open_image(source)]
    from preresq.data.video import load_views

    return [view.convert("RGB") for view in load_views(source, **dict(video_cfg or {}))]


def _templates(prompt_cfg: Mapping) -> list[str] | str:
    templates = prompt_cfg["templates"] if "templates" in prompt_cfg else None
    if not templates:
        raise ValueError(f"prompt config has no templates: {dict(prompt_cfg)}")
    return templates if isinstance(templates, str) else list(templates)


def build_train_dataset(records: Sequence[Record], media_root: str | os.PathLike,
                        prompt_cfg: Mapping, min_pixels: int, max_pixels: int,
                        video_cfg: Mapping | None = None, cache_items: int = DECODE_CACHE_ITEMS):
    """A ``datasets.Dataset`` of TRL rows whose images are loaded when a row is read.

    Row ``i`` uses template ``pick_template(prompt_cfg["templates"], i)`` (round-robin when
    there are several phrasings) with as many image slots as the item has images (one
    per image file; a video gives its views). The stored columns are light (id, paths,
    score, template name); ``images`` and ``prompt`` are made on access.

    Args:
        records: the training items (``Record.score`` becomes ``mos``).
        media_root: the folder record paths are relative to.
        prompt_cfg: ``cfg.prompt[modality]`` (``templates``, ``num_scores``, ``answer_format``).
        min_pixels, max_pixels: the model config's pixel bounds.
        video_cfg: ``load_views`` keyword arguments, for video records.
        cache_items: how many items' decoded images each loader keeps (0: none). TRL's
            sampler reads an item ``num_generations`` times in a row; the cache decodes it
            once (``DecodeCache``).
    """
    from datasets import Dataset

    if not records:
        raise ValueError("no training records")
    templates = _templates(prompt_cfg)
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("training records repeat an item id")
    table = {
        "item_id": ids,
        "benchmark": [r.benchmark for r in records],
        "mos": [float(r.score) for r in records],
        "template": [pick_template(templates, i) for i in range(len(records))],
        "line": list(range(1, len(records) + 1)),
        "record": [r.to_json() for r in records],
    }
    loader = _RowLoader(Path(media_root), min_pixels, max_pixels, dict(video_cfg or {}), cache_items)
    return Dataset.from_dict(table).with_transform(loader)



class DecodeCache:
    """A small LRU of decoded item images, keyed by item id.

    TRL's ``RepeatSampler`` yields each item ``num_generations`` times in a row (and again
    for ``num_iterations``), and the row loader would decode its image, or a video's views,
    at every repeat. One cache lives in each copy of the loader: the main process's, and
    each data-loader worker's own (workers get a pickled copy, without the entries).
    """

    def __init__(self, max_items: int):
        self.max_items = int(max_items)
        self.entries: OrderedDict = OrderedDict()

    def get(self, key, load):
        """The cached value of ``key``, or ``load()`` stored under it."""
        if self.max_items <= 0:
            return load()
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        value = load()
        self.entries[key] = value
        if len(self.entries) > self.max_items:
            self.entries.popitem(last=False)
        return value

    def __getstate__(self):
        return {"max_items": self.max_items, "entries": OrderedDict()}


class _RowLoader:
    """The transform that turns light stored columns into full TRL rows (picklable)."""

    def __init__(self, media_root: Path, min_pixels: int, max_pixels: int, video_cfg: dict,
                 cache_items: int = DECODE_CACHE_ITEMS):
        self.media_root = media_root
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.video_cfg = video_cfg
        self.cache = DecodeCache(cache_items)

    def __call__(self, batch: dict) -> dict:
        import json

        out: dict[str, list] = {"prompt": [], "images": [], "mos": [], "item_id": [], "benchmark": []}
        for i in range(len(batch["item_id"])):
            record = Record(**json.loads(batch["record"][i]))
            line = batch["line"][i]
            images = list(self.cache.get(record.id, partial(
                item_images, record, self.media_root, self.min_pixels, self.max_pixels,
                self.video_cfg, line=line)))
            out["prompt"].append(build_messages(batch["template"][i], num_images=len(images)))
            out["images"].append(images)
            out["mos"].append(batch["mos"][i])
            out["item_id"].append(batch["item_id"][i])
            out["benchmark"].append(batch["benchmark"][i])
        return out
