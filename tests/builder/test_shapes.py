"""The convolution arithmetic of the lecture, and the pure modules' doctests."""
import doctest
import importlib

import pytest

from cnnbp.builder.shapes import same_extent, same_pads, window_extent


@pytest.mark.parametrize("stride,expected", [(1, 5), (2, 3)])
def test_seven_by_seven_with_three_by_three(stride, expected):
    ext = window_extent(7, 3, stride)
    assert ext.length == expected and ext.tiles


def test_stride_three_does_not_fit():
    ext = window_extent(7, 3, 3)
    assert not ext.tiles
    assert ext.formula == "(7 - 3)/3 + 1 = 2.33"


def test_pad_one_keeps_seven():
    assert window_extent(7, 3, 1, 1, 1).length == 7


def test_ceil_rounding_as_caffe_sizes_zfnet():
    assert window_extent(110, 3, 2, ceil=True).length == 55
    assert window_extent(26, 3, 2, ceil=True).length == 13


def test_ceil_rounding_drops_a_window_that_would_start_past_the_input():
    # (4 - 1)/2 + 1 = 2.5 rounds up to 3, but the third window would start at 4 = the input
    # length, which PyTorch and Caffe drop.
    assert window_extent(4, 1, 2, ceil=True).length == 2


def test_same_padding_matches_tensorflow_placement():
    assert same_extent(7, 2).length == 4
    assert same_pads(7, 3, 2) == (1, 1)
    assert same_pads(224, 3, 2) == (0, 1)


@pytest.mark.parametrize("module", ["cnnbp.builder.shapes", "cnnbp.builder.values",
                                    "cnnbp.builder.tokens", "cnnbp.builder.summary"])
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
