"""Small blueprints over 8x8 digits for the search tests."""
from __future__ import annotations

import pytest

# 3x3 valid convolutions and 2x2 pools on 8x8: most (M, N, POOL) combinations shrink the
# map to nothing. Sizes: conv n -> n - 2, pool n -> n // 2 (floor; strict off).
DIGITS_SPACE = """\
name: digits_search
input: [8, 8, 1]
classes: 10
strict: false
pattern: "[(CONV-RELU)*N-POOL?]*M-(FC-RELU)*K-SOFTMAX"
vars: {M: 1, N: 1, K: 1, POOL: true}
layers:
  CONV: {filters: 4, kernel: 3}
  POOL: {size: 2}
  FC: {units: 16}
training: {epochs: 1, batch_size: 128, validation_split: 0.2}
search:
  space:
    M: [1, 4]
    N: [1, 3]
    POOL: [true, false]
    FC.units: [8, 16, 32]
    learning_rate: {low: 0.003, high: 0.03, log: true}
"""


@pytest.fixture
def digits_space(write_blueprint):
    def make(extra: str = "", text: str = DIGITS_SPACE) -> str:
        return write_blueprint(text + extra)
    return make
