"""``Scorer``: the Python API for scoring images and videos with a quality model.

    >>> from preresq import Scorer
    >>> scorer = Scorer.from_pretrained("/runs/iqa/final")            # doctest: +SKIP
    >>> [s.score for s in scorer.score(["a.jpg", "clip.mp4"])]         # doctest: +SKIP
    [3.82, 2.41]
    >>> [s.score for s in scorer(torch.rand(2, 3, 224, 224))]          # doctest: +SKIP
    [2.95, 3.10]

Inputs are paths (images or videos, by extension), PIL images, torch tensors ``(3, H, W)``
or ``(N, 3, H, W)`` (float in [0, 1] or uint8, any device), numpy ``(H, W, 3)`` uint8
arrays, or lists of these; with ``modality="video"``, a ``(T, 3, H, W)`` tensor or a list
of frames is one video (``preresq.evaluation.tensor_input``). ``preresq.create_metric``
wraps a scorer in pyiqa's conventions (``preresq.metric``).

``from_pretrained`` takes a checkpoint folder, a hub id or a model preset name
(``configs/model/``: ``visualquality_r1``, ``q_insight``, ``preresq_r1``, ``tiny``...) and
any override of ``configs/eval.yaml`` as keyword arguments (``prompt="demo_digit"``,
``batch_size=16``, ``batch_tokens=8192``, ``decoding={"do_sample": True, "num_samples": 8}`` or
``**{"decoding.do_sample": True}``), so the model is asked and read exactly as by
``scripts/eval.py``. Scoring is batched as evaluation batches (sorted by prompt length, at
most ``batch_size`` items and ``batch_tokens`` tokens per call; results in input order)
and, with the default greedy decoding, deterministic; with sampling the configured seed is set before every ``score`` call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg",
                              ".wmv", ".flv", ".3gp", ".ts"})
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


@dataclass
class ItemScore:
    """One input's result. ``valid`` is False when the answer held no score (then
    ``score`` is None) or the file could not be read (then ``error`` says why)."""

    score: float | None
    subscores: list[float] | None
    reasoning: str | None
    valid: bool
    completion: str | None
    modality: str
    path: str | None = None
    error: str | None = None
    sample_scores: list[float | None] | None = None

    def to_dict(self) -> dict:
        """As a dict; ``error`` and ``sample_scores`` only when set."""
        return {k: v for k, v in asdict(self).items()
                if v is not None or k not in ("error", "sample_scores")}


def modality_of(path: str | Path) -> str:
    """``"video"`` for a video file extension, else ``"image"``."""
    return "video" if Path(path).suffix.lower() in VIDEO_EXTENSIONS else "image"


def reasoning_of(completion: str | None) -> str | None:
    """The text of the last ``<think>`` block, or None when there is none."""
    if not completion:
        return None
    blocks = _THINK.findall(completion)
    return blocks[-1].strip() if blocks else None


def file_images(source, modality: str, min_pixels: int, max_pixels: int,
                video_cfg: dict | None = None) -> list:
    """The images the model sees for one input (a path, a PIL image or a video's
    ``Frames``), by the loaders evaluation uses."""
    from preresq.data.rows import media_views, resize_image
    from preresq.evaluation.tensor_input import Frames

    views = source.views(video_cfg) if isinstance(source, Frames) else \
        media_views(source, modality, video_cfg)
    return [resize_image(view, min_pixels, max_pixels) for view in views]


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x) for x in v) + "]"
    return str(v)


def overrides_of(options: Mapping, prefix: str = "") -> list[str]:
    """Keyword options -> Hydra override strings (nested dicts become dotted keys)."""
    out = []
    for key, value in options.items():
        key = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += overrides_of(value, f"{key}.")
        else:
            out.append(f"{key}={_value(value)}")
    return out


class _Item:
    """An input shaped like a record for the prediction helpers (no MOS)."""

    def __init__(self, source, index: int, modality: str | None = None) -> None:
        from preresq.evaluation.tensor_input import Frames

        self.source = source
        self.index = index
        in_memory = isinstance(source, (Image.Image, Frames))
        self.path = None if in_memory else str(source)
        if modality is None:
            modality = "video" if isinstance(source, Frames) else \
                "image" if in_memory else modality_of(source)
        self.modality = modality
        self.id = self.path or f"<{modality} {index}>"
        self.score = None


class Scorer:
    """A model with its prompt, parser and decoding, ready to score inputs.

    Args:
        cfg: a composed ``configs/eval.yaml``.
        predictor: use this instead of building ``cfg.predictor`` (tests).
        device: where the model runs (``"cuda:1"``, a ``torch.device``); None: this
            process's GPU, else the CPU. vLLM places its engine itself.
    """

    def __init__(self, cfg, predictor=None, device=None) -> None:
        from preresq.decoding import Decoding

        self.cfg = cfg
        self.decoding = Decoding.from_cfg(cfg)
        if predictor is None:
            import torch

            from preresq.evaluation.evaluate import build_predictor, images_per_prompt, model_folder
            from preresq.evaluation.processes import Processes

            device = Processes().device() if device is None else torch.device(device)
            predictor = build_predictor(cfg, model_folder(cfg), self.decoding, device,
                                        images_per_prompt(cfg, ("image", "video")))
        self.device = device
        self.predictor = predictor

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, predictor=None, device=None,
                        **overrides) -> Scorer:
        """A scorer for a checkpoint folder, hub id or model preset, with config overrides."""
        from preresq.config import compose
        from preresq.paths import CONFIG_DIR

        name = str(name_or_path)
        preset = (CONFIG_DIR / "model" / f"{name}.yaml").is_file() and not Path(name).exists()
        args = [f"model={name}"] if preset else [f"model.name_or_path={name}"]
        return cls(compose("eval", args + overrides_of(overrides)), predictor, device)

    def __call__(self, inputs, batch_size: int | None = None,
                 modality: str | None = None) -> list[ItemScore] | ItemScore:
        """The same as ``score``."""
        return self.score(inputs, batch_size, modality)

    def score(self, inputs, batch_size: int | None = None,
              modality: str | None = None) -> list[ItemScore] | ItemScore:
        """Score images and videos, in order (the inputs of the module docstring).

        One image or video (a path, a PIL image, a ``(3, H, W)`` tensor, an ``(H, W, 3)``
        array; with ``modality="video"`` a ``(T, 3, H, W)`` tensor or a list of frames)
        gives one ``ItemScore``; a list or a batch gives a list.

        Args:
            batch_size: the most items per generate call (default ``cfg.batch_size``).
            modality: None reads paths by extension and pictures in memory as images;
                ``"image"`` or ``"video"`` reads every input as that.
        """
        from omegaconf import OmegaConf

        from preresq.evaluation.batching import PromptLengths, batches_of, load_ahead, source_tokens
        from preresq.evaluation.predict import batch_limits, predict_batch, text_counter
        from preresq.evaluation.requests import ItemPrompt
        from preresq.evaluation.tensor_input import as_sources

        sources, single = as_sources(inputs, modality)
        items = [_Item(x, i, modality) for i, x in enumerate(sources)]
        if self.decoding.do_sample:
            import torch

            torch.manual_seed(self.decoding.seed)
        cfg = self.cfg
        video_cfg = OmegaConf.to_container(cfg.video, resolve=True)
        min_pixels, max_pixels = int(cfg.model.min_pixels), int(cfg.model.max_pixels)
        # The evaluation's batching: sorted by prompt tokens, cut by items and tokens.
        limits = batch_limits(int(batch_size or cfg.batch_size), cfg.get("batch_tokens"), self.predictor)
        results: dict[int, ItemScore] = {}
        for modality in ("image", "video"):
            mine = [it for it in items if it.modality == modality]
            if not mine:
                continue
            prompt = ItemPrompt.from_cfg(cfg.prompt.get(modality), modality)

            def load(item, modality=modality):
                return file_images(item.source, modality, min_pixels, max_pixels, video_cfg)

            def visual(item, modality=modality):
                return source_tokens(item.source, modality, min_pixels, max_pixels, video_cfg)

            lengths = PromptLengths(visual, text_counter(self.predictor, prompt), self.decoding.num_samples)
            for batch in load_ahead(batches_of(mine, limits, lengths), load):
                for loaded, row in zip(batch, predict_batch(batch, self.predictor, prompt), strict=True):
                    results[loaded.record.index] = _item_score(loaded.record, row, modality)
        out = [results[i] for i in range(len(items))]
        return out[0] if single else out


def _item_score(item: _Item, row: Mapping, modality: str) -> ItemScore:
    return ItemScore(score=row["pred"], subscores=row["subscores"],
                     reasoning=reasoning_of(row["completion"]),
                     valid=row["pred"] is not None and not row.get("error"),
                     completion=row["completion"], modality=modality, path=item.path,
                     error=row.get("error"), sample_scores=row.get("sample_preds"))


__all__ = ["Scorer", "ItemScore", "modality_of", "reasoning_of", "file_images", "VIDEO_EXTENSIONS"]
