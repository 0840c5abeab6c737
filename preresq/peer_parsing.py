"""How peers' own scripts read a score from a completion (their semantics, our code).

Used through ``preresq.parsing.parse_answer`` with ``answer_format``:

* ``first_number`` (VisualQuality-R1's and the released PreResQ-R1 inference scripts): the
  first number in the *last* ``<answer>...</answer>`` block, or in the whole completion
  when there is no block.
* ``json_rating`` (Q-Insight's score reward): the number after ``"rating":`` inside the
  *first* ``<answer>`` block; no block, no score.

Where their scripts draw a random score for an answer they cannot read, this returns
None (no score, counted as invalid). Like their scripts, no range check is made: the
number is taken as written.
"""

from __future__ import annotations

import re

PEER_FORMATS = ("first_number", "json_rating")

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FIRST_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_RATING = re.compile(r"\"rating\"\s*:\s*([\d.]+)")


def first_number(text: str) -> float | None:
    """The first number of the last answer block (or of the text); None when there is none.

    >>> first_number("<think>3 of 5 flaws</think><answer>4.25</answer>")
    4.25
    >>> first_number("quality: 2.5 out of 5")
    2.5
    """
    blocks = _ANSWER.findall(text)
    body = blocks[-1].strip() if blocks else text.strip()
    match = _FIRST_NUMBER.search(body)
    return float(match.group()) if match else None


def json_rating(text: str) -> float | None:
    """``"rating": X`` inside the first answer block; None without one or when X is not a
    number (``4.5.1``).

    >>> json_rating('<think>soft</think><answer>{"rating": 3.75}</answer>')
    3.75
    """
    block = _ANSWER.search(text)
    if block is None:
        return None
    match = _RATING.search(block.group(1).strip())
    if match is None:
        return None
    try:
        return float(match.group(1))
    except ValueError:
        return None


PEER_PARSERS = {"first_number": first_number, "json_rating": json_rating}
