"""The demo image set: real photographs with graded, KADID-style distortions.

Photos bundled with scikit-image are resized (shorter side ``photo_side``), cut into
non-overlapping ``crop_size`` crops, and each crop is kept clean (level 0) and degraded by
every distortion kind at levels 1..``max_level``. An item's score is a documented function
of its level only (``level_score``):

    score = 5 - 4 * level / max_level        (level 0 = 5.0 ... level max_level = 1.0)

so ``max_level=4`` gives the integer scores 1..5. Splits are disjoint by source crop (or by
photo, ``split_by="photo"``): ``val`` is for checkpoint selection, ``test`` is held out.
With ``balance_train`` the clean items of the train split are repeated (ids ``<id>@<k>``)
so that every score level is equally common, which a small model needs (see
``shared/notes/demo_learning.md``). Colour-saturation changes leave a grayscale crop as it
was, so that (kind, grayscale crop) pair is not made; ``info.json`` counts what was built.

The set is built on first use into ``<paths.cache_dir>/demo/<name>-<hash of the parameters>/``
(images as PNG, so JPEG artefacts are baked in and nothing else is lost, plus one
manifest per split), deterministically from ``seed``, offline, in a few seconds.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from preresq.data.built_set import SPLITS, SetParams, build_once, check_split, split_records
from preresq.data.records import Record, write_manifest

DISTORTIONS = ("gaussian_blur", "white_noise", "jpeg", "contrast_change", "color_saturation",
               "pixelation")
DEFAULT_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "coins", "brick",
                  "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "moon")
BUILD_VERSION = 1  # bump when the build code changes what it writes


@dataclass(frozen=True)
class DemoConfig(SetParams):
    """Parameters of the demo set; any change gives a new cache folder."""

    photos: tuple[str, ...] = DEFAULT_PHOTOS
    kinds: tuple[str, ...] = DISTORTIONS
    max_level: int = 5
    crops_per_photo: int = 4
    crop_size: int = 112
    photo_side: int = 256
    split_by: str = "crop"
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    balance_train: bool = True
    noise_std: float = 0.12
    seed: int = 0
    name: str = "iqa_demo"
    extra: dict = field(default_factory=dict, compare=False, repr=False)
    build_version: ClassVar[int] = BUILD_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "photos", tuple(self.photos))
        object.__setattr__(self, "kinds", tuple(self.kinds))
        object.__setattr__(self, "fractions", tuple(float(f) for f in self.fractions))
        unknown = set(self.kinds) - set(DISTORTIONS)
        if unknown or not self.kinds:
            raise ValueError(f"demo kinds {sorted(unknown) or '[]'} not in {DISTORTIONS}")
        if not self.noise_std > 0:
            raise ValueError(f"demo noise_std must be > 0, got {self.noise_std}")
        if self.max_level < 1:
            raise ValueError(f"demo max_level must be >= 1, got {self.max_level}")
        if self.crop_size % 28:
            raise ValueError(f"demo crop_size {self.crop_size} is not a multiple of 28 "
                             "(the model would resize it and smear the distortions)")
        if self.photo_side < self.crop_size:
            raise ValueError(f"demo photo_side {self.photo_side} < crop_size {self.crop_size}")
        if self.split_by not in ("crop", "photo"):
            raise ValueError(f"demo split_by must be crop or photo, got {self.split_by!r}")
        if len(self.fractions) != 3 or min(self.fractions) < 0 or not math.isclose(sum(self.fractions), 1.0):
            raise ValueError(f"demo fractions must be three non-negative numbers summing to 1, "
                             f"got {self.fractions}")
        if self.extra:
            raise ValueError(f"unknown demo parameters {sorted(self.extra)}")


def level_score(level: int, max_level: int) -> float:
    """Score of an item at distortion ``level`` (0 = clean = 5.0, ``max_level`` = 1.0)."""
    if not 0 <= level <= max_level:
        raise ValueError(f"level {level} outside 0..{max_level}")
    # One division, so that 5 - 4 * 4 / 5 is exactly 1.8 and scores compare equal to literals.
    return (5.0 * max_level - 4.0 * level) / max_level


# --------------------------------------------------------------------------- distortions


def _strength(level: int, max_level: int) -> float:
    if not 1 <= level <= max_level:
        raise ValueError(f"distortion level {level} outside 1..{max_level}")
    return level / max_level


def distort(image: Image.Image, kind: str, level: int, rng: np.random.Generator,
            max_level: int = 5, noise_std: float = 0.12) -> Image.Image:
    """Degrade an RGB image by one KADID-style distortion at ``level`` of ``max_level``.

    The strength is ``t = level / max_level`` in (0, 1], so every kind spans the same
    range of scores whatever ``max_level`` is. Level 0 (clean) is not a distortion: use
    the image itself. ``rng`` drives the random kinds (white noise) only.

    Kinds: gaussian_blur (sigma 3t px), white_noise (std ``noise_std`` x t of the range,
    per channel),
    jpeg (quality 45 - 42t), contrast_change (contrast x (1 - 0.85t) about the mean),
    color_saturation (saturation x (1 - t); t = 1 is gray), pixelation (blocks of
    1 + ceil(7t) px, nearest-neighbour).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> out = distort(Image.new("RGB", (112, 112), "gray"), "white_noise", 3, rng)
        >>> out.size, out.mode
        ((112, 112), 'RGB')
    """
    from PIL import ImageEnhance, ImageFilter

    t = _strength(level, max_level)
    image = image.convert("RGB")
    if kind == "gaussian_blur":
        return image.filter(ImageFilter.GaussianBlur(radius=3.0 * t))
    if kind == "white_noise":
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        noisy = pixels + rng.normal(0.0, noise_std * t, size=pixels.shape)
        return Image.fromarray((np.clip(noisy, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    if kind == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(round(45 - 42 * t)))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return decoded.convert("RGB")
    if kind == "contrast_change":
        return ImageEnhance.Contrast(image).enhance(1.0 - 0.85 * t)
    if kind == "color_saturation":
        return ImageEnhance.Color(image).enhance(1.0 - t)
    if kind == "pixelation":
        block = 1 + math.ceil(7 * t - 1e-9)
        w, h = image.size
        small = image.resize((max(1, w // block), max(1, h // block)), Image.Resampling.BOX)
        return small.resize((w, h), Image.Resampling.NEAREST)
    raise ValueError(f"unknown distortion {kind!r}; known: {DISTORTIONS}")


# --------------------------------------------------------------------------- photos and crops


def _photo(name: str) -> Image.Image:
    """A scikit-image bundled photo as RGB (no download: only bundled files are used)."""
    from skimage import data

    loader = getattr(data, name, None)
    if loader is None or not callable(loader):
        raise ValueError(f"skimage.data has no photo {name!r}")
    array = np.asarray(loader())
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        array = (255 * (array - array.min()) / max(1e-12, float(array.max() - array.min()))).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    if array.ndim != 2 and not (array.ndim == 3 and array.shape[2] == 3):
        raise ValueError(f"skimage.data.{name} has shape {array.shape}, not an image")
    return Image.fromarray(array).convert("RGB")


def _is_gray(image: Image.Image) -> bool:
    pixels = np.asarray(image, dtype=np.int16)
    return bool(np.abs(pixels[..., 0] - pixels[..., 1]).max() <= 2
                and np.abs(pixels[..., 1] - pixels[..., 2]).max() <= 2)


def _crops(photo: Image.Image, cfg: DemoConfig, rng: np.random.Generator) -> list[Image.Image]:
    w, h = photo.size
    scale = cfg.photo_side / min(w, h)
    photo = photo.resize((max(cfg.photo_side, round(w * scale)), max(cfg.photo_side, round(h * scale))),
                         Image.Resampling.LANCZOS)
    cols, rows = photo.size[0] // cfg.crop_size, photo.size[1] // cfg.crop_size
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    if len(cells) < cfg.crops_per_photo:
        raise ValueError(f"a {photo.size} photo holds {len(cells)} crops of {cfg.crop_size} px, "
                         f"fewer than crops_per_photo={cfg.crops_per_photo}; raise photo_side")
    # Centre the grid so the crops avoid the borders equally.
    x0 = (photo.size[0] - cols * cfg.crop_size) // 2
    y0 = (photo.size[1] - rows * cfg.crop_size) // 2
    chosen = sorted(rng.choice(len(cells), size=cfg.crops_per_photo, replace=False).tolist())
    s = cfg.crop_size
    return [photo.crop((x0 + c * s, y0 + r * s, x0 + (c + 1) * s, y0 + (r + 1) * s))
            for r, c in (cells[i] for i in chosen)]


def _assign_splits(units: list[str], cfg: DemoConfig, rng: np.random.Generator) -> dict[str, str]:
    order = [units[i] for i in rng.permutation(len(units))]
    n_train = round(cfg.fractions[0] * len(units))
    n_val = round(cfg.fractions[1] * len(units))
    if n_train + n_val > len(units):
        n_val = len(units) - n_train
    split = {}
    for i, unit in enumerate(order):
        split[unit] = "train" if i < n_train else "val" if i < n_train + n_val else "test"
    return split


# --------------------------------------------------------------------------- build


def default_root() -> Path:
    """``<paths.cache_dir>/demo``: where demo sets are built unless told otherwise."""
    from preresq.config import load_paths

    return Path(load_paths().cache_dir) / "demo"


def demo_dir(cfg: DemoConfig, root: str | os.PathLike) -> Path:
    """Where the demo set with these parameters lives: ``<root>/<name>-<hash>``."""
    return cfg.folder(root)


def _build(cfg: DemoConfig, out: Path) -> dict:
    rng = np.random.default_rng(cfg.seed)
    crops: list[tuple[str, str, Image.Image]] = []  # (crop id, photo, image)
    for photo_name in cfg.photos:
        for k, crop in enumerate(_crops(_photo(photo_name), cfg, rng)):
            crops.append((f"{photo_name}_{k}", photo_name, crop))
    units = cfg.photos if cfg.split_by == "photo" else tuple(c for c, _, _ in crops)
    split_of = _assign_splits(list(units), cfg, rng)
    records: dict[str, list[Record]] = {s: [] for s in SPLITS}
    skipped = 0
    (out / "images").mkdir(parents=True)
    for crop_id, photo_name, crop in crops:
        split = split_of[photo_name if cfg.split_by == "photo" else crop_id]
        gray = _is_gray(crop)
        kinds = [k for k in cfg.kinds if not (k == "color_saturation" and gray)]
        skipped += (len(cfg.kinds) - len(kinds)) * cfg.max_level
        # One generator per crop, so an item does not change when other photos are added.
        crop_rng = np.random.default_rng([cfg.seed, int(hashlib.sha256(crop_id.encode()).hexdigest()[:8], 16)])
        items = [("clean", 0, crop)]
        for kind in kinds:
            for level in range(1, cfg.max_level + 1):
                items.append((kind, level, distort(crop, kind, level, crop_rng, cfg.max_level, cfg.noise_std)))
        for kind, level, image in items:
            rel = f"images/{crop_id}/{kind}_{level}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            image.save(out / rel, format="PNG", compress_level=1)  # lossless; speed over size
            score = level_score(level, cfg.max_level)
            record = Record(id=rel, paths=[rel], mos=score, score=score, benchmark=cfg.name,
                            modality="image", split=split, ref=f"images/{crop_id}/clean_0.png",
                            extra={"photo": photo_name, "crop": crop_id, "kind": kind, "level": level})
            records[split].append(record)
            if split == "train" and cfg.balance_train and level == 0:
                # One clean item per kind, as many as the items at each distorted level.
                for r in range(1, len(kinds)):
                    records[split].append(Record(**{**asdict(record), "id": f"{rel}@{r}"}))
    counts = {}
    for split in SPLITS:
        write_manifest(out / f"{split}.jsonl", records[split])
        counts[split] = len(records[split])
    return {"counts": counts, "crops": len(crops), "skipped_gray_saturation": skipped}


def build_demo(cfg: DemoConfig | Mapping | None = None, root: str | os.PathLike | None = None,
               force: bool = False) -> Path:
    """Build the demo set if it is not cached yet; return its folder.

    The folder holds ``images/``, ``train.jsonl``, ``val.jsonl``, ``test.jsonl`` (record
    paths relative to the folder) and ``info.json`` (parameters and counts); see
    ``preresq.data.built_set.build_once``.
    """
    if not isinstance(cfg, DemoConfig):
        cfg = DemoConfig.from_mapping(cfg)
    target = demo_dir(cfg, default_root() if root is None else root)
    return build_once(target, lambda tmp: _build(cfg, tmp), cfg.params(), force)


def load_demo_split(split: str, cfg: DemoConfig | Mapping | None = None,
                    root: str | os.PathLike | None = None) -> tuple[list[Record], Path]:
    """Records of one split (building the set if needed) and the folder they are relative to."""
    check_split(split, "demo")
    folder = build_demo(cfg, root)
    return split_records(folder, split), folder
