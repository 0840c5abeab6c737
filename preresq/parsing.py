"""Completion text -> sub-scores, the one parser used by rewards, evaluation and scoring.

Two answer formats exist:

* ``tagged`` (the paper's): ``<think>...</think>`` then ``<answer>...</answer>`` holding D
  numbers, one per line. Only the last answer block is read; numbers in the think block
  never count (the released code read numbers anywhere, a quirk we do not keep).
* ``bare`` (small-model experiments such as the CPU demo): the whole completion is the D
  numbers and nothing else, e.g. ``"4"``.

Peers' formats (``first_number``, ``json_rating``: one score read as VisualQuality-R1,
Q-Insight and the released PreResQ-R1 inference script read it) live in
``preresq.peer_parsing``; they are chosen the same way, with ``answer_format``.

A response whose answer does not hold exactly D numbers, each in [1, 5], has *no score*:
``ParsedAnswer.subscores is None``. Callers count such answers and treat them by their own
documented rule; nothing here invents a number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from preresq.peer_parsing import PEER_FORMATS, PEER_PARSERS

ANSWER_FORMATS = ("tagged", "bare", *PEER_FORMATS)
SCORE_MIN, SCORE_MAX = 1.0, 5.0

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# Strict layout for the format reward: think block, answer block, D lines of one number.
_TAGGED_LAYOUT = re.compile(
    r"\s*<think>.+?</think>\s*<answer>\s*(?P<body>[^<]*?)\s*</answer>\s*", re.DOTALL
)
_LINE_NUMBER = re.compile(r"\s*[-+]?\d+(?:\.\d+)?\s*")


@dataclass(frozen=True)
class ParsedAnswer:
    """Sub-scores read from one completion, or ``None`` when it holds no valid answer."""

    subscores: tuple[float, ...] | None

    @property
    def valid(self) -> bool:
        return self.subscores is not None

    @property
    def score(self) -> float | None:
        """The response's prediction: the mean of its sub-scores."""
        if self.subscores is None:
            return None
        return sum(self.subscores) / len(self.subscores)


INVALID = ParsedAnswer(None)


def _check_format(answer_format: str) -> None:
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"unknown answer_format {answer_format!r}; expected one of {ANSWER_FORMATS}")


def _answer_body(text: str, answer_format: str) -> str | None:
    _check_format(answer_format)
    if answer_format == "bare":
        return text
    blocks = _ANSWER_BLOCK.findall(text)
    return blocks[-1] if blocks else None


def parse_answer(text: str, num_scores: int, answer_format: str = "tagged") -> ParsedAnswer:
    """Read ``num_scores`` ratings from a completion.

    Args:
        text: the completion as decoded text.
        num_scores: D, the number of sub-scores expected (5 for IQA, 2 for VQA).
        answer_format: ``"tagged"`` or ``"bare"`` (see the module docstring).

    Returns:
        A ``ParsedAnswer``; ``.subscores`` is None unless the answer holds exactly
        ``num_scores`` numbers and each lies in [1, 5].

    Example:
        >>> parse_answer("<think>sharp</think><answer>4.10\\n3.90</answer>", 2).score
        4.0
        >>> parse_answer("<think>5 stars</think>", 2).valid
        False
    """
    if answer_format in PEER_PARSERS:
        if num_scores != 1:
            raise ValueError(f"answer_format={answer_format} reads one score; set num_scores: 1")
        value = PEER_PARSERS[answer_format](text)
        return INVALID if value is None else ParsedAnswer((value,))
    body = _answer_body(text, answer_format)
    if body is None:
        return INVALID
    if answer_format == "bare" and _NUMBER.sub("", body).strip():
        return INVALID  # bare answers are numbers and whitespace only
    values = tuple(float(m) for m in _NUMBER.findall(body))
    if len(values) != num_scores:
        return INVALID
    if any(not SCORE_MIN <= v <= SCORE_MAX for v in values):
        return INVALID
    return ParsedAnswer(values)


def format_ok(text: str, num_scores: int, answer_format: str = "tagged") -> bool:
    """Whether a completion follows the answer layout exactly (the format reward's test).

    ``tagged``: a non-empty think block, then an answer block whose body is ``num_scores``
    lines of one number each, every number in [1, 5], and nothing else around them.
    ``bare`` and the peers' formats: the completion parses.
    """
    _check_format(answer_format)
    if answer_format != "tagged":
        return parse_answer(text, num_scores, answer_format).valid
    match = _TAGGED_LAYOUT.fullmatch(text)
    if match is None:
        return False
    lines = match.group("body").split("\n")
    if len(lines) != num_scores or not all(_LINE_NUMBER.fullmatch(line) for line in lines):
        return False
    return parse_answer(text, num_scores, "tagged").valid


def completion_text(completion: str | list | dict) -> str:
    """The text of one completion in any shape TRL hands it over.

    Plain prompts give a string; conversational prompts (the VLM case) give a list of
    messages such as ``[{"role": "assistant", "content": "..."}]``, where ``content`` may
    also be a list of parts ``[{"type": "text", "text": "..."}]``. The text of every
    assistant message is joined in order; non-text parts are skipped. When a response
    parser has split the think block off into ``reasoning_content`` (TRL does so for
    tokenizers with a response schema), it is put back as ``<think>...</think>``.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, list):
        raise TypeError(f"completion must be a str or a list of messages; got {type(completion).__name__}")
    pieces: list[str] = []
    for message in completion:
        if not isinstance(message, dict) or "content" not in message:
            raise TypeError(f"completion message must be a dict with 'content'; got {message!r:.80}")
        if message.get("role", "assistant") != "assistant":
            continue
        reasoning = message.get("reasoning_content")
        if reasoning:
            pieces.append(f"<think>{reasoning}</think>")
        content = message["content"]
        if isinstance(content, str):
            pieces.append(content)
        elif isinstance(content, list):
            pieces.extend(part["text"] for part in content if isinstance(part, dict) and part.get("type") == "text")
        elif content is not None:
            raise TypeError(f"message content must be a str or a list of parts; got {type(content).__name__}")
    return "".join(pieces)
