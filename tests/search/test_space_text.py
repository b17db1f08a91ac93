"""What ``cnnbp search`` prints about how it read each space entry."""
from __future__ import annotations

from cnnbp.search.load import load
from cnnbp.search.space_text import describe
from tests.search.conftest import DIGITS_SPACE

EXTRA = """\
    CONV.kernel: [3, 5]
    CONV.filters: {choice: [4, 8]}
    DROPOUT.rate: [0.1, 0.5]
"""


def test_each_entry_says_range_or_choice(digits_space):
    text = DIGITS_SPACE.replace("CONV-RELU)*N", "CONV-RELU-DROPOUT)*N") + EXTRA
    _, space = load(digits_space(text=text), [], [])
    assert describe(space) == [
        "M: range 1..4 (whole numbers)",
        "N: range 1..3 (whole numbers)",
        "POOL: choice of [true, false]",
        "FC.units: choice of [8, 16, 32]",
        "learning_rate: range 0.003..0.03 (real numbers, log scale)",
        "CONV.kernel: range 3..5 (whole numbers)",
        "CONV.filters: choice of [4, 8]",
        "DROPOUT.rate: range 0.1..0.5 (real numbers)",
        "(a list of two numbers is a range; for just the two, write {choice: [3, 5]})",
        "pruner: hyperband (successive halving from 1 epoch, reduction factor 3)",
    ]


def test_per_stage_entries_name_their_count(digits_space):
    text = DIGITS_SPACE.replace("    N: [1, 3]\n", "    N: {per_stage: [1, 3]}\n")
    _, space = load(digits_space(text=text), [], [])
    assert "N: per stage (as many as M), each range 1..3 (whole numbers)" in describe(space)
