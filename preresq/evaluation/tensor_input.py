"""Pictures held in memory -> what the scorer asks about: PIL images, or a video's frames.

Accepted, besides paths and PIL images (what image pipelines and pyiqa hand over):

* a torch tensor ``(3, H, W)`` (one image) or ``(N, 3, H, W)`` (a batch), RGB, float in
  [0, 1] (any float dtype) or ``uint8`` in [0, 255], on any device;
* a numpy array ``(H, W, 3)`` (one image) or ``(N, H, W, 3)``, ``uint8`` (or float in [0, 1]);
* a list or tuple of single images (paths, PIL images, 3-D tensors, ``(H, W, 3)`` arrays).

With ``modality="video"`` a video is a tensor ``(T, 3, H, W)``, an array ``(T, H, W, 3)``
or a list of frames (any of the single images above), in time order at a constant frame
rate; ``(N, T, 3, H, W)`` or a list of videos (4-D tensors, lists of frames, paths) is N
videos. A video in memory is shown as a file is (the mosaic and local frames of
``configs/video``, ``preresq.data.video.frame_views``).

Float pixels become 8-bit as ``round(255 x)``, so a ``uint8`` image divided by 255 comes
back exactly and a tensor scores as the PIL image it was made from. Anything else (a wrong
rank, channel count, value range or dtype) raises ``ValueError`` naming what was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

MODALITIES = ("image", "video")


@dataclass
class Frames:
    """A video held in memory: its frames in time order, RGB, all of one size."""

    images: list[Image.Image]

    def views(self, video_cfg: dict | None = None) -> list[Image.Image]:
        """The images the model is shown: those of a file with these frames."""
        from preresq.data.video import frame_views

        return frame_views(self.images, **dict(video_cfg or {}))


def _is_tensor(x) -> bool:
    try:
        import torch
    except ImportError:  # torch is a dependency; numpy-only callers need not import it
        return False
    return isinstance(x, torch.Tensor)


def _describe(x) -> str:
    if _is_tensor(x):
        return f"a torch tensor of shape {tuple(x.shape)}, dtype {x.dtype}, on {x.device}"
    if isinstance(x, np.ndarray):
        return f"a numpy array of shape {x.shape}, dtype {x.dtype}"
    return f"a {type(x).__name__}"


def _check_range(lo: float, hi: float, what: str) -> None:
    if lo < 0.0 or hi > 1.0:
        hint = " (looks like 0-255: divide by 255 or pass uint8)" if 1.0 < hi <= 255.0 else ""
        raise ValueError(f"{what}: float pixels must lie in [0, 1], got min {lo:.4g}, max {hi:.4g}{hint}")


def _to_uint8(array: np.ndarray, what: str) -> np.ndarray:
    """A numpy array of pixels (any shape) as uint8, after checking its dtype and range."""
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{what}: pixels must be float in [0, 1] or uint8 in [0, 255], got dtype "
                         f"{array.dtype}")
    if array.size and not np.isfinite(array).all():
        raise ValueError(f"{what}: pixels hold NaN or infinite values")
    if array.size:
        _check_range(float(array.min()), float(array.max()), what)
    return np.rint(array.astype(np.float32) * 255.0).astype(np.uint8)


def _tensor_hwc(x, what: str) -> np.ndarray:
    """A tensor ``(..., 3, H, W)`` as a uint8 numpy array ``(..., H, W, 3)``, on the CPU."""
    import torch

    if x.dtype == torch.bool or not (x.dtype == torch.uint8 or x.is_floating_point()):
        raise ValueError(f"{what}: pixels must be float in [0, 1] or uint8 in [0, 255], got dtype "
                         f"{x.dtype}")
    x = x.detach()
    if x.is_floating_point():
        # Checked and scaled on the tensor's own device: one copy of uint8 pixels to the host.
        if x.numel() and not torch.isfinite(x).all():
            raise ValueError(f"{what}: pixels hold NaN or infinite values")
        if x.numel():
            _check_range(float(x.min()), float(x.max()), what)
        x = torch.round(x.float() * 255.0).to(torch.uint8)
    return x.movedim(-3, -1).contiguous().cpu().numpy()


def _check_image_shape(shape: tuple, channels_at: int, what: str) -> None:
    if shape[channels_at] != 3:
        layout = "(3, H, W)" if channels_at == -3 else "(H, W, 3)"
        raise ValueError(f"{what}: expected 3 colour channels (RGB) in {layout}, got "
                         f"{shape[channels_at]} in shape {shape}")
    height, width = (shape[-2], shape[-1]) if channels_at == -3 else (shape[-3], shape[-2])
    if height < 1 or width < 1:
        raise ValueError(f"{what}: empty image in shape {shape}")


def _pixels(x, what: str, ranks: tuple[int, ...], video: bool = False) -> np.ndarray:
    """A tensor or array as uint8 ``(..., H, W, 3)`` with one of the ranks given
    (3: one picture; 4: a batch of images, or a video; 5: a batch of videos)."""
    tensor = _is_tensor(x)
    lead = {3: "", 4: "T, " if video else "N, ", 5: "N, T, "}
    layout = {r: f"({lead[r]}3, H, W)" if tensor else f"({lead[r]}H, W, 3)" for r in lead}
    if x.ndim not in ranks:
        expected = " or ".join(layout[r] for r in ranks)
        raise ValueError(f"{what}: expected {expected}, got {x.ndim} dimensions (shape "
                         f"{tuple(x.shape)})")
    _check_image_shape(tuple(x.shape), -3 if tensor else -1, what)
    return _tensor_hwc(x, what) if tensor else _to_uint8(np.asarray(x), what)


def _image(x, what: str) -> Image.Image | str | Path:
    """One image: a path or PIL image as it is, a 3-D tensor or array as a PIL image."""
    if isinstance(x, (str, Path, Image.Image)):
        return x
    if _is_tensor(x) or isinstance(x, np.ndarray):
        return Image.fromarray(_pixels(x, what, (3,)))
    raise ValueError(f"{what}: expected an image (a path, a PIL image, a (3, H, W) tensor or an "
                     f"(H, W, 3) array), got {_describe(x)}")


def _frames(x, what: str) -> Frames:
    """One video given in memory: a 4-D tensor or array, or a sequence of frames."""
    if _is_tensor(x) or isinstance(x, np.ndarray):
        frames = [Image.fromarray(a) for a in _pixels(x, what, (4,), video=True)]
    elif isinstance(x, (list, tuple)):
        frames = [_image(f, f"{what}[{i}]") for i, f in enumerate(x)]
        if any(isinstance(f, (str, Path)) for f in frames):
            raise ValueError(f"{what}: a video's frames are pictures in memory, not paths")
        frames = [f.convert("RGB") for f in frames]
    else:
        raise ValueError(f"{what}: expected a video (a path, a (T, 3, H, W) tensor, a (T, H, W, 3) "
                         f"array or a list of frames), got {_describe(x)}")
    if not frames:
        raise ValueError(f"{what}: a video needs at least one frame, got none")
    sizes = {f.size for f in frames}
    if len(sizes) > 1:
        raise ValueError(f"{what}: a video's frames must share one size, got {sorted(sizes)}")
    return Frames(frames)


def _is_picture(x) -> bool:
    """A single image (not a batch, not a video)."""
    if isinstance(x, (str, Path, Image.Image)):
        return True
    if _is_tensor(x) or isinstance(x, np.ndarray):
        return x.ndim == 3
    return False


def in_memory(x) -> bool:
    """Whether ``x`` holds pictures in memory (a tensor or array) rather than files."""
    return _is_tensor(x) or isinstance(x, np.ndarray)


def as_sources(inputs, modality: str | None = None) -> tuple[list, bool]:
    """``inputs`` (see the module docstring) -> (sources, single).

    A source is a path, a PIL image or ``Frames``; ``single`` is True when one image or
    one video was given (the scorer then returns one result, not a list).

    Args:
        modality: ``"video"`` reads in-memory inputs as videos; ``"image"`` or None as
            images. Paths are returned as they are (the scorer reads them by extension).
    """
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES} or None, got {modality!r}")
    video = modality == "video"
    if isinstance(inputs, (str, Path)):
        return [inputs], True
    if isinstance(inputs, Image.Image):
        return ([_frames([inputs], "video")] if video else [inputs]), True
    if in_memory(inputs):
        if video:
            if inputs.ndim == 4:
                return [_frames(inputs, "video")], True
            clips = _pixels(inputs, "videos", (4, 5), video=True)  # raises for other ranks
            return [Frames([Image.fromarray(f) for f in clip]) for clip in clips], False
        if inputs.ndim == 3:
            return [_image(inputs, "image")], True
        return [Image.fromarray(a) for a in _pixels(inputs, "images", (3, 4))], False
    if not isinstance(inputs, Sequence):
        raise ValueError(f"expected images or videos (paths, PIL images, tensors, arrays, or a list "
                         f"of them), got {_describe(inputs)}")
    items = list(inputs)
    if video:
        if items and _is_picture(items[0]) and not isinstance(items[0], (str, Path)):
            return [_frames(items, "video")], True  # a list of frames is one video
        return [x if isinstance(x, (str, Path)) else _frames(x, f"inputs[{i}]")
                for i, x in enumerate(items)], False
    return [_image(x, f"inputs[{i}]") for i, x in enumerate(items)], False


def input_device(inputs):
    """The device of the first tensor in ``inputs`` (None when there is none)."""
    if _is_tensor(inputs):
        return inputs.device
    if isinstance(inputs, (list, tuple)):
        for x in inputs:
            device = input_device(x)
            if device is not None:
                return device
    return None


__all__ = ["Frames", "as_sources", "input_device", "in_memory", "MODALITIES"]
