"""Prompt templates shared by training, evaluation and scoring.

Templates are versioned text files in ``preresq/prompts/`` so that experiments can be
diffed and train and eval can never ask different questions. A *prompt set* is a list of
template names: stage 1 of the two-stage schedule uses several phrasings, every other
setting uses one.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from preresq.paths import PROMPT_DIR


@cache
def load_template(name: str) -> str:
    """Return the text of the template ``preresq/prompts/<name>.txt``."""
    path = PROMPT_DIR / f"{name}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in PROMPT_DIR.glob("*.txt"))
        raise FileNotFoundError(f"unknown prompt template {name!r} (no {path}); known: {known}")
    return path.read_text(encoding="utf-8").strip()


def pick_template(templates: str | Sequence[str], index: int) -> str:
    """Choose the phrasing for item ``index``: one name, or round-robin over several."""
    if isinstance(templates, str):
        return templates
    templates = list(templates)
    if not templates:
        raise ValueError("empty list of prompt templates")
    return templates[index % len(templates)]


def build_messages(template: str, num_images: int = 1) -> list[dict]:
    """Conversational prompt: one user turn with ``num_images`` image slots, then the text.

    The images themselves travel in the dataset's ``images`` column (TRL pairs them with
    the image slots in order); only placeholders appear here.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    content = [{"type": "image"} for _ in range(num_images)]
    content.append({"type": "text", "text": load_template(template)})
    return [{"role": "user", "content": content}]
