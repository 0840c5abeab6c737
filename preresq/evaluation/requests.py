"""What one item asks the model: the chat messages with image slots, and the images.

``ItemPrompt`` (``cfg.prompt[modality]``) says how items of one modality are asked and
read; ``Request`` is one item's question, as every predictor takes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from preresq.data.video import VideoDecodeError
from preresq.prompts import build_messages, load_template

# What a broken media file raises: preresq.data.rows.MediaError (an OSError naming the file
# and item), other OSErrors, bad content (ValueError), an undecodable video
# (VideoDecodeError), and PIL's guard against absurd image sizes.
MEDIA_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, VideoDecodeError, Image.DecompressionBombError,
)


@dataclass
class Request:
    """One item to generate for: the chat messages (with image slots) and the images.

    ``add_vision_id`` asks the chat template to write "Picture 1:" before each image, as
    some peers' scripts do (``prompt.<modality>.add_vision_id``). ``item_id``: the
    benchmark item asked about, where there is one (a sampling backend seeds each item
    from it: ``preresq.decoding.item_seed``).
    """

    messages: list[dict]
    images: list[Image.Image]
    add_vision_id: bool = False
    item_id: str | None = None


@dataclass
class ItemPrompt:
    """How items of one modality are asked and read (``cfg.prompt[modality]``).

    ``system`` names a template sent as the system message (some peers train with one;
    None keeps the chat template's default); ``add_vision_id`` writes "Picture 1:" before
    each image, as some peers' scripts do.
    """

    template: str
    num_scores: int
    answer_format: str = "tagged"
    system: str | None = None
    add_vision_id: bool = False

    @classmethod
    def from_cfg(cls, cfg, modality: str = "image") -> ItemPrompt:
        """From ``cfg.prompt[modality]``: evaluation always asks with ``templates[0]``."""
        if cfg is None:
            raise ValueError(f"this prompt config has no {modality} prompt (prompt.{modality} is "
                             f"null): the model it belongs to was not made for {modality}s")
        templates = cfg["templates"]
        template = templates if isinstance(templates, str) else list(templates)[0]
        system = cfg.get("system")
        return cls(template, int(cfg["num_scores"]), str(cfg.get("answer_format", "tagged")),
                   str(system) if system else None, bool(cfg.get("add_vision_id", False)))

    def messages(self, num_images: int) -> list[dict]:
        messages = build_messages(self.template, num_images)
        if self.system:
            system = {"role": "system", "content": [{"type": "text", "text": load_template(self.system)}]}
            messages = [system, *messages]
        return messages

    def request(self, images: list[Image.Image], item_id: str | None = None) -> Request:
        return Request(self.messages(len(images)), images, self.add_vision_id, item_id)

    def texts(self) -> dict:
        """The words the model is asked with (for an output folder's identity)."""
        return {"template": load_template(self.template),
                "system": load_template(self.system) if self.system else None}


def prompt_text(processor, messages: list[dict], add_vision_id: bool = False) -> str:
    """The chat-templated prompt, ending where the assistant's answer starts (the same text
    for every backend: the model's own processor writes it)."""
    extra = {"add_vision_id": True} if add_vision_id else {}
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                         **extra)


def text_tokens(processor, messages: list[dict], add_vision_id: bool = False) -> int:
    """Tokens of the prompt's text with its image placeholders left out: the processor
    replaces each placeholder by the image's visual tokens, which are counted apart."""
    ids = processor.tokenizer(prompt_text(processor, messages, add_vision_id))["input_ids"]
    image_pad = processor.tokenizer.convert_tokens_to_ids(getattr(processor, "image_token", "<|image_pad|>"))
    return len(ids) - ids.count(image_pad)
