"""Open an image as people saw it when they rated it: the one loader of training, eval and scoring.

What a rater saw is the image as a viewer displays it, so ``open_image`` returns 8-bit RGB
after the corrections a plain ``Image.open(path).convert("RGB")`` gets wrong:

* **EXIF orientation** (phone photos, e.g. SPAQ): the pixels are turned as the tag says
  (``ImageOps.exif_transpose``), so a portrait photo stored sideways comes out upright.
* **High bit depth**: 16-bit grey (Pillow modes ``I;16``, ``I;16B``, ``I;16L``, and ``I``
  as Pillow opens 16-bit PNGs) is scaled to 8 bits (``round(v / 257)``, 65535 -> 255),
  not clipped (clipping turns almost every pixel white). 32-bit float images (``F``), and
  ``I`` images with values outside 0..65535, have no agreed range and are refused.
* **Transparency** (``RGBA``, ``LA``, ``PA``, palette, RGB, grey or 16-bit grey images
  with a transparent colour) is composited on **white**, ``BACKGROUND``: the page colour of the web pages and
  viewers most such images are shown on, and one fixed colour, so training and evaluation
  agree. Without it, fully transparent pixels show whatever colour the encoder left there.

* **Colour profiles**: an RGB image (or a palette one) whose file embeds an ICC profile
  other than sRGB (Display P3 from iPhones, Adobe RGB from cameras) is converted to sRGB
  (LittleCMS through ``PIL.ImageCms``, relative colorimetric, the transforms cached), as a
  colour-managed viewer or browser shows it; shown as sRGB, its colours come out dull.
  Profiles named sRGB are taken as sRGB without converting (the conversion would change
  nothing and cost about 0.2 s per 12 MP). A profile LittleCMS cannot read is ignored, as
  browsers do, with a warning naming the file.

Other modes (``L``, ``1``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``) go through Pillow's
conversion to RGB (CMYK by Pillow's naive formula: a CMYK or grey ICC profile is not used).
Multi-frame files (MPO from phone cameras, animated GIF/WebP) give their first frame, the
one viewers show.

Shapes the model's resize rule cannot take are refused here with the file named (callers
add the label line): an aspect ratio above ``MAX_ASPECT_RATIO`` (200:1, where
qwen-vl-utils' ``smart_resize`` raises). Small images are fine: ``smart_resize`` enlarges
them to ``min_pixels``.
"""

from __future__ import annotations

import io
import logging
import os
from functools import lru_cache

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps

logger = logging.getLogger(__name__)

BACKGROUND = (255, 255, 255)  # what transparent pixels are composited on (white)
MAX_ASPECT_RATIO = 200        # qwen_vl_utils.vision_process.MAX_RATIO
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
# What open_image does to pixels, recorded in evaluation identities (preresq.evaluation):
# change it when the pixels the model gets change, so old predictions are not reused.
DISPLAY_RULES = "EXIF turned, 16-bit scaled, alpha on white, ICC to sRGB"
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class ImageDecodeError(ValueError):
    """An image that cannot be shown to the model as it was rated; the message names the file."""


def open_image(path: str | os.PathLike | Image.Image) -> Image.Image:
    """The image at ``path`` as displayed: upright, 8-bit sRGB, transparency on white.

    ``path`` may also be an already opened PIL image (the scoring API takes those): it
    gets the same corrections, so a photo passed in memory is seen as one read from disk.

    Raises:
        FileNotFoundError: no such file.
        OSError: the file is truncated or not an image (Pillow's error, the file named).
        ImageDecodeError: a float image, or a shape the processor cannot take.

    Example:
        >>> open_image("photo.jpg").mode  # doctest: +SKIP
        'RGB'
    """
    if isinstance(path, Image.Image):
        return _displayed(path, "<PIL image>")
    # A truncated file must fail, never be padded with grey.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with Image.open(path) as image:
        image.load()
        return _displayed(image, path)


def _displayed(image: Image.Image, path: str | os.PathLike) -> Image.Image:
    icc = image.info.get("icc_profile")
    rgb = to_srgb(to_rgb(ImageOps.exif_transpose(image), path), icc, path)
    check_shape(rgb.width, rgb.height, path)
    return rgb


def to_srgb(rgb: Image.Image, icc: bytes | None, path: str | os.PathLike = "<image>") -> Image.Image:
    """An RGB image in sRGB, given the ICC profile its file embeds (see the module docstring)."""
    if not icc:
        return rgb
    transform = _to_srgb_transform(bytes(icc))
    if transform is None:
        return rgb
    if transform == "unreadable":
        logger.warning("%s: its ICC profile cannot be read; shown as sRGB", path)
        return rgb
    return ImageCms.applyTransform(rgb, transform)


@lru_cache(maxsize=32)
def _to_srgb_transform(icc: bytes):
    """The RGB -> sRGB transform of a profile; None when there is nothing to do (an sRGB or
    a non-RGB profile), ``"unreadable"`` for a profile LittleCMS cannot read."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError):
        return "unreadable"
    if profile.profile.xcolor_space.strip() != "RGB" or "srgb" in profile.profile.profile_description.lower():
        return None
    try:
        return ImageCms.buildTransform(profile, _SRGB, "RGB", "RGB",
                                       renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    except ImageCms.PyCMSError:
        return "unreadable"


def to_rgb(image: Image.Image, path: str | os.PathLike = "<image>") -> Image.Image:
    """An opened image converted to 8-bit RGB as displayed (see the module docstring)."""
    mode = image.mode
    if mode == "F":
        raise ImageDecodeError(f"{path}: 32-bit float image (mode F) has no agreed range; "
                               "convert it to 8 or 16 bits")
    if mode in _SIXTEEN_BIT:
        grey = np.asarray(image).astype(np.float64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise ImageDecodeError(f"{path}: 32-bit integer image with values outside 0..65535 "
                                   "has no agreed range; convert it to 8 or 16 bits")
        eight = np.clip(np.rint(grey / 257.0), 0, 255).astype(np.uint8)
        rgb = np.repeat(eight[..., None], 3, axis=2)
        key = image.info.get("transparency")  # a 16-bit grey PNG's transparent value (tRNS)
        if isinstance(key, int):
            rgb[grey == key] = BACKGROUND
        return Image.fromarray(rgb, "RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def check_shape(width: int, height: int, path: str | os.PathLike = "<image>") -> None:
    """Refuse a size the model's resize rule cannot take (aspect ratio over 200:1)."""
    if width < 1 or height < 1:
        raise ImageDecodeError(f"{path}: empty image ({width}x{height})")
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ImageDecodeError(f"{path}: {width}x{height} has an aspect ratio over "
                               f"{MAX_ASPECT_RATIO}:1, which Qwen2.5-VL's resize rule cannot take")
