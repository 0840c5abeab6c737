"""The demo clip set: short pans and zooms over real photographs, with graded distortions.

Each photo bundled with scikit-image (the demo image set's photos, ``preresq.data.demo``) is
cut into two halves (left and right; top and bottom for a portrait photo), its *sources*
(``split_by="half"``; ``"photo"``: the whole photo is one source). Each source gives one
camera path (a pan left, right or down, or a zoom in or out, chosen per source) of
``num_frames`` frames (``frame_width`` x ``frame_height``), kept clean (level 0) and
degraded by **every** kind at **every** level 1..``max_level``, as the image demo set does
with its crops:

* ``gaussian_blur``, ``white_noise``: ``preresq.data.demo.distort`` on every frame (fresh
  noise each frame, so the noise moves as real sensor noise does);
* ``compression``: the video codec itself at a lower quality (x264 CRF
  ``18 + (51 - 18) * t``, or MPEG-4 qscale ``2 + 29 * t`` where x264 is missing), with
  ``t = level / max_level``;
* ``stutter``: frame drops and freezes: each shown frame is held for ``level + 1`` frames
  (the motion jumps, the clip's length stays). No single frame shows it;
* ``flicker``: the brightness jumps between frames: frame ``j`` is multiplied by
  ``1 + FLICKER_GAIN * t * s_j`` with ``s_j`` = +1, -1, +1, ... (a random phase per clip),
  then clipped. A single frame is only brighter or darker than it should be, which the
  model cannot know without the clip.

Scores follow the image demo set's documented rule (``preresq.data.demo.level_score``)::

    score = 5 - 4 * level / max_level        (level 0 = 5.0 ... level max_level = 1.0)

so ``max_level=4`` gives the integer scores 1..5. Splits (train / val / test) are disjoint
by source (a photo half, as the image demo's are by crop: a test clip's photo may have its
other half in training; ``split_by="photo"`` keeps whole photos apart); every split holds
every kind at every level. With ``balance_train`` the
train split's clean clip of each photo is listed once per kind (ids ``<id>@<k>``), so that
every score is equally common (``shared/notes/demo_learning.md``). The set is built on first
use into ``<paths.cache_dir>/demo_video/<name>-<hash of the parameters>/`` (``clips/``, one
manifest per split with modality ``"video"``, ``info.json``), deterministically from
``seed``, offline, in seconds; H.264 when the installed PyAV has libx264, else MPEG-4.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from preresq.data.built_set import SPLITS, SetParams, build_once, check_split, split_records
from preresq.data.demo import DEFAULT_PHOTOS as IMAGE_DEMO_PHOTOS
from preresq.data.demo import _assign_splits, _photo, distort, level_score
from preresq.data.records import Record, write_manifest

KINDS = ("gaussian_blur", "white_noise", "compression", "stutter", "flicker")
TEMPORAL_KINDS = ("stutter", "flicker")  # what no single frame shows
MOTIONS = ("pan_right", "pan_left", "pan_down", "zoom_in", "zoom_out")
DEFAULT_PHOTOS = IMAGE_DEMO_PHOTOS  # 12 photos, 24 halves: 12 train, 6 val, 6 test
CLEAN_CRF = 18
FLICKER_GAIN = 0.4  # brightness x (1 +- 0.4) at the top level
BUILD_VERSION = 3  # bump when the build code changes what it writes


@dataclass(frozen=True)
class DemoVideoConfig(SetParams):
    """Parameters of the demo clip set; any change gives a new cache folder."""

    photos: tuple[str, ...] = DEFAULT_PHOTOS
    kinds: tuple[str, ...] = KINDS
    max_level: int = 4
    num_frames: int = 16
    fps: int = 8
    frame_width: int = 56
    frame_height: int = 56
    photo_side: int = 256
    split_by: str = "half"
    fractions: tuple[float, float, float] = (0.5, 0.25, 0.25)
    balance_train: bool = True
    noise_std: float = 0.3  # white noise std at the top level (0.12 is too faint for the tiny model)
    seed: int = 0
    name: str = "vqa_demo"
    extra: dict = field(default_factory=dict, compare=False, repr=False)
    build_version: ClassVar[int] = BUILD_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "photos", tuple(self.photos))
        object.__setattr__(self, "kinds", tuple(self.kinds))
        object.__setattr__(self, "fractions", tuple(float(f) for f in self.fractions))
        unknown = set(self.kinds) - set(KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"demo video kinds {sorted(unknown) or '[]'} not in {KINDS}")
        if not self.photos:
            raise ValueError("demo video set needs at least one photo")
        if self.max_level < 1:
            raise ValueError(f"demo video max_level must be >= 1, got {self.max_level}")
        if self.num_frames < 2 or self.fps < 1:
            raise ValueError(f"demo video needs num_frames >= 2 and fps >= 1, got "
                             f"{self.num_frames}, {self.fps}")
        if self.frame_width % 28 or self.frame_height % 28:
            raise ValueError(f"demo video frame size {self.frame_width}x{self.frame_height} is not "
                             "a multiple of 28 (the model would resize it and smear the distortions)")
        if self.split_by not in ("half", "photo"):
            raise ValueError(f"demo video split_by must be half or photo, got {self.split_by!r}")
        side = self.photo_side // 2 if self.split_by == "half" else self.photo_side
        if side < max(self.frame_width, self.frame_height):
            raise ValueError(f"demo video photo_side {self.photo_side} leaves sources of {side} px, "
                             f"smaller than a frame")
        if len(self.fractions) != 3 or min(self.fractions) < 0 or not math.isclose(sum(self.fractions), 1.0):
            raise ValueError(f"demo video fractions must be three non-negative numbers summing "
                             f"to 1, got {self.fractions}")
        if not self.noise_std > 0:
            raise ValueError(f"demo video noise_std must be > 0, got {self.noise_std}")
        if self.extra:
            raise ValueError(f"unknown demo video parameters {sorted(self.extra)}")


def stutter_source(frame: int, level: int) -> int:
    """The source frame shown at ``frame`` under stutter ``level``: held ``level + 1`` frames."""
    hold = level + 1
    return frame // hold * hold


def flicker_gains(num_frames: int, level: int, max_level: int, phase: int) -> list[float]:
    """Brightness factor of each frame under flicker ``level``: ``1 +- FLICKER_GAIN * t``,
    alternating from frame to frame, starting with + when ``phase`` is 0."""
    t = level / max_level
    return [1.0 + FLICKER_GAIN * t * (1 if (j + phase) % 2 == 0 else -1) for j in range(num_frames)]


def _scale_brightness(frame: Image.Image, gain: float) -> Image.Image:
    pixels = np.asarray(frame, dtype=np.float32) * gain
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------- camera paths


def _camera_frames(photo: Image.Image, motion: str, cfg: DemoVideoConfig) -> list[Image.Image]:
    """The clean frames of one camera path over ``photo`` (sub-pixel smooth: float boxes)."""
    w, h = photo.size
    fw, fh = cfg.frame_width, cfg.frame_height
    fit = min(w / fw, h / fh)  # the largest window scale that stays inside the photo
    frames = []
    for j in range(cfg.num_frames):
        t = j / (cfg.num_frames - 1)
        if motion.startswith("pan"):
            scale = 0.6 * fit
            span_x, span_y = w - fw * scale, h - fh * scale
            x0 = {"pan_right": t * span_x, "pan_left": (1 - t) * span_x, "pan_down": span_x / 2}[motion]
            y0 = t * span_y if motion == "pan_down" else span_y / 2
        else:
            zoom = t if motion == "zoom_in" else 1 - t
            scale = fit * (0.95 - 0.5 * zoom)  # window shrinks as the camera zooms in
            x0, y0 = (w - fw * scale) / 2, (h - fh * scale) / 2
        box = (x0, y0, x0 + fw * scale, y0 + fh * scale)
        frames.append(photo.resize((fw, fh), Image.Resampling.BICUBIC, box=box))
    return frames


def _sources(name: str, cfg: DemoVideoConfig) -> list[tuple[str, Image.Image]]:
    """``(source id, image)``: the photo's two halves (``split_by="half"``) or the photo."""
    photo = _scaled_photo(name, cfg.photo_side)
    if cfg.split_by == "photo":
        return [(name, photo)]
    w, h = photo.size
    if w >= h:
        return [(f"{name}_a", photo.crop((0, 0, w // 2, h))), (f"{name}_b", photo.crop((w // 2, 0, w, h)))]
    return [(f"{name}_a", photo.crop((0, 0, w, h // 2))), (f"{name}_b", photo.crop((0, h // 2, w, h)))]


def _scaled_photo(name: str, side: int) -> Image.Image:
    photo = _photo(name)
    scale = side / min(photo.size)
    return photo.resize((max(side, round(photo.width * scale)), max(side, round(photo.height * scale))),
                        Image.Resampling.LANCZOS)


# --------------------------------------------------------------------------- encoding


def encoder() -> str:
    """The codec the clips are written with: libx264 when PyAV has it, else mpeg4."""
    import av

    for name in ("libx264", "mpeg4"):
        if name in av.codecs_available:
            return name
    raise RuntimeError("the installed PyAV has neither libx264 nor mpeg4 encoders")


def _quality_options(codec: str, t: float) -> dict[str, str]:
    """Encoder options for compression strength ``t`` in [0, 1] (0 = the clean quality)."""
    if codec == "libx264":
        return {"crf": str(round(CLEAN_CRF + (51 - CLEAN_CRF) * t)), "preset": "medium"}
    return {"qscale": str(round(2 + 29 * t))}


def rgb_to_yuv420p(image: Image.Image) -> np.ndarray:
    """An RGB image as one yuv420p array (BT.601, limited range; chroma averaged 2x2).

    Done in numpy rather than by FFmpeg's swscale: swscale's conversion of these frame
    widths (168 is no multiple of its vector width) changed with the process's memory
    contents, so two builds of the same set encoded different clips.
    """
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {w}x{h}")
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 219 * (0.299 * r + 0.587 * g + 0.114 * b)
    cb = 128 + 224 * (-0.168736 * r - 0.331264 * g + 0.5 * b)
    cr = 128 + 224 * (0.5 * r - 0.418688 * g - 0.081312 * b)

    def half(plane: np.ndarray) -> np.ndarray:
        return plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    planes = [y.ravel(), half(cb).ravel(), half(cr).ravel()]
    out = np.rint(np.concatenate(planes)).clip(0, 255).astype(np.uint8)
    return out.reshape(h * 3 // 2, w)


def write_clip(path: Path, frames: list[Image.Image], fps: int, codec: str,
               options: dict[str, str]) -> None:
    """Encode RGB frames into an .mp4 with PyAV (one encoder thread: deterministic output)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.codec_context.thread_count = 1
        stream.options = options
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(image), format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


# --------------------------------------------------------------------------- build


def _degrade(frames: list[Image.Image], kind: str, level: int, cfg: DemoVideoConfig,
             rng: np.random.Generator) -> list[Image.Image]:
    if kind in ("gaussian_blur", "white_noise"):
        return [distort(f, kind, level, rng, cfg.max_level, cfg.noise_std) for f in frames]
    if kind == "stutter":
        return [frames[stutter_source(j, level)] for j in range(len(frames))]
    if kind == "flicker":
        gains = flicker_gains(len(frames), level, cfg.max_level, int(rng.integers(2)))
        return [_scale_brightness(f, g) for f, g in zip(frames, gains, strict=True)]
    if kind == "compression":
        return frames  # applied by the encoder
    raise ValueError(f"unknown demo video distortion {kind!r}; known: {KINDS}")


def _build(cfg: DemoVideoConfig, out: Path) -> dict:
    rng = np.random.default_rng(cfg.seed)
    sources = [(photo_name, source, image) for photo_name in cfg.photos
               for source, image in _sources(photo_name, cfg)]
    split_of = _assign_splits([source for _, source, _ in sources], cfg, rng)
    codec = encoder()
    records: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for photo_name, source, photo in sources:
        # One generator per source, so a clip does not change when other photos are added.
        photo_rng = np.random.default_rng([cfg.seed, int(hashlib.sha256(source.encode()).hexdigest()[:8], 16)])
        motion = MOTIONS[int(photo_rng.integers(len(MOTIONS)))]
        clean = _camera_frames(photo, motion, cfg)
        clean_rel = f"clips/{source}/clean_0.mp4"
        split = split_of[source]
        items = [("clean", 0)] + [(kind, level) for kind in cfg.kinds
                                  for level in range(1, cfg.max_level + 1)]
        for kind, level in items:
            frames = _degrade(clean, kind, level, cfg, photo_rng) if level else clean
            t = level / cfg.max_level if kind == "compression" else 0.0
            rel = clean_rel if level == 0 else f"clips/{source}/{kind}_{level}.mp4"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            write_clip(out / rel, frames, cfg.fps, codec, _quality_options(codec, t))
            score = level_score(level, cfg.max_level)
            record = Record(id=rel, paths=[rel], mos=score, score=score, benchmark=cfg.name,
                            modality="video", split=split, ref=clean_rel,
                            extra={"photo": photo_name, "source": source, "kind": kind, "level": level,
                                   "motion": motion})
            records[split].append(record)
            if split == "train" and cfg.balance_train and level == 0:
                # One clean clip per kind, as many as the clips at each distorted level.
                for r in range(1, len(cfg.kinds)):
                    records[split].append(Record(**{**asdict(record), "id": f"{rel}@{r}"}))
    counts = {}
    for split in SPLITS:
        write_manifest(out / f"{split}.jsonl", records[split])
        counts[split] = len(records[split])
    return {"counts": counts, "codec": codec}


def default_root() -> Path:
    """``<paths.cache_dir>/demo_video``: where demo clip sets are built unless told otherwise."""
    from preresq.config import load_paths

    return Path(load_paths().cache_dir) / "demo_video"


def demo_video_dir(cfg: DemoVideoConfig, root: str | os.PathLike) -> Path:
    """Where the clip set with these parameters lives: ``<root>/<name>-<hash>``."""
    return cfg.folder(root)


def build_demo_video(cfg: DemoVideoConfig | Mapping | None = None,
                     root: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Build the demo clip set if it is not cached yet; return its folder.

    The folder holds ``clips/``, ``train.jsonl``, ``val.jsonl``, ``test.jsonl`` (record
    paths relative to the folder) and ``info.json`` (parameters, counts, codec); see
    ``preresq.data.built_set.build_once``.
    """
    if not isinstance(cfg, DemoVideoConfig):
        cfg = DemoVideoConfig.from_mapping(cfg)
    target = demo_video_dir(cfg, default_root() if root is None else root)
    return build_once(target, lambda tmp: _build(cfg, tmp), cfg.params(), force)


def load_demo_video_split(split: str, cfg: DemoVideoConfig | Mapping | None = None,
                          root: str | os.PathLike | None = None) -> tuple[list[Record], Path]:
    """Records of one split (building the set if needed) and the folder they are relative to."""
    check_split(split, "demo video")
    folder = build_demo_video(cfg, root)
    return split_records(folder, split), folder
