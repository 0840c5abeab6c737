"""Tests for preresq.parsing: completion text -> sub-scores or "no score", and the format check."""

from __future__ import annotations

import pytest

from preresq.parsing import completion_text, format_ok, parse_answer

IQA = "<think>Sharp edges, mild noise.</think>\n<answer>\n4.35\n4.30\n3.90\n4.00\n3.75\n</answer>"


def test_parse_tagged_five_scores():
    parsed = parse_answer(IQA, 5)
    assert parsed.valid
    assert parsed.subscores == (4.35, 4.30, 3.90, 4.00, 3.75)
    assert parsed.score == pytest.approx(sum(parsed.subscores) / 5)


def test_numbers_in_think_block_never_count():
    text = "<think>I count 3 blur levels and 5 objects.</think><answer>2.10\n2.40</answer>"
    assert parse_answer(text, 2).subscores == (2.10, 2.40)


def test_last_answer_block_wins():
    text = "<think>x</think><answer>1.0\n1.0</answer> then <answer>4.5\n4.0</answer>"
    assert parse_answer(text, 2).subscores == (4.5, 4.0)


@pytest.mark.parametrize(
    "text",
    [
        "<think>4.0 4.0</think>",  # no answer block: no silent 3.0
        "<answer>4.0\n3.0\n2.0</answer>",  # three numbers where two are expected
        "<answer>4.0</answer>",  # too few
        "<answer>5.5\n4.0</answer>",  # out of range
        "<answer>0.99\n4.0</answer>",
        "<answer>good\nbad</answer>",
        "",
    ],
)
def test_invalid_answers_have_no_score(text):
    parsed = parse_answer(text, 2)
    assert not parsed.valid
    assert parsed.subscores is None and parsed.score is None


def test_bare_format():
    assert parse_answer("4", 1, "bare").subscores == (4.0,)
    assert parse_answer(" 3.5 \n", 1, "bare").score == 3.5
    assert not parse_answer("score: 4", 1, "bare").valid
    assert not parse_answer("4 5", 1, "bare").valid


def test_unknown_answer_format_names_itself():
    with pytest.raises(ValueError, match="xml"):
        parse_answer("4", 1, "xml")


def test_format_ok_strict_layout():
    assert format_ok(IQA, 5)
    assert format_ok("<think>ok</think><answer>4.10\n3.90</answer>", 2)
    assert not format_ok(IQA, 2)  # wrong count
    assert not format_ok("<answer>4.10\n3.90</answer>", 2)  # no think block
    assert not format_ok("<think>ok</think><answer>4.10 3.90</answer>", 2)  # not one per line
    assert not format_ok("<think>ok</think><answer>4.10\n3.90</answer> trailing words", 2)
    assert not format_ok("<think>ok</think><answer>6.10\n3.90</answer>", 2)  # out of range


def test_completion_text_shapes():
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": IQA}]) == IQA
    parts = [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "<think>a</think>"},
                {"type": "text", "text": "<answer>4</answer>"},
            ],
        }
    ]
    assert completion_text(parts) == "<think>a</think><answer>4</answer>"
    assert completion_text({"role": "assistant", "content": "x"}) == "x"
    split = {
        "role": "assistant",
        "reasoning_content": "sharp",
        "content": "<answer>4.10\n3.90</answer>",
    }
    assert format_ok(completion_text([split]), 2)
    with pytest.raises(TypeError, match="int"):
        completion_text(3)
    with pytest.raises(TypeError, match="content"):
        completion_text([{"role": "assistant"}])
